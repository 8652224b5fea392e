"""The offline OCI registry (distribution's ``registry``), the images it serves and where each name lands.

An image here is one layer (``pack_layer``) made an OCI image by crane (``make_image``) and kept as an OCI
image layout (``StandIn.layout``) until ``publish`` pushes it to the registry the pods pull from. Its layer
is stored uncompressed (``uncompressed``): every microVM pulls and unpacks its pod's image for itself, as a
Fargate node does, so every pod's containerd paid for gzip (decompressing nginx's 60 MB takes zlib itself
0.36 CPU-seconds), while the loopback registry gains nothing from smaller blobs.

Pods pull under the names the workshop's manifests use. containerd is told, through one ``hosts.toml`` per
upstream registry host (``hosts_tomls``), to ask this registry first. A mirror request carries the
repository path without the upstream host: for ``docker.io/library/nginx:latest`` containerd sends
``GET /v2/library/nginx/manifests/latest?ns=docker.io``. So each image is stored under its path alone:

- ``docker.io/nicolaka/netshoot:latest`` -> ``nicolaka/netshoot:latest``
- ``docker.io/library/nginx:latest`` -> ``library/nginx:latest``; ``public.ecr.aws/nginx/nginx:latest`` -> ``nginx/nginx:latest``
- ``docker.io/library/busybox:latest`` and ``:1.36`` -> ``library/busybox:latest`` and ``:1.36``
- ``docker.io/library/alpine:3`` -> ``library/alpine:3``
- ``docker.io/hjacobs/kube-ops-view:20.4.0`` -> ``hjacobs/kube-ops-view:20.4.0``
- ``public.ecr.aws/l6m2t8p7/docker-2048:latest`` -> ``l6m2t8p7/docker-2048:latest``
- ``602401143452.dkr.ecr.ap-northeast-2.amazonaws.com/eks/coredns:v1.11.4-eksbuild.2`` ->
  ``eks/coredns:v1.11.4-eksbuild.2``
- ``registry.k8s.io/pause:3.10`` -> ``pause:3.10``

The ``ns`` parameter is ignored by the registry, so one registry can stand in for all four upstream hosts:
their repository paths do not collide. Short names (``nginx``, ``busybox:1.36``) are normalised the way
Docker and containerd do it (``normalize``), which is how kubelet asks for them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ExitCode, HarnessError
from .process import RUN_ID_VARIABLE

__all__ = [
    "ECR_HOST",
    "UPSTREAM_SERVERS",
    "Images",
    "Registry",
    "StandIn",
    "pull_size",
    "crane",
    "hosts_toml",
    "hosts_tomls",
    "write_hosts_tomls",
    "layout_digest",
    "make_image",
    "mirror_reference",
    "normalize",
    "pack_layer",
    "publish",
    "split",
    "stand_ins",
]

ECR_HOST = "602401143452.dkr.ecr.ap-northeast-2.amazonaws.com"

#: The upstream hosts the stand-ins replace, each with the ``server`` containerd would fall back to.
UPSTREAM_SERVERS = {
    "docker.io": "https://registry-1.docker.io",
    "public.ecr.aws": "https://public.ecr.aws",
    "registry.k8s.io": "https://registry.k8s.io",
    ECR_HOST: f"https://{ECR_HOST}",
}


# --- names ----------------------------------------------------------------------------------------------


def normalize(reference: str) -> str:
    """The fully qualified form of an image reference, as containerd's CRI plugin resolves it.

    >>> normalize("nginx")
    'docker.io/library/nginx:latest'
    >>> normalize("hjacobs/kube-ops-view:20.4.0")
    'docker.io/hjacobs/kube-ops-view:20.4.0'
    >>> normalize("registry.k8s.io/pause:3.10")
    'registry.k8s.io/pause:3.10'
    """
    host, repository, tag = split(reference)
    return f"{host}/{repository}{'@' if tag.startswith('sha256:') else ':'}{tag}"


def split(reference: str) -> tuple[str, str, str]:
    """``(registry host, repository path, tag or digest)`` of an image reference.

    >>> split("busybox:1.36")
    ('docker.io', 'library/busybox', '1.36')
    >>> split("localhost:5000/x/y")
    ('localhost:5000', 'x/y', 'latest')
    """
    rest, digest = (reference.split("@", 1) + [""])[:2]
    first, _, remainder = rest.partition("/")
    # Docker's rule: the first component is a host only if it looks like one.
    if remainder and ("." in first or ":" in first or first == "localhost"):
        host, path = first, remainder
    else:
        host, path = "docker.io", rest
    name, colon, tag = path.rpartition(":")
    if not colon or "/" in tag:
        name, tag = path, "latest"
    if host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        host = "docker.io"
        if "/" not in name:
            name = f"library/{name}"
    return host, name, digest or tag


def mirror_reference(reference: str, registry_address: str) -> str:
    """Where ``reference`` is stored in the mirror registry at ``registry_address`` (``host:port``).

    >>> mirror_reference("public.ecr.aws/l6m2t8p7/docker-2048:latest", "169.254.20.1:5000")
    '169.254.20.1:5000/l6m2t8p7/docker-2048:latest'
    """
    _, repository, tag = split(reference)
    return f"{registry_address}/{repository}{'@' if tag.startswith('sha256:') else ':'}{tag}"


def hosts_toml(upstream_host: str, registry_address: str) -> str:
    """containerd's ``certs.d/<upstream_host>/hosts.toml``: ask the plain-HTTP mirror, then upstream."""
    server = UPSTREAM_SERVERS.get(upstream_host, f"https://{upstream_host}")
    return (
        f'server = "{server}"\n\n'
        f'[host."http://{registry_address}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )


def hosts_tomls(registry_address: str, upstream_hosts: Mapping[str, str] = UPSTREAM_SERVERS) -> dict[str, str]:
    """``{upstream host: hosts.toml contents}`` for every host the stand-ins replace."""
    return {host: hosts_toml(host, registry_address) for host in upstream_hosts}


def write_hosts_tomls(certs: Path, registry_address: str) -> None:
    """containerd's ``config_path`` directory under ``certs``: every upstream host asks the mirror first."""
    for host, text in hosts_tomls(registry_address).items():
        (certs / host).mkdir(parents=True, exist_ok=True)
        (certs / host / "hosts.toml").write_text(text)


# --- the registry process -------------------------------------------------------------------------------


_CONFIG = """version: 0.1
log: {{level: warn, accesslog: {{disabled: true}}}}
storage:
  filesystem: {{rootdirectory: {root}}}
  delete: {{enabled: true}}
  maintenance: {{uploadpurging: {{enabled: false}}, readonly: {{enabled: {readonly}}}}}
http: {{addr: {addr}, secret: {secret}}}
"""


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with closing(socket.socket(family, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Registry:
    """``registry serve`` on ``host:port`` storing blobs under ``storage_dir``; ``port=0`` picks a free one.

    Used as a context manager or with ``start()``/``stop()``. The configuration and the log sit in
    ``storage_dir`` beside the registry's own ``docker/`` tree, or, with ``serve`` (a tree another registry
    wrote), that tree is served read-only: pushes are refused and nothing in it changes.
    """

    def __init__(self, registry_bin: str, storage_dir: str | os.PathLike[str], host: str = "127.0.0.1",
                 port: int = 0, run_id: str | None = None, serve: Path | None = None) -> None:
        self.registry_bin = registry_bin
        self.storage_dir = Path(storage_dir)
        self.serve = serve
        self.host = host
        self.port = port or _free_port(host)
        self.run_id = run_id
        self.log_path = self.storage_dir / "registry.log"
        self.config_path = self.storage_dir / "config.yml"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def config(self) -> str:
        # JSON strings are valid YAML scalars, which keeps odd paths quoted correctly. A random secret per
        # start: a fixed one would let anyone forge upload state, and nothing needs it to survive a restart.
        root = self.serve or self.storage_dir
        return _CONFIG.format(root=json.dumps(str(root.resolve())), addr=json.dumps(self.address),
                              secret=secrets.token_hex(16), readonly=json.dumps(self.serve is not None))

    def start(self, timeout: float = 30.0) -> Registry:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        # Tracing exporters would otherwise try to reach a collector that is not there.
        env = dict(os.environ, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
        if self.run_id:
            env[RUN_ID_VARIABLE] = self.run_id
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - the registry binary the harness provisioned
                [self.registry_bin, "serve", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                code = ExitCode.PORT_IN_USE if "address already in use" in tail[0] else ExitCode.START_FAILED
                raise HarnessError(f"the image registry on {self.address} exited at start: {tail[0]} "
                                   f"(log {self.log_path})", code)
            if self.answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise HarnessError(f"the image registry on {self.address} did not answer GET /v2/ within {timeout:.0f}s "
                           f"(log {self.log_path})", ExitCode.START_FAILED)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as resp:  # noqa: S310 - our own registry
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, grace: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Registry:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- images: one layer, made an image by crane, kept as an OCI image layout ----------------------------


def crane(crane_bin: str, *args: str, timeout: float = 600) -> str:
    """Run crane against one of our plain-HTTP registries; its stdout, or a HarnessError with its last line."""
    proc = subprocess.run([crane_bin, *args[:1], "--insecure", *args[1:]], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip() or "(no output)").splitlines()[-1]
        raise HarnessError(f"crane {args[0]} failed: {tail}", ExitCode.START_FAILED)
    return proc.stdout


def pack_layer(root: Path, out: Path, epoch: int) -> None:
    """A layer tarball of ``root``: sorted entries, numeric owners, times clamped to ``epoch``.

    Device nodes and fifos are left out: the runtime makes /dev itself.
    """
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                info = tar.gettarinfo(path, os.path.relpath(path, root))
                if info is None or info.ischr() or info.isblk() or info.isfifo():
                    continue
                info.mtime, info.uname, info.gname = min(int(info.mtime), epoch), "", ""
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)


def make_image(crane_bin: str, registry_address: str, repository: str, layer: Path, layout: Path, *,
               entrypoint: tuple[str, ...] = (), cmd: tuple[str, ...] = (), env: tuple[str, ...] = (),
               ports: tuple[str, ...] = (), labels: Mapping[str, str] | None = None, workdir: str = "",
               user: str = "") -> str:
    """A linux/amd64 OCI image of ``layer`` alone, staged in the registry and saved to ``layout``; its digest.

    crane parses list flags as CSV, so no value may hold a comma.
    """
    values = [*entrypoint, *cmd, *env, *ports, *(f"{k}={v}" for k, v in (labels or {}).items()), workdir, user]
    if any("," in v for v in values):
        raise ValueError(f"a comma in an image config value: {[v for v in values if ',' in v]}")
    staged = f"{registry_address}/{repository}"
    crane(crane_bin, "append", "--oci-empty-base", "-f", str(layer), "-t", f"{staged}:layer")
    args = ["mutate", f"{staged}:layer", "--set-platform", "linux/amd64", "-t", f"{staged}:image"]
    for flag, items in (("--entrypoint", entrypoint), ("--cmd", cmd), ("--env", env), ("--exposed-ports", ports),
                        ("--label", [f"{k}={v}" for k, v in (labels or {}).items()]),
                        ("--workdir", [workdir] if workdir else []), ("--user", [user] if user else [])):
        args += [a for item in items for a in (flag, item)]
    digest = crane(crane_bin, *args).strip().splitlines()[-1].rpartition("@")[2]
    crane(crane_bin, "pull", "--format=oci", f"{staged}@{digest}", str(layout))
    if layout_digest(layout) != digest:
        raise HarnessError(f"{layout} does not hold {digest} after crane pull", ExitCode.START_FAILED)
    return uncompressed(layout)


#: an OCI layer stored as a plain tar
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
_GZIP_LAYERS = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip")


def uncompressed(layout: Path) -> str:
    """The one image of ``layout`` rewritten with its gzip layers stored as plain tars; its new manifest
    digest. The config (and so each layer's diff ID) stays as it was."""
    blobs = layout / "blobs"
    index = json.loads((layout / "index.json").read_text())
    (desc,) = index["manifests"]
    manifest = json.loads((blobs / desc["digest"].replace(":", "/")).read_bytes())
    for layer in manifest["layers"]:
        if layer["mediaType"] not in _GZIP_LAYERS:
            continue
        source = blobs / layer["digest"].replace(":", "/")
        partial, sha, size = blobs / "sha256" / "uncompressing", hashlib.sha256(), 0
        with gzip.open(source) as src, open(partial, "wb") as out:
            while chunk := src.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
                size += len(chunk)
        os.replace(partial, blobs / "sha256" / sha.hexdigest())
        source.unlink()
        layer.update(mediaType=LAYER_TAR, digest=f"sha256:{sha.hexdigest()}", size=size)
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
    if digest != desc["digest"]:
        (blobs / "sha256" / digest.removeprefix("sha256:")).write_bytes(raw)
        (blobs / desc["digest"].replace(":", "/")).unlink()
        desc.update(digest=digest, size=len(raw))
        (layout / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    return digest


def layout_digest(layout: Path) -> str | None:
    """The manifest digest a one-image OCI layout holds, when it and every blob it names are complete."""
    try:
        (desc,) = json.loads((layout / "index.json").read_text())["manifests"]
        manifest = json.loads((layout / "blobs" / desc["digest"].replace(":", "/")).read_text())
        blobs = [desc, manifest["config"], *manifest["layers"]]
        if all((layout / "blobs" / b["digest"].replace(":", "/")).stat().st_size == b["size"] for b in blobs):
            return str(desc["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def pull_size(layout: Path) -> int:
    """Bytes a pull transfers: the config and the layers of the layout's image."""
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / index["manifests"][0]["digest"].replace(":", "/")).read_text())
    return int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])


@dataclass(frozen=True)
class StandIn:
    """An image the offline registry serves, under one of its names, kept as an OCI image layout.

    ``size`` is what a pull transfers (config and layer); ``note`` says how it differs from the original.
    """

    name: str
    digest: str
    layout: Path
    built_from: str
    note: str
    size: int
    build_seconds: float

    @property
    def stands_in_for(self) -> str:
        return self.name


@dataclass
class Images:
    """What ``images.build_images`` made: built stand-ins by name, and the names it skipped with the reason."""

    root: Path
    records: dict[str, StandIn] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def stand_ins(images: Images) -> list[dict[str, Any]]:
    """For the run report: every image pods get from the offline registry, and what it stands in for."""
    rows: list[dict[str, Any]] = [
        {"name": s.name, "digest": s.digest, "stands_in_for": s.stands_in_for, "built_from": s.built_from,
         "note": s.note, "pull_size": s.size} for s in images.records.values()]
    rows += [{"name": name, "digest": None, "stands_in_for": name, "skipped": why}
             for name, why in images.skipped.items()]
    return sorted(rows, key=lambda row: row["name"])


def publish(images: Images | Mapping[str, StandIn], crane_bin: str, registry_address: str,
            progress: Callable[[str], None] | None = None) -> dict[str, str]:
    """Push each image under its mirror repository (see the list above); ``{name: mirror reference}``.

    A digest that differs from the cached one after the push is an error: the pods would run something
    other than what the run report lists.
    """
    records = images.records if isinstance(images, Images) else images
    pushed = {}
    for name, image in sorted(records.items()):
        target = mirror_reference(name, registry_address)
        out = crane(crane_bin, "push", str(image.layout), target).strip().splitlines()
        digest = out[-1].rpartition("@")[2] if out else ""
        if digest != image.digest:
            raise HarnessError(f"pushing {name} to {target} gave {digest or 'no digest'}, not the cached "
                               f"{image.digest}", ExitCode.START_FAILED)
        if progress is not None:
            progress(f"published {name} as {target}")
        pushed[name] = target
    return pushed
