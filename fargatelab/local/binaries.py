"""Provisioning of the Kubernetes binaries: cached, downloaded with checksums, or built from Go modules.

The cache lives outside the repository (``~/.cache/fargate-labs/k8s-<version>/bin`` unless
``FARGATE_LABS_CACHE`` says otherwise) and carries a manifest of SHA-256 digests, checked on every
reuse, so a truncated or corrupt binary is noticed instead of crashing a control plane later.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import ExitCode, HarnessError

__all__ = [
    "KUBERNETES_VERSION",
    "ETCD_VERSION",
    "KWOK_VERSION",
    "COMPONENTS",
    "Binaries",
    "cache_root",
    "cached_bin_dir",
    "fetch",
    "fetch_verified",
    "kubernetes_module",
    "provision",
    "release_arch",
    "verify",
]

KUBERNETES_VERSION = os.environ.get("FARGATE_LABS_K8S_VERSION", "v1.34.4")
ETCD_VERSION = "v3.5.21"
KWOK_VERSION = "v0.8.0"
KUBE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
#: what every environment starts from; kwok, which only KWOK nodes need, is provisioned on its own when they
#: are used (fargatelab.local.dataplane_binaries.provision_kwok)
COMPONENTS = ("etcd",) + KUBE_COMPONENTS
MANIFEST = "MANIFEST.json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Binaries:
    """Where each component's executable is."""

    bin_dir: Path
    kubernetes_version: str

    def path(self, component: str) -> str:
        return str(self.bin_dir / component)


def cache_root() -> Path:
    base = os.environ.get("FARGATE_LABS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fargate-labs"
    )
    return Path(base)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(bin_dir: Path, components: Iterable[str] = COMPONENTS) -> list[str]:
    """Problems with a binary directory: empty when every component is present and matches its manifest.

    A directory without a manifest (a user's own ``--bin-dir``) is only checked for executables.
    """
    problems = []
    manifest_path = bin_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    for name in components:
        p = bin_dir / name
        if not p.is_file() or not os.access(p, os.X_OK):
            problems.append(f"{name}: missing or not executable in {bin_dir}")
        elif manifest is not None and manifest.get(name) != _digest(p):
            problems.append(f"{name}: checksum differs from {manifest_path} (corrupt or replaced)")
    return problems


def _write_manifest(bin_dir: Path) -> None:
    manifest = {name: _digest(bin_dir / name) for name in COMPONENTS}
    (bin_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def cached_bin_dir(version: str = KUBERNETES_VERSION) -> Path:
    """Where the Kubernetes binaries of ``version`` are cached (complete, or absent)."""
    return cache_root() / f"k8s-{version}" / "bin"


def provision(
    version: str = KUBERNETES_VERSION,
    bin_dir: str | os.PathLike[str] | None = None,
    progress: Progress = lambda line: print(line, file=sys.stderr, flush=True),
) -> Binaries:
    """Return verified binaries: the user's ``bin_dir``, the cache, a download, or a build, in that order."""
    if bin_dir is not None:
        given = Path(bin_dir)
        problems = verify(given)
        if problems:
            raise HarnessError(
                f"--bin-dir {given}: {problems[0]}; put etcd, kube-apiserver, kube-controller-manager, "
                "kube-scheduler and kubectl there (and kwok, for KWOK nodes)",
                ExitCode.MISSING_BINARY,
            )
        return Binaries(given, version)

    target = cached_bin_dir(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Several processes provision at once (a run's workers, another session's build): the first builds, the
    # others wait for it and then find the cache complete.
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            problems = verify(target)
            if not problems:
                return Binaries(target, version)
            progress(f"cache {target} rejected ({problems[0]}); provisioning again")
            shutil.rmtree(target, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        try:
            try:
                _download_all(version, staging, progress)
            except OSError as exc:
                progress(f"download of the official binaries failed ({exc}); building from Go modules")
                _build_all(version, staging, progress)
            _write_manifest(staging)
            # The rename is atomic, so a cache directory is either complete or absent.
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Binaries(target, version)


# --- download (machines with internet) -----------------------------------------------------------


def release_arch() -> str:
    """This machine's architecture as release downloads name it (amd64, arm64)."""
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "amd64")


def fetch(url: str, timeout: float = 20) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URLs
        data: bytes = resp.read()
        return data


def fetch_verified(url: str, sha256: str) -> bytes:
    data = fetch(url, timeout=300)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise OSError(f"checksum mismatch for {url}: expected {sha256}, got {actual}")
    return data


def _download_all(version: str, out: Path, progress: Progress) -> None:
    import io
    import tarfile

    arch = release_arch()
    base = f"https://dl.k8s.io/release/{version}/bin/linux/{arch}"
    # Probe first so that an offline machine falls through to the build in well under a second.
    fetch(f"{base}/kubectl.sha256", timeout=5)
    for name in KUBE_COMPONENTS:
        progress(f"downloading {name} {version}")
        sha = fetch(f"{base}/{name}.sha256").decode().split()[0]
        _install_bytes(out / name, fetch_verified(f"{base}/{name}", sha))

    etcd_base = f"https://github.com/etcd-io/etcd/releases/download/{ETCD_VERSION}"
    tarball = f"etcd-{ETCD_VERSION}-linux-{arch}.tar.gz"
    sums = fetch(f"{etcd_base}/SHA256SUMS").decode()
    sha = next(line.split()[0] for line in sums.splitlines() if line.endswith(tarball))
    progress(f"downloading etcd {ETCD_VERSION}")
    with tarfile.open(fileobj=io.BytesIO(fetch_verified(f"{etcd_base}/{tarball}", sha))) as tar:
        member = tar.extractfile(f"etcd-{ETCD_VERSION}-linux-{arch}/etcd")
        assert member is not None
        _install_bytes(out / "etcd", member.read())



def _install_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o755)


# --- build from the Go module proxy ---------------------------------------------------------------


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise HarnessError(
            "no official binaries could be downloaded and Go is not installed: install Go >= 1.24 "
            "or pass --bin-dir DIR holding etcd, kube-apiserver, kube-controller-manager, "
            "kube-scheduler and kubectl",
            ExitCode.MISSING_BINARY,
        )
    return go


def _staging_modules(version: str) -> list[str]:
    """The k8s.io modules that k8s.io/kubernetes replaces with its own staging directories."""
    proxy = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0].split("|")[0]
    if proxy in ("direct", "off"):
        proxy = "https://proxy.golang.org"
    text = fetch(f"{proxy}/k8s.io/kubernetes/@v/{version}.mod", timeout=60).decode()
    return [
        line.split()[0]
        for line in text.splitlines()
        if "=> ./staging/src/" in line
    ]


