"""Go commands built from the module proxy into a cached bin directory with a manifest of SHA-256 digests.

Nothing is downloaded prebuilt: the Go module proxy is the one source that machines without internet still
reach, and a build from it is reproducible from the pinned versions alone. A component whose binaries are
missing or differ from the manifest is rebuilt on its own, the others are kept. The data plane's binaries
and the workshop's command-line tools are both built here.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ExitCode, HarnessError
from .binaries import MANIFEST, cache_root, fetch, fetch_verified, kubernetes_module, run_go

__all__ = ["Component", "MANIFEST", "official_release", "pins_digest", "provision_go_binaries", "verify"]

Progress = Callable[[str], None]

#: where the project's own Go sources are
DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class Component:
    """One ``go install`` (or, for Kubernetes, ``go build`` in the shared module): what it makes and how."""

    name: str
    module: str
    version: str
    packages: tuple[str, ...]
    min_go: str  # the ``go`` line of the module's go.mod: GOTOOLCHAIN=local refuses anything older
    tags: tuple[str, ...] = ()
    stamps: tuple[tuple[str, str], ...] = ()  # -X variables the upstream Makefiles set
    cgo: bool = False
    subdir: str = ""
    #: built inside a copy of the module (``go build``), for modules whose go.mod has replace directives,
    #: which ``go install module@version`` refuses
    in_module: bool = False
    #: this project's own Go files (in fargatelab/data), each copied to its path in the build's module
    sources: tuple[tuple[str, str], ...] = ()

    @property
    def binaries(self) -> tuple[str, ...]:
        """Paths relative to the bin directory, named as ``go install`` names them."""
        return tuple(os.path.join(self.subdir, _command_name(p)) if self.subdir else _command_name(p)
                     for p in self.packages)


def pins_digest(components: tuple[Component, ...], *more: str) -> str:
    """A short hash of what ``components`` (and ``more`` pins) are built from: the name of their cache
    directory, so that a change of any pin gets a directory of its own."""
    pins: list[object] = [[c.name, c.module, c.version, list(c.packages), list(c.tags), [list(s) for s in c.stamps]]
                          + [_digest(DATA / name) for name, _ in c.sources] for c in components]
    return hashlib.sha256(json.dumps(pins + list(more), sort_keys=True).encode()).hexdigest()[:12]


def _command_name(package: str) -> str:
    parts = package.split("/")
    # Go names a command after its last element, skipping a major-version suffix such as /v3.
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        return parts[-2]
    return parts[-1]


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read_manifest(bin_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((bin_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _component_problems(bin_dir: Path, component: Component, manifest: dict[str, Any] | None) -> list[str]:
    problems = []
    entry = (manifest or {}).get("components", {}).get(component.name)
    if manifest is not None and (not isinstance(entry, dict) or entry.get("version") != component.version):
        problems.append(f"{component.name}: not built at {component.version} according to {bin_dir / MANIFEST}")
        entry = None
    for rel in component.binaries:
        p = bin_dir / rel
        if not p.is_file() or not os.access(p, os.X_OK):
            problems.append(f"{rel}: missing or not executable in {bin_dir}")
        elif entry is not None and entry.get("sha256", {}).get(rel) != _digest(p):
            problems.append(f"{rel}: checksum differs from {bin_dir / MANIFEST} (corrupt or replaced)")
    return problems

def verify(bin_dir: Path, components: tuple[Component, ...]) -> list[str]:
    """Problems with a bin directory: empty when every binary is present and matches its manifest.

    A directory without a manifest is only checked for executables.
    """
    manifest = _read_manifest(bin_dir) if (bin_dir / MANIFEST).exists() else None
    if (bin_dir / MANIFEST).exists() and manifest is None:
        return [f"{bin_dir / MANIFEST}: unreadable"]
    return [p for c in components for p in _component_problems(bin_dir, c, manifest)]


#: an official release of a component, fetched and checked against its published checksum into the target;
#: its manifest entry, or None where it cannot be reached (then it is built)
Release = Callable[[Component, Path, Progress], "dict[str, Any] | None"]


def official_release(component: Component, target: Path, progress: Progress, url: str, checksums: str,
                     member: str | None = None) -> dict[str, Any] | None:
    """Download ``component``'s official release from ``url`` into ``target``, checked against the published
    ``checksums`` file: its manifest entry, or None where it cannot be reached or does not match (then it is
    built). ``member``: the command's path inside a .tar.gz; without it the download is the command itself."""
    try:
        listed = fetch(checksums, timeout=5).decode()  # an offline machine falls through in seconds
        name = url.rsplit("/", 1)[1]
        sha = next(line.split()[0] for line in listed.splitlines() if line.split() and line.split()[-1] == name)
        progress(f"downloading {component.name} {component.version}")
        data = fetch_verified(url, sha)
        if member is not None:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                found = tar.extractfile(member)
                if found is None:
                    raise OSError(f"{member} is not in {url}")
                data = found.read()
    except (OSError, StopIteration, tarfile.TarError) as exc:
        progress(f"the official {component.name} {component.version} could not be used ({exc or 'no checksum'}): "
                 "building it")
        return None
    path = target / component.name
    tmp = path.with_name(f".{path.name}.download")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, path)
    return {"version": component.version, "source": url, "archive_sha256": sha,
            "sha256": {component.name: hashlib.sha256(data).hexdigest()}}


