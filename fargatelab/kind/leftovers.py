"""The node containers of kind clusters whose runs were killed with -9, for the orphan search.

A run's cluster is ``fargate-labs-<run id>``; kind labels each of its node containers with the cluster's
name. When its run is killed with -9 nothing deletes the cluster: `fargate-lab cleanup --orphans` (and the
next kind run's start) find the containers here and remove them, once nothing of the run is alive (the
orphan search decides that, as for the local environment's namespaces and cgroups).
"""

from __future__ import annotations

import datetime as _dt
import shutil
import subprocess

__all__ = ["KindNodes", "parse_listing"]

#: the label kind puts on every node container, with the cluster's name as its value
CLUSTER_LABEL = "io.x-k8s.kind.cluster"
_PREFIX = "fargate-labs-"
#: name, cluster, creation time: one line per container
_FORMAT = f'{{{{.Name}}}} {{{{index .Config.Labels "{CLUSTER_LABEL}"}}}} {{{{.Created}}}}'


def parse_listing(listing: str) -> dict[str, tuple[list[str], float]]:
    """Run id → its node containers and when the oldest was made, from ``docker inspect`` lines.

    >>> parse_listing("/fargate-labs-ab12-worker fargate-labs-ab12 2026-12-02T05:40:01.5Z\\n"
    ...               "/other-control-plane other 2026-12-02T05:40:01Z\\n")
    {'ab12': (['kind node container fargate-labs-ab12-worker'], 1796190001.0)}
    """
    found: dict[str, tuple[list[str], float]] = {}
    for line in listing.splitlines():
        name, cluster, created = (line.split() + ["", "", ""])[:3]
        if not cluster.startswith(_PREFIX):
            continue
        run_id = cluster[len(_PREFIX):]
        made = _dt.datetime.fromisoformat(created[:19]).replace(tzinfo=_dt.timezone.utc).timestamp()
        remains, oldest = found.get(run_id, ([], made))
        found[run_id] = ([*remains, f"kind node container {name.lstrip('/')}"], min(oldest, made))
    return found


class KindNodes:
    """The orphan search's source for kind node containers; nothing where Docker is absent or stopped."""

    def _docker(self, *args: str) -> subprocess.CompletedProcess[str] | None:
        docker = shutil.which("docker")
        if docker is None:
            return None
        try:
            done = subprocess.run([docker, *args], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return None
        return done if done.returncode == 0 else None

    def _containers(self, label: str) -> list[str]:
        listed = self._docker("ps", "-aq", "--filter", f"label={label}")
        return listed.stdout.split() if listed else []

    def traces(self) -> dict[str, tuple[list[str], float]]:
        from ..local.environment import state_root
        from ..local.orphans import start_lock_held

        ids = self._containers(CLUSTER_LABEL)
        inspected = self._docker("inspect", "--format", _FORMAT, *ids) if ids else None
        found = parse_listing(inspected.stdout) if inspected else {}
        # A cluster being made has no process of its run yet, only its run's start lock (see backends.kind).
        return {run_id: made for run_id, made in found.items() if not start_lock_held(state_root(), f"kind-{run_id}")}

    def remove(self, run_id: str) -> None:
        # What `kind delete cluster` does to the nodes; kind's own kubeconfig entries died with the run's
        # directory.
        ids = self._containers(f"{CLUSTER_LABEL}={_PREFIX}{run_id}")
        if ids:
            self._docker("rm", "--force", "--volumes", *ids)
