"""Provisioning of the data plane's binaries: kubelet and kube-proxy (one program), containerd, runc, CNI plugins, CoreDNS,
an OCI registry and crane, built from Go modules (see :mod:`.go_build`) and cached with a manifest in
``<cache_root>/dataplane-<hash of the pins>/bin``; and kwok, which plays the nodes of the KWOK data plane
instead, provisioned only when that data plane is used (``<cache_root>/kwok-<hash>/bin``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..rules.naming import kubelet_version
from .binaries import KUBERNETES_VERSION, KWOK_VERSION, cache_root, release_arch
from .go_build import MANIFEST, Component, official_release, pins_digest, provision_go_binaries, verify

__all__ = [
    "COMPONENTS",
    "IMAGE_TOOLS",
    "CONTAINERD_VERSION",
    "RUNC_VERSION",
    "CNI_PLUGINS_VERSION",
    "COREDNS_VERSION",
    "REGISTRY_VERSION",
    "CRANE_VERSION",
    "KUBELET_VERSION",
    "MANIFEST",
    "Component",
    "DataPlaneBinaries",
    "dataplane_dir",
    "provision_dataplane",
    "kwok_built",
    "kwok_dir",
    "provision_kwok",
    "verify_dataplane",
]

CONTAINERD_VERSION = "v2.4.2"
RUNC_VERSION = "v1.3.7"
CNI_PLUGINS_VERSION = "v1.10.0"
COREDNS_VERSION = "v1.14.7"
REGISTRY_VERSION = "v3.1.2"
CRANE_VERSION = "v0.22.1"
# What a Fargate node's kubelet and kube-proxy report on EKS (``v1.34.4-eks-<hash>``), so that nodes of real
# microVMs show the same nodeInfo as the emulated ones; the control plane keeps the plain version.
KUBELET_VERSION = kubelet_version(KUBERNETES_VERSION)
CNI_SUBDIR = "cni"

Progress = Callable[[str], None]


_CONTAINERD = "github.com/containerd/containerd/v2"
_CONTAINERD_TAGS = ("no_btrfs", "no_devmapper", "no_zfs", "urfave_cli_no_docs")
_CNI = "github.com/containernetworking/plugins"
_CNI_PLUGINS = ("main/bridge", "main/host-device", "main/loopback", "main/ptp",
                "ipam/host-local", "ipam/static", "meta/portmap")
_REGISTRY = "github.com/distribution/distribution/v3"
_CRANE = "github.com/google/go-containerregistry"

COMPONENTS: tuple[Component, ...] = (
    # The kubelet and kube-proxy, both upstream's, in one program (fargatelab/data/fargate-node.go): a microVM
    # then maps the code they share once and keeps one heap.
    Component("kubernetes", "k8s.io/kubernetes", KUBERNETES_VERSION, ("./cmd/fargate-node",), "1.24",
              stamps=(("k8s.io/component-base/version.gitVersion", KUBELET_VERSION),
                      ("k8s.io/client-go/pkg/version.gitVersion", KUBELET_VERSION)),
              sources=(("fargate-node.go", "cmd/fargate-node/main.go"),)),
    # CGO off drops btrfs by itself; devmapper and zfs go too because no Fargate pod uses those snapshotters.
    Component("containerd", _CONTAINERD, CONTAINERD_VERSION, (f"{_CONTAINERD}/cmd/containerd",), "1.26.6",
              _CONTAINERD_TAGS, ((f"{_CONTAINERD}/version.Version", CONTAINERD_VERSION),)),
    # The shim is a separate build because upstream leaves gRPC out of it (no_grpc).
    Component("containerd-shim", _CONTAINERD, CONTAINERD_VERSION, (f"{_CONTAINERD}/cmd/containerd-shim-runc-v2",),
              "1.26.6", _CONTAINERD_TAGS + ("no_grpc",), ((f"{_CONTAINERD}/version.Version", CONTAINERD_VERSION),)),
    # runc's nsenter is C, so runc always needs cgo; "seccomp" is added when libseccomp is there.
    Component("runc", "github.com/opencontainers/runc", RUNC_VERSION, ("github.com/opencontainers/runc",), "1.23",
              ("urfave_cli_no_docs",), cgo=True),
    Component("cni-plugins", _CNI, CNI_PLUGINS_VERSION, tuple(f"{_CNI}/plugins/{p}" for p in _CNI_PLUGINS),
              "1.26.8", stamps=((f"{_CNI}/pkg/utils/buildversion.BuildVersion", CNI_PLUGINS_VERSION),),
              subdir=CNI_SUBDIR),
    # CoreDNS and the registry each from a main of this project's in their own module (fargatelab/data):
    # upstream's server, without the plugins or storage drivers that need a cloud SDK (most of a cold build).
    Component("coredns", "github.com/coredns/coredns", COREDNS_VERSION, ("./fargatelab/coredns",), "1.25",
              in_module=True, sources=(("coredns.go", "fargatelab/coredns/main.go"),)),
    Component("registry", _REGISTRY, REGISTRY_VERSION, ("./fargatelab/registry",), "1.26",
              stamps=((f"{_REGISTRY}/version.version", REGISTRY_VERSION),), in_module=True,
              sources=(("registry.go", "fargatelab/registry/main.go"),)),
    Component("crane", _CRANE, CRANE_VERSION, (f"{_CRANE}/cmd/crane",), "1.25",
              stamps=((f"{_CRANE}/cmd/crane/cmd.Version", CRANE_VERSION),)),
)


@dataclass(frozen=True)
class DataPlaneBinaries:
    """Where each data-plane executable is; CNI plugins sit in their own directory, ``cni_dir``."""

    bin_dir: Path
    versions: dict[str, str] = field(default_factory=dict)
    seccomp: bool = True  # whether runc can apply seccomp profiles

    @property
    def cni_dir(self) -> Path:
        return self.bin_dir / CNI_SUBDIR

    def path(self, name: str) -> str:
        for component in COMPONENTS:
            for rel in component.binaries:
                if os.path.basename(rel) == name:
                    return str(self.bin_dir / rel)
        raise KeyError(f"no data-plane binary named {name!r}")


def dataplane_dir() -> Path:
    """This set of pins' cache directory: a change of any pin gets a directory of its own."""
    return cache_root() / f"dataplane-{pins_digest(COMPONENTS)}" / "bin"