def provision_go_binaries(components: tuple[Component, ...], target: Path, whose: str, estimate: str,
                          progress: Progress, release: Release | None = None) -> dict[str, Any]:
    """Put into ``target`` whichever of ``components`` are missing or corrupt there — the official release
    where ``release`` reaches it, else a build from the Go module — and return the manifest."""
    target.mkdir(parents=True, exist_ok=True)
    # Parallel test workers provision at once: the first builds, the others wait and then find it done.
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = _read_manifest(target) or {}
        if not isinstance(manifest.get("components"), dict):
            manifest = {"components": {}}
        recorded = manifest["components"]
        todo = []
        for component in components:
            problems = _component_problems(target, component, manifest)
            if problems and component.name in recorded:
                progress(f"cached {problems[0]}; building {component.name} again")
            elif not problems and component.name == "runc" and recorded["runc"].get("seccomp") is False \
                    and _has_libseccomp():
                progress("libseccomp is installed now: building runc again, with seccomp")
                problems = ["built without seccomp"]
            if problems:
                todo.append(component)
        for component in list(todo):
            entry = release(component, target, progress) if release is not None else None
            if entry is not None:
                recorded[component.name] = entry
                _write_manifest(target, manifest)
                todo.remove(component)
        if todo:
            go_version = _check_go(todo)
            progress(f"building {whose} {', '.join(c.name for c in todo)} from Go modules, one at a time "
                     f"({estimate})")
            started = time.monotonic()
            for component in todo:
                recorded[component.name] = dict(_build(component, target, progress), go=go_version)
                _write_manifest(target, manifest)
            progress(f"{', '.join(c.name for c in todo)} ready in {target} ({time.monotonic() - started:.0f}s of builds)")
        problems = verify(target, components)
        if problems:
            raise HarnessError(f"{whose.removeprefix('the ')} binaries: {problems[0]}; delete {target.parent} and "
                               "run again", ExitCode.MISSING_BINARY)
    return manifest


def _write_manifest(bin_dir: Path, manifest: dict[str, Any]) -> None:
    tmp = bin_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, bin_dir / MANIFEST)

# --- the Go toolchain ------------------------------------------------------------------------------


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise HarnessError("building from Go modules needs Go, and `go` is not on PATH: install it "
                           "(https://go.dev/dl/) and run again", ExitCode.MISSING_BINARY)
    return go


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])


