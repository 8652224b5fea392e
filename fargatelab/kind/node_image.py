"""kind's node image for the pinned Kubernetes, built here where ``kindest/node`` cannot be pulled.

``kind build node-image`` cannot work offline: it fetches etcd, CoreDNS, the pause image and kindnetd from
registries. So the image is made the way that command makes it, by hand, from what the harness builds
anyway:

1. **The base** (kind's ``kindest/base``): a Debian bookworm root file system (bookworm's systemd still boots
   on cgroup v1) with the packages kind's base Dockerfile installs, kind's own base files from its Go
   module, containerd, ctr, runc and the CNI plugins, imported with ``docker import``.
2. **The node**: kubeadm, kubelet and kubectl in /usr/bin, /kind/version, and the control plane's images
   imported into its containerd: kube-apiserver, -controller-manager, -scheduler and kube-proxy from the
   binaries built from Go modules, etcd 3.5, and the pause and CoreDNS stand-ins of the microVM data plane.

kind's own network plugin (kindnetd) is not in the image: the harness gives each node its bridge
configuration and routes once the nodes have joined (``fargatelab.kind.pod_network``). The image is tagged
with a digest of every ingredient and the code that assembles it, and built again only when one changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from ..errors import ExitCode, HarnessError
from ..local import binaries
from ..local.apt import need
from ..local.dataplane_binaries import CONTAINERD_VERSION, provision_dataplane
from ..local.go_build import Component, pins_digest, provision_go_binaries
from ..local.images import provision_images
from ..local.microvm_host import unmount_under
from ..local.registry import StandIn
from .engine import require_docker

__all__ = ["KIND_VERSION", "ETCD_IMAGE_TAG", "COREDNS_IMAGE_TAG", "KindTools", "provision_kind_tools",
           "provision_node_image", "oci_archive"]

Progress = Callable[[str], None]
#: kind v0.33.0: its ``kind load`` reads the configuration of containerd 2.2 and later (v0.30.0's does not)
KIND_VERSION = "v0.33.0"
#: kubeadm names etcd 3.6 for Kubernetes 1.34; the etcd built here is 3.5, whose flags kubeadm passes for a
#: 3.5 tag (kind's configuration patches kubeadm's imageTag to these)
ETCD_IMAGE_TAG = binaries.ETCD_VERSION.lstrip("v") + "-0"
COREDNS_IMAGE_TAG = "v1.14.7"
NODE_REPOSITORY = "fargate-labs/kind-node"
BASE_REPOSITORY = "fargate-labs/kind-base"
DIGEST_LABEL = "fargate-labs.ingredients"
#: what kind's base Dockerfile installs (less nfs-common and open-iscsi: no lab mounts NFS or iSCSI)
BASE_PACKAGES = ("systemd", "conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux", "mount",
                 "kmod", "libseccomp2", "pigz", "fuse-overlayfs", "bash", "ca-certificates", "curl", "jq",
                 "procps", "e2fsprogs")
_CONTAINERD = "github.com/containerd/containerd/v2"
COMPONENTS = (
    Component("kind", "sigs.k8s.io/kind", KIND_VERSION, ("sigs.k8s.io/kind",), "1.17"),
    # kubeadm, and the kubelet and kube-proxy as upstream stamps them (the microVMs' say -eks-…).
    Component("kubernetes-node", "k8s.io/kubernetes", binaries.KUBERNETES_VERSION,
              tuple(f"k8s.io/kubernetes/cmd/{c}" for c in ("kubeadm", "kubelet", "kube-proxy")), "1.24"),
    Component("ctr", _CONTAINERD, CONTAINERD_VERSION, (f"{_CONTAINERD}/cmd/ctr",), "1.26.6",
              ("no_btrfs", "no_devmapper", "no_zfs", "urfave_cli_no_docs"),
              ((f"{_CONTAINERD}/version.Version", CONTAINERD_VERSION),)),
)


class KindTools:
    """Where kind, kubeadm, the kind flavour of kubelet and kube-proxy, and ctr are."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir

    def path(self, name: str) -> str:
        return str(self.bin_dir / name)


def provision_kind_tools(progress: Progress) -> KindTools:
    target = binaries.cache_root() / f"kind-{pins_digest(COMPONENTS)}" / "bin"
    provision_go_binaries(COMPONENTS, target, "kind's", "about 4 minutes on 2 cores with a warm Go cache", progress)
    return KindTools(target)


