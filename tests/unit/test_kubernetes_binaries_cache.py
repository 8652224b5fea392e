"""The Kubernetes binaries' cache when several processes provision it at once (a run's workers, another
session's build): one builds, the others wait for it and use what it built."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fargatelab.local import binaries
from stand_ins import script


def test_two_provisionings_at_once_build_once_and_both_get_the_cache(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARGATE_LABS_CACHE", str(tmp_path))
    builds: list[Path] = []

    def no_download(version: str, out: Path, progress: object) -> None:
        raise OSError("no network")

    def build(version: str, out: Path, progress: object) -> None:
        builds.append(out)
        time.sleep(0.5)  # long enough for the second provisioning to arrive meanwhile
        for name in binaries.COMPONENTS:
            script(out / name, f"echo {name}")

    monkeypatch.setattr(binaries, "_download_all", no_download)
    monkeypatch.setattr(binaries, "_build_all", build)
    found: list[Path] = []
    errors: list[BaseException] = []

    def provision() -> None:
        try:
            found.append(binaries.provision(progress=lambda _line: None).bin_dir)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=provision) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert errors == []
    assert len(builds) == 1
    assert found == [tmp_path / f"k8s-{binaries.KUBERNETES_VERSION}" / "bin"] * 2
    assert binaries.verify(found[0]) == []
    assert not list(found[0].parent.glob(".staging-*"))