def _check_go(components: list[Component]) -> str:
    """The local Go's version; refuses one too old before the first build, not after minutes of others."""
    local = subprocess.run([_go(), "env", "GOVERSION"], capture_output=True, text=True,
                           env=dict(os.environ, GOTOOLCHAIN="local")).stdout.strip()
    neediest = max(components, key=lambda c: _version_tuple(c.min_go))
    if local and _version_tuple(local.removeprefix("go")) < _version_tuple(neediest.min_go):
        raise HarnessError(
            f"{neediest.name} {neediest.version} needs Go >= {neediest.min_go} but `go` is {local}: "
            "install a newer Go (https://go.dev/dl/) and run again",
            ExitCode.MISSING_BINARY,
        )
    return local


def _build(component: Component, target: Path, progress: Progress) -> dict[str, Any]:
    """Build one component into ``target`` and return its manifest entry."""
    logs = target.parent / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{component.name}.log"
    log.write_text("")
    tags = list(component.tags)
    seccomp = None
    if component.name == "runc":
        _need_c_compiler()
        seccomp = _seccomp_ready(progress, log)
        if seccomp:
            tags.append("seccomp")
    flags = ["-trimpath", "-ldflags", _ldflags("-s -w", component.stamps)]
    flags += ["-tags", ",".join(tags)] if tags else []
    # Built beside the target and moved in file by file, so a binary in bin/ is always whole.
    staging = Path(tempfile.mkdtemp(prefix=f".{component.name}-", dir=target.parent))
    try:
        env = {"GOBIN": str(staging), "CGO_ENABLED": "1" if component.cgo else "0"}
        if component.module == "k8s.io/kubernetes":
            try:
                work, flags = kubernetes_module(component.version)
            except OSError as exc:
                raise HarnessError(f"cannot reach the Go module proxy to build kubelet and kube-proxy ({exc}): "
                                   "check GOPROXY and the network, then run again", ExitCode.MISSING_BINARY) from None
            flags = _with_stamps(flags, component.stamps)
            _add_sources(component, work)
            args = ["build", *flags, "-o", str(staging) + os.sep, *component.packages]
        elif component.in_module:
            work = _module_copy(component, log, progress)
            _add_sources(component, work)
            args = ["build", *flags, "-o", str(staging) + os.sep, *component.packages]
        else:
            # go install outside any module, so the component's own go.mod decides its dependencies.
            work = staging
            args = ["install", *flags, *(f"{p}@{component.version}" for p in component.packages)]
        names = [os.path.basename(rel) for rel in component.binaries]
        what = component.name if names == [component.name] else f"{component.name} ({', '.join(names)})"
        progress(f"building {what} {component.version}")
        seconds = _run_go(args, work, env, log, progress, what)
        entry: dict[str, Any] = {"version": component.version, "tags": tags, "build_seconds": round(seconds),
                                 "sha256": {}}
        for rel in component.binaries:
            built = staging / os.path.basename(rel)
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            entry["sha256"][rel] = _digest(built)
            os.replace(built, dest)
        if seccomp is not None:
            entry["seccomp"] = seccomp
        return entry
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _add_sources(component: Component, work: Path) -> None:
    for name, rel in component.sources:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / name, work / rel)


