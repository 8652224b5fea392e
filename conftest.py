"""The labs' options, markers and fixtures live in one plugin module of the harness package."""

pytest_plugins = ["fargatelab.pytest_plugin"]
