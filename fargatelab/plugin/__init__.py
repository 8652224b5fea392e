"""The pytest layer of the labs, as one plugin: ``pytest_plugins = ["fargatelab.plugin"]``.

Its modules, each a plugin of its own: ``options`` (command line and markers), ``session`` (the run:
its id, its backend, its end), ``fixtures`` (cluster, kube, aws, timing, ``lab`` and the module's setup),
``shared`` (setups shared by the tests of an xdist group), ``ordering`` (the labs' order on the workers),
``selection`` (``--lab``, ``--list-labs``) and ``reporting`` (reports and the progress line).
"""

pytest_plugins = [
    "fargatelab.plugin.options",
    "fargatelab.plugin.session",
    "fargatelab.plugin.fixtures",
    "fargatelab.plugin.shared",
    "fargatelab.plugin.ordering",
    "fargatelab.plugin.selection",
    "fargatelab.plugin.reporting",
]
