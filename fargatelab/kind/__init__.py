"""kind, made to work on this kind of machine: the Docker engine it needs, its binaries and node image built
from Go modules and Debian packages (no registry is reachable offline), and a thin handle on the kind CLI.

``engine`` starts Docker where it is missing; ``node_image`` builds and caches ``kindest/node`` for the
pinned Kubernetes; ``cluster`` creates, loads and deletes one run's cluster. The kind backend
(``fargatelab.backends.kind``) puts the Fargate emulation on top.
"""