def verify_dataplane(bin_dir: Path, components: tuple[Component, ...] = COMPONENTS) -> list[str]:
    """Problems with a data-plane bin directory: empty when every binary is present and matches its manifest.

    A directory without a manifest is only checked for executables.
    """
    return verify(bin_dir, components)


#: what the stand-in images are built with: provisioned first where a build of everything runs beside them
IMAGE_TOOLS = ("coredns", "registry", "crane")


def provision_dataplane(
    progress: Progress = lambda line: print(line, file=sys.stderr, flush=True),
    only: tuple[str, ...] = (),
) -> DataPlaneBinaries:
    """Return verified data-plane binaries, building from Go modules whichever are missing or corrupt (of the
    components named in ``only``, where it names any: the others may then be missing)."""
    target = dataplane_dir()
    wanted = tuple(c for c in COMPONENTS if not only or c.name in only)
    estimate = "a few minutes on 2 cores" if only else "all of them from cold take about 9 minutes on 2 cores"
    manifest = provision_go_binaries(wanted, target, "the data plane's", estimate, progress)
    return DataPlaneBinaries(
        target,
        {c.name: c.version for c in COMPONENTS},
        bool(manifest["components"].get("runc", {}).get("seccomp", True)),
    )


_KWOK = Component("kwok", "sigs.k8s.io/kwok", KWOK_VERSION, ("sigs.k8s.io/kwok/cmd/kwok",), "1.26")


def kwok_dir() -> Path:
    """kwok's cache directory (complete, or absent)."""
    return cache_root() / f"kwok-{pins_digest((_KWOK,))}" / "bin"


def kwok_built() -> bool:
    """Whether kwok is already provisioned (nothing is built to tell)."""
    return kwok_dir().is_dir() and not verify(kwok_dir(), (_KWOK,))


def provision_kwok(progress: Progress = lambda line: print(line, file=sys.stderr, flush=True)) -> str:
    """The path of a verified kwok: its official release where that is reachable, else built from its Go
    module (about a minute and a half on 2 cores). Only environments whose Fargate nodes are KWOK's need it,
    so a run on microVMs never builds it."""
    target = kwok_dir()
    provision_go_binaries((_KWOK,), target, "the KWOK data plane's", "about 1.5 minutes on 2 cores", progress,
                          release=_kwok_release)
    return str(target / "kwok")


def _kwok_release(component: Component, target: Path, progress: Progress) -> dict[str, object] | None:
    base = f"https://github.com/kubernetes-sigs/kwok/releases/download/{component.version}"
    return official_release(component, target, progress, f"{base}/kwok-linux-{release_arch()}",
                            f"{base}/checksums.txt")
