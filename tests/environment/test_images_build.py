"""The offline stand-in images built for real (mmdebstrap, crane, the data plane's registry and coredns),
pushed to a registry on 127.0.0.1 and asked for as containerd's mirror lookup asks; their programs run in a
chroot with private network, mount and pid namespaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fargatelab.local import images
from fargatelab.local import registry as reg

pytestmark = pytest.mark.integration

COREDNS = f"{reg.ECR_HOST}/eks/coredns:v1.11.4-eksbuild.2"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    from fargatelab.local.dataplane_binaries import provision_dataplane

    binaries = provision_dataplane(lambda line: print(line, file=sys.stderr, flush=True))
    return {name: binaries.path(name) for name in ("crane", "registry", "coredns")}


@pytest.fixture(scope="module")
def built(tools: dict[str, str]) -> images.Images:
    if os.geteuid() != 0:
        pytest.skip("building the stand-in images needs root (mmdebstrap's root mode)")
    lines: list[str] = []
    started = time.monotonic()
    found = images.build_images(tools["crane"], tools["registry"], tools["coredns"], lines.append)
    print(f"stand-in images ready in {time.monotonic() - started:.0f}s:", *lines, sep="\n  ", file=sys.stderr)
    return found


def test_every_stand_in_is_built_and_small(built: images.Images) -> None:
    assert sorted(built.records) == sorted(n for r in images.RECIPES for n in r.names)
    assert built.skipped == {}
    for name, image in sorted(built.records.items()):
        print(f"{name}: {image.size / 1e6:.1f} MB to pull, built in {image.build_seconds:.0f}s", file=sys.stderr)
        # Stored uncompressed (registry.uncompressed): a stand-in holds only what the documented steps use.
        assert image.size < 100_000_000, name
        assert reg.layout_digest(image.layout) == image.digest


def test_a_second_call_is_served_from_the_cache(built: images.Images, tools: dict[str, str]) -> None:
    started = time.monotonic()
    again = images.build_images(tools["crane"], tools["registry"], tools["coredns"], lambda line: None)
    assert time.monotonic() - started < 30
    assert {n: s.digest for n, s in again.records.items()} == {n: s.digest for n, s in built.records.items()}


def test_published_images_answer_the_mirror_lookup_containerd_makes(built: images.Images, tools: dict[str, str],
                                                                     tmp_path: Path) -> None:
    with reg.Registry(tools["registry"], tmp_path / "registry") as registry:
        pushed = reg.publish(built, tools["crane"], registry.address)
        assert set(pushed) == set(built.records)
        for name, image in built.records.items():
            host, repository, tag = reg.split(name)
            request = urllib.request.Request(f"{registry.url}/v2/{repository}/manifests/{tag}?ns={host}",
                                             headers={"Accept": MANIFEST_TYPES})
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own registry
                assert response.headers["Docker-Content-Digest"] == image.digest, name
                manifest = json.loads(response.read())
            config = json.loads(subprocess.run([tools["crane"], "config", "--insecure", pushed[name]],
                                               capture_output=True, text=True, check=True).stdout)
            labels = config["config"]["Labels"]
            assert labels["org.opencontainers.image.description"] == images.DESCRIPTION
            assert name in labels["fargate-labs.stands-in-for"].split()
            assert (config["os"], config["architecture"]) == ("linux", "amd64")
            assert len(manifest["layers"]) == 1


# --- the programs, run from each image's root file system ----------------------------------------------


@pytest.fixture(scope="module")
def rootfs(built: images.Images, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs unshare (util-linux) and ip (iproute2) to run the images' programs")
    roots = {}
    for name, image in built.records.items():
        index = json.loads((image.layout / "index.json").read_text())
        blob = image.layout / "blobs" / index["manifests"][0]["digest"].replace(":", "/")
        layer = json.loads(blob.read_text())["layers"][0]["digest"].replace(":", "/")
        root = tmp_path_factory.mktemp(name.rsplit("/", 1)[-1].replace(":", "-"))
        root.chmod(0o755)  # as a snapshot's root is; nginx's workers (www-data) must get through it
        # tar keeps the absolute symlinks (applet links to /bin/busybox) that Python's safe filter refuses.
        # The layer is a plain tar (see registry.uncompressed).
        subprocess.run(["tar", "-xf", str(image.layout / "blobs" / layer), "-C", str(root)], check=True)
        roots[name] = root
    return roots


def in_image(root: Path, command: str, probe: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``command`` in ``root`` as the runtime would set it up (/dev, /proc, a loopback-only network); then
    ``probe`` on the host side of the same network namespace."""
    for mount_point in ("dev", "proc", "sys"):
        (root / mount_point).mkdir(exist_ok=True)
    setup = (f"mount --bind /dev {root}/dev && mount -t proc proc {root}/proc && mount -t sysfs sys {root}/sys "
             f"&& ip link set lo up")
    body = f"chroot {root} {command}" if not probe else f"chroot {root} {command} & sleep 1; {probe}"
    return subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "sh", "-c", f"{setup} && {body}"],
                          capture_output=True, text=True, timeout=timeout)


def fetch(port: int, path: str = "/") -> str:
    return (f"{sys.executable} -c \"import urllib.request as u; "
            f"print(u.urlopen('http://127.0.0.1:{port}{path}', timeout=10).read().decode())\"")


@pytest.mark.parametrize(("name", "port", "text"), [
    ("docker.io/library/nginx:latest", 80, "<title>Welcome to nginx!</title>"),
    ("public.ecr.aws/l6m2t8p7/docker-2048:latest", 80, "<title>2048</title>"),
    ("docker.io/hjacobs/kube-ops-view:20.4.0", 8080, "kube-ops-view"),
])
def test_the_web_images_serve_their_page(rootfs: dict[str, Path], name: str, port: int, text: str) -> None:
    recipe = next(r for r in images.RECIPES if name in r.names)
    command = " ".join(f"'{arg}'" for arg in (*recipe.entrypoint, *recipe.cmd))
    result = in_image(rootfs[name], command, fetch(port))
    assert text in result.stdout, result.stderr[-2000:]


def test_netshoot_has_the_tools_the_lab_uses(rootfs: dict[str, Path]) -> None:
    result = in_image(rootfs["docker.io/nicolaka/netshoot:latest"],
                      "zsh -c 'ip -o -4 addr show dev lo && ping -c 1 -W 5 127.0.0.1 && curl --version "
                      "&& df -hT / | tail -n 1 && lsblk --version && tail -n 1 /etc/os-release && nc -h 2>&1 | head -1'")
    assert result.returncode == 0, result.stderr
    assert "127.0.0.1/8" in result.stdout and "1 received" in result.stdout and "curl " in result.stdout


@pytest.mark.parametrize("name", ["docker.io/library/busybox:1.36", "docker.io/library/alpine:3"])
def test_the_busybox_images_run_the_labs_commands(rootfs: dict[str, Path], name: str) -> None:
    result = in_image(rootfs[name], "/bin/sh -c 'sleep 0 && echo from-sh | /bin/cat'")
    assert (result.returncode, result.stdout.strip()) == (0, "from-sh"), result.stderr


def test_pause_and_coredns_start(rootfs: dict[str, Path]) -> None:
    pause = in_image(rootfs["registry.k8s.io/pause:3.10"], "/pause -v")
    assert pause.returncode == 0 and pause.stdout.startswith("pause.c v3.10"), pause.stderr
    coredns = in_image(rootfs[COREDNS], "/coredns -version")
    assert coredns.returncode == 0 and "CoreDNS-" in coredns.stdout, coredns.stderr