#: The compiler writes no DWARF: every binary is linked with -s -w, which drops it anyway (a cold build of
#: helm: 9 % less time).
FAST_COMPILE = "-gcflags=all=-dwarf=false"


def _toolchain_gogc() -> str:
    """The Go toolchain's own GOGC: collecting a quarter as often saves another 8 % of a cold build (helm:
    136 s, 124 s without DWARF, 114 s with both) where memory is plentiful; the largest step, linking
    eksctl or kube-apiserver, stayed under 2 GB with it."""
    try:
        with open("/proc/meminfo") as f:
            total_kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal:")))
    except (OSError, StopIteration, ValueError):
        return "100"
    return "400" if total_kb >= 8 * 1024 * 1024 else "100"


def run_go(
    args: list[str], cwd: Path, progress: Progress, what: str, extra_env: dict[str, str] | None = None,
    log: Path | None = None, remedy: str = "pass --bin-dir DIR with prebuilt binaries instead",
    go: str | None = None,
) -> float:
    """Run ``go ARGS`` in ``cwd`` with the module proxy and the local toolchain, CGO off unless ``extra_env`` says
    otherwise; a line every 30 s while it builds; a failure is one line with the log's last line and
    ``remedy``. Returns the seconds it took."""
    env = dict(os.environ, GOFLAGS=f"-mod=mod {FAST_COMPILE}", CGO_ENABLED="0", GOTOOLCHAIN="local")
    env.setdefault("GOGC", _toolchain_gogc())
    env.update(extra_env or {})
    log = log or cwd / "build.log"
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            progress(f"  still building {what} ({time.monotonic() - started:.0f}s)")

    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        with open(log, "ab") as out:
            proc = subprocess.run([go or _go(), *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        done.set()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise HarnessError(f"building {what} with Go failed: {tail[0]} (full log {log}); {remedy}",
                           ExitCode.MISSING_BINARY)
    progress(f"  built {what} in {seconds:.0f}s")
    return seconds


def kubernetes_module(version: str = KUBERNETES_VERSION) -> tuple[Path, list[str]]:
    """The module directory and ``go build`` flags that build ``k8s.io/kubernetes/cmd/<name>`` at ``version``.

    Every build of Kubernetes commands shares this directory, so a command built after others recompiles
    only the packages they did not need. Raises OSError when the Go module proxy cannot be reached.
    """
    work = cache_root() / "build" / f"k8s-{version}"
    work.mkdir(parents=True, exist_ok=True)
    minor = version.lstrip("v").split(".")
    staging_version = f"v0.{minor[1]}.{minor[2]}"
    modules = _staging_modules(version)
    replaces = "\n".join(f"\t{m} => {m} {staging_version}" for m in modules)
    (work / "go.mod").write_text(
        f"module fargatelab.local/k8s\n\ngo 1.24\n\nrequire k8s.io/kubernetes {version}\n\n"
        f"replace (\n{replaces}\n)\n"
    )
    ldflags = " ".join(
        f"-X {pkg}.{key}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in (
            ("gitVersion", version),
            ("gitMajor", minor[0]),
            ("gitMinor", minor[1]),
            ("gitTreeState", "clean"),
        )
    )
    return work, ["-trimpath", "-ldflags", f"-s -w {ldflags}"]


def _build_all(version: str, out: Path, progress: Progress) -> None:
    _go()  # fail with the clear line before any work when Go is missing
    try:
        work, flags = kubernetes_module(version)
    except OSError as exc:
        raise HarnessError(
            f"cannot reach the Go module proxy to build Kubernetes {version} ({exc}); "
            "pass --bin-dir DIR with prebuilt binaries instead",
            ExitCode.MISSING_BINARY,
        ) from None
    progress(f"building Kubernetes {version} from Go modules (a cold build takes 5-25 minutes on 2 cores)")
    run_go(
        ["build", *flags, "-o", str(out) + os.sep]
        + [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_COMPONENTS],
        work,
        progress,
        "kube-apiserver, kube-controller-manager, kube-scheduler and kubectl",
    )

    etcd_work = cache_root() / "build" / f"etcd-{ETCD_VERSION}"
    etcd_work.mkdir(parents=True, exist_ok=True)
    (etcd_work / "go.mod").write_text(
        f"module fargatelab.local/etcd\n\ngo 1.23\n\nrequire go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
    )
    (etcd_work / "main.go").write_text(
        "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\n"
        "func main() { etcdmain.Main(os.Args) }\n"
    )
    progress(f"building etcd {ETCD_VERSION}")
    run_go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "."], etcd_work, progress, "etcd")