def _module_copy(component: Component, log: Path, progress: Progress) -> Path:
    """A writable copy of ``component``'s module at its version (the module cache is read-only)."""
    work = cache_root() / "build" / f"{component.name}-{component.version}"
    if not (work / "go.mod").exists():
        progress(f"downloading the module {component.module}@{component.version}")
        found = subprocess.run([_go(), "mod", "download", "-json", f"{component.module}@{component.version}"],
                               capture_output=True, text=True, env=dict(os.environ, GOTOOLCHAIN="local"))
        try:
            source = Path(json.loads(found.stdout)["Dir"])
        except (ValueError, KeyError):
            log.write_text(found.stdout + found.stderr)
            raise HarnessError(f"cannot download the Go module {component.module}@{component.version} (see {log}): "
                               "check GOPROXY and the network, then run again", ExitCode.MISSING_BINARY) from None
        partial = work.with_name(work.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial)
        for path in [partial, *partial.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
        shutil.rmtree(work, ignore_errors=True)
        os.replace(partial, work)
    return work


def _ldflags(base: str, stamps: tuple[tuple[str, str], ...]) -> str:
    """``base`` with each stamped variable's ``-X`` set to the stamp's value, replaced in place or appended.

    Replaced rather than appended, so the command line holds one value per variable instead of relying on
    the linker letting the last ``-X`` win.
    """
    words = base.split()
    wanted = dict(stamps)
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] == "-X" and i + 1 < len(words):
            var = words[i + 1].split("=", 1)[0]
            out += ["-X", f"{var}={wanted.pop(var)}" if var in wanted else words[i + 1]]
            i += 2
        else:
            out.append(words[i])
            i += 1
    for var, value in wanted.items():
        out += ["-X", f"{var}={value}"]
    return " ".join(out)


def _with_stamps(flags: list[str], stamps: tuple[tuple[str, str], ...]) -> list[str]:
    if not stamps:
        return flags
    if "-ldflags" not in flags:
        return [*flags, "-ldflags", _ldflags("", stamps)]
    at = flags.index("-ldflags") + 1
    return [*flags[:at], _ldflags(flags[at], stamps), *flags[at + 1:]]


def _run_go(args: list[str], cwd: Path, extra_env: dict[str, str], log: Path, progress: Progress,
            what: str) -> float:
    return run_go(args, cwd, progress, what, extra_env, log, go=_go(),
                  remedy="fix the cause and run again (components already built are kept)")


# --- runc's C side ---------------------------------------------------------------------------------


def _need_c_compiler() -> None:
    cc = os.environ.get("CC") or "gcc"
    if shutil.which(cc.split()[0]) is None and shutil.which("cc") is None:
        raise HarnessError(f"runc needs a C compiler (cgo) and {cc!r} is not on PATH: install gcc "
                           "(apt-get install -y gcc) and run again", ExitCode.MISSING_BINARY)


def _has_libseccomp() -> bool:
    # libseccomp-golang finds the library through pkg-config, so both must be there.
    if shutil.which("pkg-config") is None:
        return False
    return subprocess.run(["pkg-config", "--exists", "libseccomp"], capture_output=True).returncode == 0


def _seccomp_ready(progress: Progress, log: Path) -> bool:
    """Whether runc can be built with seccomp, installing libseccomp-dev with apt-get when root can."""
    if _has_libseccomp():
        return True
    packages = ["libseccomp-dev"] + ([] if shutil.which("pkg-config") else ["pkg-config"])
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        progress(f"{' and '.join(packages)} missing and not installable here (needs root and apt-get): "
                 "building runc WITHOUT seccomp, so pods run without seccomp profiles")
        return False
    progress(f"installing {' and '.join(packages)} with apt-get, for runc's seccomp support")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # -o DPkg::Lock::Timeout: another apt run (an image build's, a person's) may hold dpkg's lock a while.
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", *packages]
    with open(log, "ab") as out:
        ok = subprocess.run(install, env=env, stdout=out, stderr=subprocess.STDOUT).returncode == 0
        if not ok:
            # A fresh machine's package lists may be missing or stale.
            subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update"], env=env, stdout=out,
                           stderr=subprocess.STDOUT)
            ok = subprocess.run(install, env=env, stdout=out, stderr=subprocess.STDOUT).returncode == 0
    if ok and _has_libseccomp():
        return True
    progress(f"installing {' and '.join(packages)} failed (see {log}): building runc WITHOUT seccomp, "
             "so pods run without seccomp profiles")
    return False

