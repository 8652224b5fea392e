"""Offline stand-in images without building any: names and mirror paths, hosts.toml, recipes and their
hashes, the layer packer, OCI layout checks, cache decisions, publishing and the registry's start, against
stand-in ``crane``/``registry``/``apt-get`` scripts where a program is needed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from fargatelab.errors import ExitCode, HarnessError
from fargatelab.local import images
from fargatelab.local import registry as reg
from stand_ins import script

ROOT = Path(__file__).resolve().parents[2]
ALL_NAMES = [name for recipe in images.RECIPES for name in recipe.names]


# --- names ----------------------------------------------------------------------------------------------


def _manifest_images() -> set[str]:
    found = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    found.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for manifest in (ROOT / "fixtures/manifests").glob("*.yaml"):
        for doc in yaml.safe_load_all(manifest.read_text()):
            walk(doc)
    return found


def test_every_image_a_workshop_manifest_names_has_a_stand_in() -> None:
    wanted = {reg.normalize(image) for image in _manifest_images()}
    assert wanted, "no image found in fixtures/manifests"
    assert wanted - set(ALL_NAMES) == set()


@pytest.mark.parametrize(("short", "full"), [
    ("nginx:latest", "docker.io/library/nginx:latest"),
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("alpine:3", "docker.io/library/alpine:3"),
    ("nicolaka/netshoot", "docker.io/nicolaka/netshoot:latest"),
    ("hjacobs/kube-ops-view:20.4.0", "docker.io/hjacobs/kube-ops-view:20.4.0"),
    ("index.docker.io/library/nginx", "docker.io/library/nginx:latest"),
    ("public.ecr.aws/l6m2t8p7/docker-2048:latest", "public.ecr.aws/l6m2t8p7/docker-2048:latest"),
    ("localhost:5000/pause", "localhost:5000/pause:latest"),
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
])
def test_short_names_normalise_as_containerd_resolves_them(short: str, full: str) -> None:
    assert reg.normalize(short) == full


def test_each_name_lands_under_the_path_a_mirror_request_carries() -> None:
    address = "169.254.20.1:5000"
    assert {name: reg.mirror_reference(name, address) for name in ALL_NAMES} == {
        "docker.io/nicolaka/netshoot:latest": f"{address}/nicolaka/netshoot:latest",
        "docker.io/library/nginx:latest": f"{address}/library/nginx:latest",
        "public.ecr.aws/nginx/nginx:latest": f"{address}/nginx/nginx:latest",
        "docker.io/library/busybox:latest": f"{address}/library/busybox:latest",
        "docker.io/library/busybox:1.36": f"{address}/library/busybox:1.36",
        "docker.io/library/alpine:3": f"{address}/library/alpine:3",
        "public.ecr.aws/l6m2t8p7/docker-2048:latest": f"{address}/l6m2t8p7/docker-2048:latest",
        "docker.io/hjacobs/kube-ops-view:20.4.0": f"{address}/hjacobs/kube-ops-view:20.4.0",
        f"{reg.ECR_HOST}/eks/coredns:v1.11.4-eksbuild.2": f"{address}/eks/coredns:v1.11.4-eksbuild.2",
        "registry.k8s.io/pause:3.10": f"{address}/pause:3.10",
    }
    repositories = [reg.split(name)[1] for name in ALL_NAMES]
    assert len(set(zip(repositories, [reg.split(n)[2] for n in ALL_NAMES]))) == len(ALL_NAMES)


def test_hosts_toml_asks_the_mirror_first_for_every_upstream_host() -> None:
    assert reg.hosts_toml("docker.io", "169.254.20.1:5000") == (
        'server = "https://registry-1.docker.io"\n\n'
        '[host."http://169.254.20.1:5000"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    tomls = reg.hosts_tomls("127.0.0.1:5000")
    assert {reg.split(name)[0] for name in ALL_NAMES} <= set(tomls)
    for host, text in tomls.items():
        parsed = tomllib.loads(text)
        assert parsed["server"] == reg.UPSTREAM_SERVERS[host]
        assert parsed["host"] == {"http://127.0.0.1:5000": {"capabilities": ["pull", "resolve"]}}


# --- recipes --------------------------------------------------------------------------------------------


def test_recipes_are_labelled_and_every_config_value_survives_crane_flag_parsing() -> None:
    assert len({r.key for r in images.RECIPES}) == len(images.RECIPES)
    assert len(set(ALL_NAMES)) == len(ALL_NAMES)
    for recipe in images.RECIPES:
        values = [*recipe.entrypoint, *recipe.cmd, *recipe.env, *recipe.ports, recipe.note, recipe.built_from,
                  " ".join(recipe.names), recipe.user]
        assert not [v for v in values if "," in v], recipe.key
        assert recipe.variant in ("essential", "extract"), recipe.key
        assert recipe.entrypoint or recipe.cmd, recipe.key
    by_key = {r.key: r for r in images.RECIPES}
    assert by_key["nginx"].cmd == ("nginx", "-g", "daemon off;")
    assert by_key["kube-ops-view"].ports == ("8080/tcp",)
    assert by_key["coredns"].entrypoint == ("/coredns",) and by_key["pause"].entrypoint == ("/pause",)


def test_a_comma_in_a_config_value_is_refused_before_crane_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="comma"):
        reg.make_image(str(tmp_path / "no-crane"), "127.0.0.1:1", "x", tmp_path / "l.tar", tmp_path / "out",
                       cmd=("a,b",))


def test_a_recipe_hash_follows_its_data_and_the_cache_directory_follows_every_hash(cache: Path) -> None:
    recipe = images.RECIPES[0]
    assert images.recipe_digest(recipe) == images.recipe_digest(recipe)
    assert images.recipe_digest(dataclasses.replace(recipe, packages=recipe.packages + ("less",))) \
        != images.recipe_digest(recipe)
    assert images.recipe_digest(dataclasses.replace(recipe, cmd=("bash",))) != images.recipe_digest(recipe)
    assert len({images.recipe_digest(r) for r in images.RECIPES}) == len(images.RECIPES)
    assert images.images_dir().parent == cache
    assert images.images_dir().name.startswith("images-")
    assert images.images_dir(images.RECIPES[:-1]) != images.images_dir()


# --- layers and layouts ---------------------------------------------------------------------------------


def test_a_layer_is_sorted_owner_free_time_clamped_and_without_device_nodes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("#!/bin/sh\n")
    os.link(root / "usr/bin/tool", root / "usr/bin/tool2")
    (root / "bin").symlink_to("usr/bin")
    os.mkfifo(root / "fifo")
    os.utime(root / "usr/bin/tool", (4_000_000_000, 4_000_000_000))
    reg.pack_layer(root, tmp_path / "a.tar", 1_000)
    reg.pack_layer(root, tmp_path / "b.tar", 1_000)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["bin", "usr", "usr/bin", "usr/bin/tool", "usr/bin/tool2"]
    assert all(m.mtime <= 1_000 and m.uname == "" and m.gname == "" for m in members)
    assert members[0].issym() and members[0].linkname == "usr/bin"
    assert members[4].islnk() and members[4].linkname == "usr/bin/tool"


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def fake_layout(layout: Path, seed: str = "x") -> str:
    config = _blob(layout, json.dumps({"seed": seed}).encode())
    layer = _blob(layout, seed.encode() * 100)
    manifest = _blob(layout, json.dumps({"schemaVersion": 2, "config": config, "layers": [layer]}).encode())
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    return str(manifest["digest"])


def test_a_layout_counts_only_when_every_blob_is_complete(tmp_path: Path) -> None:
    digest = fake_layout(tmp_path / "layout")
    assert reg.layout_digest(tmp_path / "layout") == digest
    assert reg.pull_size(tmp_path / "layout") == len(json.dumps({"seed": "x"})) + 100
    layer = max((tmp_path / "layout/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    layer.write_bytes(b"truncated")
    assert reg.layout_digest(tmp_path / "layout") is None
    assert reg.layout_digest(tmp_path / "missing") is None


# --- the cache ------------------------------------------------------------------------------------------


def fill_cache(recipes: Any, coredns_inputs: str = "coredns sha256:old") -> Path:
    root = images.images_dir()
    records = {}
    for recipe in recipes:
        digest = fake_layout(root / "layouts" / recipe.key, recipe.key)
        for name in recipe.names:
            records[name] = {"digest": digest, "key": recipe.key, "recipe": images.recipe_digest(recipe),
                             "inputs": coredns_inputs if recipe.needs == "coredns" else "", "size": 1,
                             "built_from": recipe.built_from, "note": recipe.note, "build_seconds": 1.0}
    (root / "images.json").write_text(json.dumps(records))
    return root


@pytest.fixture
def no_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    built: list[str] = []

    class NoRegistry:
        def __init__(self, *args: Any) -> None:
            self.address = "127.0.0.1:1"

        def __enter__(self) -> NoRegistry:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def build(recipe: images.Recipe, inputs: str, *args: Any) -> dict[str, Any]:
        built.append(recipe.key)
        return {}

    monkeypatch.setattr(images, "Registry", NoRegistry)
    monkeypatch.setattr(images, "_build", build)
    return built


def test_a_complete_cache_needs_no_tool_and_no_build(cache: Path, no_builds: list[str]) -> None:
    root = fill_cache(images.RECIPES)
    found = images.build_images("/no/crane", "/no/registry", coredns=None)
    assert no_builds == []
    assert sorted(found.records) == sorted(ALL_NAMES) and found.skipped == {}
    busybox = found.records["docker.io/library/busybox:1.36"]
    assert busybox.layout == root / "layouts/busybox" and busybox.stands_in_for == busybox.name
    assert busybox.digest == found.records["docker.io/library/busybox:latest"].digest


def test_only_a_recipe_whose_record_inputs_or_layout_differ_is_built(cache: Path, no_builds: list[str],
                                                                      tmp_path: Path) -> None:
    root = fill_cache(images.RECIPES)
    (root / "layouts/nginx/index.json").unlink()
    records = json.loads((root / "images.json").read_text())
    records["docker.io/library/alpine:3"]["recipe"] = "an older recipe"
    (root / "images.json").write_text(json.dumps(records))
    coredns = tmp_path / "coredns"
    coredns.write_bytes(b"a newer coredns")
    images.build_images("/no/crane", "/no/registry", coredns=str(coredns))
    assert no_builds == ["nginx", "alpine", "coredns"]


def test_without_a_coredns_binary_its_image_is_skipped_unless_cached(cache: Path, no_builds: list[str]) -> None:
    fill_cache([r for r in images.RECIPES if r.key != "coredns"])
    found = images.build_images("/no/crane", "/no/registry", coredns=None)
    name = f"{reg.ECR_HOST}/eks/coredns:v1.11.4-eksbuild.2"
    assert no_builds == [] and name not in found.records
    assert "no coredns binary" in found.skipped[name]
    rows = images.stand_ins(found)
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)
    assert {r["name"]: r.get("skipped") is not None for r in rows}[name]
    assert all(r["stands_in_for"] == r["name"] for r in rows)


def test_only_builds_just_the_recipes_asked_for(cache: Path, no_builds: list[str]) -> None:
    found = images.build_images("/no/crane", "/no/registry", only=["busybox", "pause"])
    assert no_builds == ["busybox", "pause"] and found.skipped == {}


# --- publish and the registry ---------------------------------------------------------------------------


def test_publish_pushes_each_name_under_its_mirror_path_and_checks_the_digest(tmp_path: Path) -> None:
    log = tmp_path / "pushes"
    # crane push --insecure LAYOUT TARGET prints TARGET@digest; the digest is read from the fake layout.
    crane = script(tmp_path / "crane", f'echo "$3 $4" >> {log}; echo "$4@$(cat $3/digest)"')
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "digest").write_text("sha256:abc")
    stand_in = reg.StandIn("docker.io/library/nginx:latest", "sha256:abc", layout, "-", "", 1, 1.0)
    other = dataclasses.replace(stand_in, name="registry.k8s.io/pause:3.10")
    lines: list[str] = []
    pushed = reg.publish(reg.Images(tmp_path, {s.name: s for s in (stand_in, other)}), str(crane),
                         "127.0.0.1:5999", lines.append)
    assert pushed == {"docker.io/library/nginx:latest": "127.0.0.1:5999/library/nginx:latest",
                      "registry.k8s.io/pause:3.10": "127.0.0.1:5999/pause:3.10"}
    assert log.read_text().split("\n")[:2] == [f"{layout} 127.0.0.1:5999/library/nginx:latest",
                                               f"{layout} 127.0.0.1:5999/pause:3.10"]
    assert len(lines) == 2
    (layout / "digest").write_text("sha256:other")
    with pytest.raises(HarnessError, match="not the cached sha256:abc"):
        reg.publish({stand_in.name: stand_in}, str(crane), "127.0.0.1:5999")


def test_a_failing_crane_is_one_line_naming_the_command(tmp_path: Path) -> None:
    crane = script(tmp_path / "crane", 'echo "some progress" >&2; echo "Error: GET http://x: connection refused" >&2; '
                                        "exit 1")
    with pytest.raises(HarnessError, match="crane push failed: Error: GET http://x: connection refused"):
        reg.crane(str(crane), "push", "a", "b")


def test_the_registry_config_binds_the_given_address_and_stores_under_the_directory(tmp_path: Path) -> None:
    registry = reg.Registry("/no/registry", tmp_path / "store", "169.254.20.1", 5000)
    config = yaml.safe_load(registry.config())
    assert config["http"]["addr"] == "169.254.20.1:5000" == registry.address
    assert config["storage"]["filesystem"]["rootdirectory"] == str((tmp_path / "store").resolve())
    assert registry.url == "http://169.254.20.1:5000"
    assert reg.Registry("/no/registry", tmp_path, "::1", 5000).address == "[::1]:5000"
    assert reg.Registry("/no/registry", tmp_path).port > 0


def test_a_registry_that_cannot_bind_says_so_with_its_log_line(tmp_path: Path) -> None:
    fake = script(tmp_path / "registry", 'echo "listen tcp 127.0.0.1:5000: bind: address already in use"; exit 1')
    with pytest.raises(HarnessError, match="address already in use") as err:
        reg.Registry(str(fake), tmp_path / "store", port=5000).start(timeout=10)
    assert err.value.code == ExitCode.PORT_IN_USE


def test_a_registry_that_never_answers_is_stopped_and_reported(tmp_path: Path) -> None:
    fake = script(tmp_path / "registry", "exec sleep 30")
    registry = reg.Registry(str(fake), tmp_path / "store")
    with pytest.raises(HarnessError, match="did not answer GET /v2/") as err:
        registry.start(timeout=0.5)
    assert err.value.code == ExitCode.START_FAILED and registry.pid is None


# --- tools ----------------------------------------------------------------------------------------------


def test_building_without_root_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    ctx = images._Context(tmp_path, None, lambda line: None)
    with pytest.raises(HarnessError, match="needs root"):
        images._mmdebstrap(images.RECIPES[0], tmp_path / "rootfs", ctx)


def test_a_build_killed_halfway_leaves_nothing_for_the_next(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its work directory (and mmdebstrap's mounts in it) goes when the next build takes the lock."""
    stale = images.images_dir() / ".work-killed" / "nginx" / "rootfs"
    stale.mkdir(parents=True)
    older = cache / "images-0123456789ab" / ".work-older"
    older.mkdir(parents=True)
    unmounted: list[Path] = []
    monkeypatch.setattr(images, "unmount_under", unmounted.append)
    images.build_images("crane", "registry", only=[])
    assert sorted(unmounted) == sorted([stale.parent.parent, older])
