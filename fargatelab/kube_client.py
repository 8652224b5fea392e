"""The Kubernetes client's configuration from a kubeconfig, leaving no key file behind.

The client writes a kubeconfig's inline certificates and keys to temporary files and removes them only when
its process exits normally. The environment's own processes end by a signal, and a run killed with -9 ends
them all, so each run left its CA, admin and scheduler keys in the system's temporary directory. A
kubeconfig the harness wrote lives in the run's own directory under the state root: its temporary files go
beside it there, and go with the run. Any other kubeconfig (a student's own) keeps the client's default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["client_configuration", "scratch_for"]


def scratch_for(kubeconfig: str, state_root: Path) -> str | None:
    """Where the client may write ``kubeconfig``'s certificates: its own directory when that belongs to a
    run (under ``state_root``), else None (the system's temporary directory).

    >>> scratch_for("/s/fargate-labs/default/kubeconfig", Path("/s/fargate-labs"))
    '/s/fargate-labs/default'
    >>> scratch_for("/home/me/.kube/config", Path("/s/fargate-labs")) is None
    True
    """
    directory = Path(os.path.abspath(kubeconfig)).parent
    root = Path(os.path.abspath(state_root))
    return str(directory) if directory.is_relative_to(root) and directory != root else None


def client_configuration(kubeconfig: str) -> Any:
    """A ``kubernetes.client.Configuration`` for ``kubeconfig``'s current context."""
    from kubernetes import client, config

    from .local.environment import state_root

    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg,
                            temp_file_path=scratch_for(kubeconfig, state_root()))
    return cfg
