"""The stand-ins' layers stored uncompressed, and the registry tree published once and served read-only."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from fargatelab.local import registry as reg
from fargatelab.local import registry_storage


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"fargat"))
    return out.getvalue()


def _gzip_layout(layout: Path, tar: bytes) -> dict[str, Any]:
    config = _blob(layout, json.dumps({"rootfs": {"diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]}}).encode())
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, gzip.compress(tar))}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config}, "layers": [layer]}
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **_blob(layout, json.dumps(manifest).encode())}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return {"config": config, "gzip_layer": layer, "manifest": desc}


def test_a_gzip_layer_is_stored_as_its_tar_and_the_manifest_follows(tmp_path: Path) -> None:
    layout, tar = tmp_path / "layout", _tar()
    before = _gzip_layout(layout, tar)
    digest = reg.uncompressed(layout)

    assert digest != before["manifest"]["digest"] and reg.layout_digest(layout) == digest
    manifest = json.loads((layout / "blobs" / digest.replace(":", "/")).read_bytes())
    (layer,) = manifest["layers"]
    assert layer == {"mediaType": reg.LAYER_TAR, "digest": f"sha256:{hashlib.sha256(tar).hexdigest()}",
                     "size": len(tar)}
    assert (layout / "blobs" / layer["digest"].replace(":", "/")).read_bytes() == tar
    assert manifest["config"]["digest"] == before["config"]["digest"]  # the diff IDs stay true
    left = {p.name for p in (layout / "blobs/sha256").iterdir()}
    assert left == {d.removeprefix("sha256:") for d in (digest, layer["digest"], before["config"]["digest"])}
    assert reg.uncompressed(layout) == digest  # nothing left to uncompress: the same image
    assert reg.pull_size(layout) == manifest["config"]["size"] + len(tar)


def test_a_registry_serving_a_published_tree_is_read_only_and_keeps_its_own_files_apart(tmp_path: Path) -> None:
    served = reg.Registry("/no/registry", tmp_path / "env", "127.0.0.1", 5000, serve=tmp_path / "tree")
    config = yaml.safe_load(served.config())
    assert config["storage"]["filesystem"]["rootdirectory"] == str((tmp_path / "tree").resolve())
    assert config["storage"]["maintenance"]["readonly"] == {"enabled": True}
    assert served.config_path.parent == served.log_path.parent == tmp_path / "env"
    own = yaml.safe_load(reg.Registry("/no/registry", tmp_path / "store", "127.0.0.1", 5000).config())
    assert own["storage"]["maintenance"]["readonly"] == {"enabled": False}


class _FakeRegistry:
    started: list[Path] = []

    def __init__(self, binary: str, storage: Path) -> None:
        self.storage, self.address = storage, "127.0.0.1:5999"

    def __enter__(self) -> _FakeRegistry:
        self.storage.mkdir(parents=True)
        (self.storage / "config.yml").write_text("x")
        _FakeRegistry.started.append(self.storage)
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture
def pushes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    def publish(images: reg.Images, crane: str, address: str) -> None:
        tree = _FakeRegistry.started[-1] / "docker"
        tree.mkdir()
        (tree / "blobs").write_text(json.dumps(sorted(images.records)))
        seen.append({name: s.digest for name, s in images.records.items()})

    monkeypatch.setattr(registry_storage, "Registry", _FakeRegistry)
    monkeypatch.setattr(registry_storage, "publish", publish)
    return seen


def _images(root: Path, **digests: str) -> reg.Images:
    return reg.Images(root, {name: reg.StandIn(name, digest, root / "layouts" / name, "test", "", 1, 0.0)
                             for name, digest in digests.items()})


def test_the_tree_is_published_once_and_again_only_when_the_images_change(tmp_path: Path,
                                                                          pushes: list[dict[str, str]]) -> None:
    tree = registry_storage.published_storage(_images(tmp_path, nginx="sha256:a"), "crane", "registry")
    assert tree == tmp_path / "registry" and (tree / "docker/blobs").exists()
    assert json.loads((tree / "published.json").read_text()) == {"nginx": "sha256:a"}
    assert not (tree / "config.yml").exists()  # the publishing registry's own file stays out of the tree
    assert registry_storage.published_storage(_images(tmp_path, nginx="sha256:a"), "crane", "registry") == tree
    assert pushes == [{"nginx": "sha256:a"}]

    registry_storage.published_storage(_images(tmp_path, nginx="sha256:b"), "crane", "registry")
    assert pushes[-1] == {"nginx": "sha256:b"}
    assert json.loads((tree / "published.json").read_text()) == {"nginx": "sha256:b"}
    assert not (tmp_path / "registry.partial").exists()


def test_a_publish_cut_short_leaves_the_old_tree_and_is_redone(tmp_path: Path, pushes: list[dict[str, str]],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tree = registry_storage.published_storage(_images(tmp_path, nginx="sha256:a"), "crane", "registry")

    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(registry_storage, "publish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        registry_storage.published_storage(_images(tmp_path, nginx="sha256:b"), "crane", "registry")
    assert json.loads((tree / "published.json").read_text()) == {"nginx": "sha256:a"}
