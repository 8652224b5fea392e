"""The workshop's own command-line tools, pinned and cached like the Kubernetes binaries: eksctl and helm
(downloaded, or built from their Go modules), the AWS CLI (v1, from PyPI) in a virtual environment of its own.

The documents' command lines are replayed through these, so a flag that changed or a call the AWS side
does not answer fails the step as it would fail in the workshop. eksctl and helm come from their official
release archives, checked against the published checksums, where those are reachable; the Go module proxy
and PyPI are reachable from more machines, so a build is the fallback.
"""

from __future__ import annotations

import fcntl
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ExitCode, HarnessError
from .binaries import cache_root
from .go_build import Component, official_release, pins_digest, provision_go_binaries

__all__ = ["AWSCLI_VERSION", "EKSCTL_VERSION", "HELM_VERSION", "CLI_COMPONENTS", "Clis", "clis_dir", "provision_awscli",
           "provision_clis", "provisioned_versions"]

EKSCTL_VERSION = "v0.215.0"
HELM_VERSION = "v3.22.0"
AWSCLI_VERSION = "1.46.3"

Progress = Callable[[str], None]

_EKSCTL = "github.com/weaveworks/eksctl"
_HELM = "helm.sh/helm/v3"

CLI_COMPONENTS: tuple[Component, ...] = (
    # eksctl's go.mod replaces modules, which `go install module@version` refuses: built in its module.
    Component("eksctl", _EKSCTL, EKSCTL_VERSION, (f"{_EKSCTL}/cmd/eksctl",), "1.25.1", in_module=True,
              # a release, not the module's "dev" snapshot: `eksctl version` prints 0.215.0
              stamps=((f"{_EKSCTL}/pkg/version.PreReleaseID", ""),)),
    Component("helm", _HELM, HELM_VERSION, (f"{_HELM}/cmd/helm",), "1.26.0",
              stamps=((f"{_HELM}/internal/version.version", HELM_VERSION),)),
)


@dataclass(frozen=True)
class Clis:
    """Where each tool is, and the versions the report prints."""

    bin_dir: Path
    versions: dict[str, str]


def clis_dir() -> Path:
    return cache_root() / f"clis-{pins_digest(CLI_COMPONENTS, AWSCLI_VERSION)}" / "bin"


#: where each tool's official linux/amd64 release and its published checksums are: (archive, checksums file,
#: the tool's path inside the archive)
RELEASES = {
    "eksctl": (f"https://github.com/eksctl-io/eksctl/releases/download/{EKSCTL_VERSION}/eksctl_Linux_amd64.tar.gz",
               f"https://github.com/eksctl-io/eksctl/releases/download/{EKSCTL_VERSION}/eksctl_checksums.txt",
               "eksctl"),
    "helm": (f"https://get.helm.sh/helm-{HELM_VERSION}-linux-amd64.tar.gz",
             f"https://get.helm.sh/helm-{HELM_VERSION}-linux-amd64.tar.gz.sha256sum", "linux-amd64/helm"),
}


def provision_clis(progress: Progress = lambda line: print(line, file=sys.stderr, flush=True),
                   aws: bool = True) -> Clis:
    """eksctl, helm and aws in one bin directory: whichever is missing or corrupt is downloaded (the official
    release, checked against its published checksum) where that is reachable, else built or installed.
    A build from cold: eksctl about 5 minutes (and 3.6 GB of memory), helm about 1.5, the AWS CLI under one.
    Without ``aws`` the AWS CLI is left to :func:`provision_awscli`."""
    target = clis_dir()
    provision_go_binaries(CLI_COMPONENTS, target, "the workshop's", "eksctl from cold takes about 5 minutes and "
                          "3.6 GB of memory on 2 cores, helm about 1.5", progress, release=_release)
    if aws:
        _awscli(target, progress)
    return Clis(target, {**{c.name: c.version for c in CLI_COMPONENTS}, "aws": AWSCLI_VERSION})


def _release(component: Component, target: Path, progress: Progress) -> dict[str, Any] | None:
    """The official release of ``component`` into ``target`` (its manifest entry), or None where the release
    cannot be reached or does not match its checksum (then it is built)."""
    if component.name not in RELEASES or platform.machine() not in ("x86_64", "amd64"):
        return None
    archive, checksums, member = RELEASES[component.name]
    return official_release(component, target, progress, archive, checksums, member)


def provision_awscli(progress: Progress = lambda line: print(line, file=sys.stderr, flush=True)) -> None:
    """The AWS CLI alone (from PyPI: no Go build), into the tools' bin directory."""
    target = clis_dir()
    target.mkdir(parents=True, exist_ok=True)
    _awscli(target, progress)


def provisioned_versions() -> dict[str, str]:
    """The versions of the tools already in the cache (nothing is built): what a run's report names."""
    target = clis_dir()
    found = {c.name: c.version for c in CLI_COMPONENTS if (target / c.name).exists()}
    return found | ({"aws": AWSCLI_VERSION} if (target / "aws").exists() else {})


def _awscli(target: Path, progress: Progress) -> None:
    """The AWS CLI v1 in its own virtual environment (it pins botocore exactly, unlike the harness's boto3),
    linked as ``aws`` into ``target``."""
    venv = target.parent / f"awscli-{AWSCLI_VERSION}"
    aws = venv / "bin" / "aws"
    with open(target.parent / ".awscli.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _works(aws):
            progress(f"installing the AWS CLI {AWSCLI_VERSION} from PyPI into {venv}")
            log = target.parent / "logs" / "awscli.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as out:
                steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
                         [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"awscli=={AWSCLI_VERSION}"]]
                for step in steps:
                    if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                        raise HarnessError(f"installing the AWS CLI failed (see {log}): check that PyPI is "
                                           "reachable (pip's index-url), then run again", ExitCode.MISSING_BINARY)
            if not _works(aws):
                raise HarnessError(f"the AWS CLI in {venv} does not report version {AWSCLI_VERSION}: delete "
                                   f"{venv} and run again", ExitCode.MISSING_BINARY)
        link = target / "aws"
        if not link.is_symlink() or Path(os.readlink(link)) != aws:
            link.unlink(missing_ok=True)
            link.symlink_to(aws)


def _works(aws: Path) -> bool:
    if not aws.exists():
        return False
    try:
        out = subprocess.run([str(aws), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return f"aws-cli/{AWSCLI_VERSION} " in out.stdout + out.stderr
