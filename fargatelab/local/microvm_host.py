"""The host's side of the microVM data plane: whether this host can run microVMs (and so which data plane an
environment gets), what it must have installed, and the cgroups, mounts and namespaces a run's microVMs leave,
found and removed by run id (also after a ``kill -9`` of the harness or of a microVM's processes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from ..errors import ExitCode, HarnessError
from .apt import need

__all__ = ["CGROUP_ROOT", "SHORT_ROOT", "short_path", "cgroup_dirs", "choose_data_plane", "ensure_host_tools", "kill_cgroup", "microvm_host_problem",
           "mounts_under", "remove_cgroup", "remove_run_data_plane", "require_microvm_host", "unmount_under"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: short names for the microVMs' directories: a unix socket's path has at most 107 bytes, and a state
#: directory deep in a temporary folder leaves containerd's and kubelet's sockets too little room
SHORT_ROOT = Path("/run/fargate-labs")


def short_path(run_id: str, slug: str, root: Path) -> Path:
    """A short symbolic link to a microVM's directory ``root``, for the paths of its sockets."""
    link = SHORT_ROOT / run_id / slug
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(root)
    return link


def cgroup_dirs(run_id: str, slug: str) -> list[Path]:
    """The kubelet's cgroupRoot in every cgroup v1 hierarchy (the kubelet needs it in all of them)."""
    relative = Path("fargate-labs") / run_id / slug
    return [h / relative for h in sorted(CGROUP_ROOT.iterdir()) if h.is_dir() and not h.is_symlink()
            and (h / "cgroup.procs").exists()]


def choose_data_plane(requested: str, progress: Callable[[str], None]) -> str:
    """The data plane an environment starts with: ``auto`` is microVMs where this host can run them and no
    other environment's real pods hold the VPC, else KWOK nodes, said in one line."""
    if requested != "auto":
        return requested
    from .aws.network import VPC_CIDR
    from .vpc_network import route_owner

    missing = microvm_host_problem()
    if missing:
        progress(f"this host cannot run microVMs (it needs {missing}): the pods run on KWOK nodes, no container "
                 "runs, and the in-pod steps skip")
        return "kwok"
    owner = route_owner(VPC_CIDR)
    if owner:
        progress(f"another environment's real pods hold the VPC {VPC_CIDR} (routed to {owner}): this one's pods "
                 "run on KWOK nodes; take that one down for real pods here")
        return "kwok"
    return "microvm"


def microvm_host_problem() -> str | None:
    """What this host lacks to run microVMs (Linux, root, cgroups, network namespaces), or None."""
    import sys

    if not sys.platform.startswith("linux"):
        return "Linux"
    if os.geteuid() != 0:
        return "root (network namespaces, cgroups and mounts)"
    if not CGROUP_ROOT.is_dir() or not any(CGROUP_ROOT.iterdir()):
        return "cgroups under /sys/fs/cgroup"
    if shutil.which("ip") is None or shutil.which("nsenter") is None:
        return "iproute2's ip and util-linux's nsenter"
    return None


def require_microvm_host() -> None:
    """Refuse, in one line, a host that cannot run microVMs."""
    missing = microvm_host_problem()
    if missing:
        raise HarnessError(f"this host cannot run microVMs: it needs {missing}; use --data-plane kwok",
                           ExitCode.BACKEND_UNAVAILABLE)


def remove_run_data_plane(run_id: str, state_dir: Path) -> list[str]:
    """Everything a run's microVMs left (after a kill -9 too): their pods' processes, cgroups, mounts, and the
    VPC's namespaces. The microVMs' own processes carry the run id and are stopped with the environment's."""
    from .vpc_network import remove_run

    removed = []
    base = [h / "fargate-labs" / run_id for h in sorted(CGROUP_ROOT.iterdir())
            if h.is_dir() and not h.is_symlink()] if CGROUP_ROOT.is_dir() else []
    for path in base:
        if path.exists():
            kill_cgroup(path)
    for path in base:
        if path.exists():
            remove_cgroup(path)
            removed.append(f"cgroup {path}")
            try:
                path.parent.rmdir()  # /fargate-labs itself, once no run of any environment uses it
            except OSError:
                pass
    shutil.rmtree(SHORT_ROOT / run_id, ignore_errors=True)  # the microVMs' short links
    try:
        SHORT_ROOT.rmdir()
    except OSError:
        pass
    mounts = mounts_under(state_dir)
    unmount_under(state_dir / "microvms")
    removed += [f"mount {m}" for m in mounts]
    return removed + remove_run(run_id)


def mounts_under(root: Path) -> list[str]:
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return []
    prefix = str(root).rstrip("/") + "/"
    return [m for m in mounts if m.startswith(prefix)]


#: every microVM's kubelet and containerd watch files with inotify; the kernel's default of 128 instances per
#: user runs out at a dozen microVMs ("too many open files", and containerd then serves no CRI at all)
INOTIFY_MINIMUM = {"fs/inotify/max_user_instances": 8192, "fs/inotify/max_user_watches": 524288}


#: the host's commands the data plane runs, the Debian package of each, and who needs it
HOST_TOOLS = (("iptables", "iptables", "kube-proxy"), ("haproxy", "haproxy", "the ALBs' data plane"))


def ensure_host_tools(progress: Callable[[str], None]) -> None:
    """What the host needs for many microVMs: inotify room, the iptables command kube-proxy programs netfilter
    with, and HAProxy for the ALBs (Debian's packages, installed when missing)."""
    for key, minimum in INOTIFY_MINIMUM.items():
        path = Path("/proc/sys") / key
        try:
            if int(path.read_text()) < minimum:
                path.write_text(str(minimum))
                progress(f"raised {key.replace('/', '.')} to {minimum} for the microVMs' kubelets and containerds")
        except (OSError, ValueError):
            pass
    for command, package, user in HOST_TOOLS:
        need(command, [package], user, progress)


def unmount_under(root: Path) -> None:
    """Unmount what kubelet and containerd mounted under ``root`` (deepest first), then remove it."""
    for target in sorted(mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def kill_cgroup(path: Path) -> None:
    import signal

    if not path.exists():
        return
    for procs in path.rglob("cgroup.procs"):
        try:
            pids = [int(p) for p in procs.read_text().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def remove_cgroup(path: Path, timeout: float = 5.0) -> None:
    """A cgroup directory goes with ``rmdir`` once empty, children first; processes just killed take a moment
    to leave it (``rmdir`` says EBUSY until then)."""
    deadline = time.monotonic() + timeout
    while path.exists():
        for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            try:
                child.rmdir()
            except OSError:
                pass
        try:
            path.rmdir()
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
