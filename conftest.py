"""The labs' pytest plugins, in the harness package: options, markers and fixtures; reports and the progress line."""

pytest_plugins = ["fargatelab.plugin"]