def provision_node_image(progress: Progress) -> str:
    """The node image's reference, built now if no image of the same ingredients is in Docker."""
    require_docker()
    kind = provision_kind_tools(progress)
    control = binaries.provision(progress=progress)
    data = provision_dataplane(progress)
    stand_ins = provision_images(progress).records
    pause, coredns = (stand_ins[n] for n in ("registry.k8s.io/pause:3.10", _COREDNS_STAND_IN))
    files = {
        **{f"kind/{n}": kind.path(n) for n in ("kubeadm", "kubelet", "kube-proxy", "ctr")},
        **{f"control/{n}": control.path(n) for n in ("kube-apiserver", "kube-controller-manager",
                                                      "kube-scheduler", "kubectl", "etcd")},
        **{f"data/{n}": data.path(n) for n in ("containerd", "containerd-shim-runc-v2", "runc")},
        **{f"cni/{n}": str(data.cni_dir / n) for n in ("bridge", "host-local", "loopback", "portmap", "ptp")},
    }
    digest = _ingredients_digest(files, [pause.digest, coredns.digest])
    ref = f"{NODE_REPOSITORY}:{binaries.KUBERNETES_VERSION}-{digest}"
    if _has_image(ref):
        return ref
    with open(binaries.cache_root() / "kind-node.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in binaries.cache_root().glob("kind-node-*"):  # a build killed halfway, its mounts inside
            unmount_under(stale)
        if _has_image(ref):
            return ref
        work = Path(tempfile.mkdtemp(prefix="kind-node-", dir=binaries.cache_root()))
        try:
            progress(f"building kind's node image {ref} (about 3 minutes)")
            base = _base_image(digest, files, kind, work, progress)
            _node_image(base, ref, digest, files, [(pause, ["registry.k8s.io/pause:3.10",
                                                            "registry.k8s.io/pause:3.10.1"]),
                                                   (coredns, [f"registry.k8s.io/coredns/coredns:{COREDNS_IMAGE_TAG}"])],
                        work, progress)
            _docker("rmi", base)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    progress(f"kind's node image {ref} built")
    return ref


_COREDNS_STAND_IN = "602401143452.dkr.ecr.ap-northeast-2.amazonaws.com/eks/coredns:v1.11.4-eksbuild.2"


def oci_archive(stand_in: StandIn, names: list[str], out: Path) -> Path:
    """An OCI archive of a stand-in's image layout, its manifest named ``names`` (as containerd's import
    and ``kind load image-archive`` read the names)."""
    index = json.loads((stand_in.layout / "index.json").read_text())
    (manifest,) = index["manifests"]
    index["manifests"] = [dict(manifest, annotations={"io.containerd.image.name": name,
                                                      "org.opencontainers.image.ref.name": name.rpartition(":")[2]})
                          for name in names]
    with tarfile.open(out, "w") as tar:
        for entry in ("oci-layout", "blobs"):
            tar.add(stand_in.layout / entry, entry)
        data = json.dumps(index).encode()
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out


# --- building ------------------------------------------------------------------------------------------


def _ingredients_digest(files: dict[str, str], more: list[str]) -> str:
    h = hashlib.sha256()
    for key in sorted(files):
        with open(files[key], "rb") as f:
            h.update(f"{key} {hashlib.file_digest(f, 'sha256').hexdigest()}\n".encode())
    for item in [*more, KIND_VERSION, *BASE_PACKAGES,
                 inspect.getsource(_base_image), inspect.getsource(_node_image), inspect.getsource(_component_images)]:
        h.update(item.encode())
    return h.hexdigest()[:12]


def _base_image(digest: str, files: dict[str, str], kind: KindTools, work: Path, progress: Progress) -> str:
    root = work / "base"
    _debian_root(root, BASE_PACKAGES, work / "mmdebstrap.log", progress)
    files_dir = _kind_base_files(work)
    for source in (p for p in files_dir.rglob("*") if p.is_file()):
        rel = source.relative_to(files_dir)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / rel)  # the module cache's files are read-only: modes set here
        (root / rel).chmod(0o755 if rel.parts[0] == "kind" or rel.parts[:3] == ("usr", "local", "bin") else 0o644)
    for name in ("containerd", "containerd-shim-runc-v2", "ctr"):
        shutil.copy2(files[f"data/{name}"] if name != "ctr" else files["kind/ctr"], root / "usr/local/bin" / name)
    (root / "usr/local/sbin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(files["data/runc"], root / "usr/local/sbin/runc")
    (root / "opt/cni/bin").mkdir(parents=True, exist_ok=True)
    for name in ("bridge", "host-local", "loopback", "portmap", "ptp"):
        shutil.copy2(files[f"cni/{name}"], root / "opt/cni/bin" / name)
    # containerd's default spec, with kind's hook that mounts the product files and without rlimits
    spec = json.loads(subprocess.run([kind.path("ctr"), "oci", "spec"], capture_output=True, text=True,
                                     check=True).stdout)
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
    spec["process"].pop("rlimits", None)
    (root / "etc/containerd/cri-base.json").write_text(json.dumps(spec, indent=2))
    # kind's base Dockerfile: no units started that a container does not need, journald off the kernel log
    for pattern in ("lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
                    "lib/systemd/system/multi-user.target.wants/*", "etc/systemd/system/*.wants/*",
                    "lib/systemd/system/local-fs.target.wants/*", "lib/systemd/system/sockets.target.wants/*udev*",
                    "lib/systemd/system/sockets.target.wants/*initctl*", "lib/systemd/system/basic.target.wants/*"):
        for path in root.glob(pattern):
            path.unlink()
    with open(root / "etc/systemd/journald.conf", "a") as conf:
        conf.write("ReadKMsg=no\n")
    (root / "sbin/init").unlink(missing_ok=True)
    (root / "sbin/init").symlink_to("/lib/systemd/systemd")
    # What `systemctl enable` and `mask` would link (the host need not have systemd).
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("kubelet.service", "containerd.service", "undo-mount-hacks.service"):
        (wants / unit).symlink_to(f"/etc/systemd/system/{unit}")
    (root / "etc/systemd/system/systemd-binfmt.service").symlink_to("/dev/null")
    (root / "etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
    (root / "etc/cni/net.d").mkdir(parents=True, exist_ok=True)  # filled per node once it has joined
    base = f"{BASE_REPOSITORY}:{digest}"
    progress("importing the base into Docker")
    with subprocess.Popen(["tar", "-C", str(root), "-cpf", "-", "."], stdout=subprocess.PIPE) as tar:
        _docker("import", "--change", "ENV container=docker", "--change",
                'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]', "-", base, stdin=tar.stdout)
    # dockerd 20.10 takes no STOPSIGNAL in `import --change`: systemd stops on SIGRTMIN+3, as in kindest/base.
    (work / "stop").mkdir()
    (work / "stop" / "Dockerfile").write_text(f"FROM {base}\nSTOPSIGNAL SIGRTMIN+3\n")
    _docker("build", "-q", "-t", base, str(work / "stop"), env={"DOCKER_BUILDKIT": "0"})
    return base


def _component_images(files: dict[str, str], work: Path, progress: Progress) -> Path:
    """The control plane's images, named as kubeadm names them for the pinned version, in one archive."""
    version = binaries.KUBERNETES_VERSION
    names = []
    for name, binary, tag in (("kube-apiserver", "control/kube-apiserver", version),
                              ("kube-controller-manager", "control/kube-controller-manager", version),
                              ("kube-scheduler", "control/kube-scheduler", version),
                              ("etcd", "control/etcd", ETCD_IMAGE_TAG)):
        root = work / "images" / name
        (root / "usr/local/bin").mkdir(parents=True)
        (root / "tmp").mkdir(mode=0o1777)
        shutil.copy2(files[binary], root / "usr/local/bin" / name)
        names.append(_import(root, f"registry.k8s.io/{name}:{tag}", name))
    # kube-proxy programs netfilter with the iptables commands: a Debian root with them
    root = work / "images" / "kube-proxy"
    _debian_root(root, ("iptables", "nftables", "conntrack", "ipset"), work / "kube-proxy-mmdebstrap.log", progress)
    shutil.copy2(files["kind/kube-proxy"], root / "usr/local/bin/kube-proxy")
    names.append(_import(root, f"registry.k8s.io/kube-proxy:{version}", "kube-proxy"))
    archive = work / "images.tar"
    _docker("save", "-o", str(archive), *names)
    _docker("rmi", *names)
    return archive


def _import(root: Path, name: str, command: str) -> str:
    with subprocess.Popen(["tar", "-C", str(root), "--owner=0", "--group=0", "-cf", "-", "."],
                          stdout=subprocess.PIPE) as tar:
        _docker("import", "--change", "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "--change",
                f'ENTRYPOINT ["/usr/local/bin/{command}"]', "-", name, stdin=tar.stdout)
    return name


def _node_image(base: str, ref: str, digest: str, files: dict[str, str], stand_ins: list[tuple[StandIn, list[str]]],
                work: Path, progress: Progress) -> None:
    archives = [_component_images(files, work, progress)]
    archives += [oci_archive(s, names, work / f"{s.layout.name}.tar") for s, names in stand_ins]
    builder = f"fargate-labs-kind-build-{digest}"
    _docker("rm", "-f", builder, check=False)
    _docker("run", "-d", "--name", builder, "--entrypoint=sleep", "--security-opt", "seccomp=unconfined", base,
            "infinity")
    try:
        for name, rel in (("kubeadm", "kind/kubeadm"), ("kubelet", "kind/kubelet"), ("kubectl", "control/kubectl")):
            _docker("cp", files[rel], f"{builder}:/usr/bin/{name}")
        _docker("exec", builder, "sh", "-c", f"chown root:root /usr/bin/kube* && chmod 0755 /usr/bin/kube* && "
                f"echo {binaries.KUBERNETES_VERSION} > /kind/version")
        # The images go into the node's containerd as kind's own build puts them: pinned, not unpacked.
        _docker("exec", "-d", builder, "containerd")
        _docker("exec", builder, "sh", "-c", "for i in $(seq 100); do ctr version >/dev/null 2>&1 && exit 0; "
                "sleep 0.2; done; exit 1")
        for archive in archives:
            with open(archive, "rb") as data:
                _docker("exec", "-i", builder, "ctr", "--namespace=k8s.io", "images", "import",
                        "--label=io.cri-containerd.pinned=pinned", "--all-platforms", "--no-unpack", "--digests", "-",
                        stdin=data)
        _docker("exec", builder, "sh", "-c", "ctr -n k8s.io images ls -q | grep '^import-' | "
                "xargs -r ctr -n k8s.io images rm >/dev/null; pkill -x containerd; "
                "while pgrep -x containerd >/dev/null; do sleep 0.2; done; rm -rf /tmp/*")
        _docker("commit", "--change", 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]', "--change",
                f"LABEL {DIGEST_LABEL}={digest}", builder, ref)
    finally:
        _docker("rm", "-f", builder, check=False)


def _kind_base_files(work: Path) -> Path:
    """kind's base image files (entrypoint, units, containerd configuration) from its Go module."""
    found = subprocess.run(["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{KIND_VERSION}"],
                           capture_output=True, text=True, cwd=work, env=dict(os.environ, GOFLAGS="-mod=mod"))
    try:
        return Path(json.loads(found.stdout)["Dir"]) / "images" / "base" / "files"
    except (ValueError, KeyError):
        raise HarnessError(f"cannot download sigs.k8s.io/kind@{KIND_VERSION} with Go ({found.stderr.strip()[-200:]}): "
                           "check GOPROXY and the network", ExitCode.MISSING_BINARY) from None


def _debian_root(root: Path, packages: tuple[str, ...], log: Path, progress: Progress) -> None:
    need("mmdebstrap", ["mmdebstrap"], "kind's node image", progress)
    mirror = os.environ.get("FARGATE_LABS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("FARGATE_LABS_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    progress(f"mmdebstrap bookworm with {', '.join(packages)}")
    _run(["mmdebstrap", "--variant=minbase", "--mode=root", f"--include={','.join(packages)}",
          *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale")),
          "--dpkgopt=path-include=/usr/share/doc/*/copyright", "bookworm", str(root),
          f"deb {mirror} bookworm main", f"deb {mirror} bookworm-updates main",
          f"deb {security} bookworm-security main"], log, f"mmdebstrap for {root.name}")
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/log/*.log"):
        for path in root.glob(pattern):
            path.unlink() if not path.is_dir() else shutil.rmtree(path)


def _has_image(ref: str) -> bool:
    return _docker("image", "inspect", ref, check=False).returncode == 0


def _docker(*args: str, stdin: IO[Any] | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The Debian client where there is one: a newer client's `build` wants buildx, which dockerd 20.10 lacks.
    docker = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    done = subprocess.run([docker, *args], stdin=stdin, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))
    if check and done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise HarnessError(f"building kind's node image: `docker {' '.join(args[:2])}` failed: {tail}",
                           ExitCode.START_FAILED)
    return done


def _run(cmd: list[str], log: Path, what: str) -> None:
    with open(log, "a") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise HarnessError(f"building kind's node image: {what} failed ({tail[0][:300]}; log {log})",
                           ExitCode.START_FAILED)
