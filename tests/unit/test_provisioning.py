"""`fargate-lab provision`: the Go builds one after another, what waits on the network beside them, and
nothing built that the chosen data plane does not use."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from fargatelab.errors import ExitCode, HarnessError
from fargatelab.local import (binaries, cli_tools, dataplane_binaries, images, microvm_host, provisioning,
                              registry_storage)


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []  # (thread kind, what)

    def add(self, what: str) -> None:
        kind = "main" if threading.current_thread() is threading.main_thread() else "beside"
        with self.lock:
            self.events.append((kind, what))

    def whats(self, kind: str) -> list[str]:
        return [w for k, w in self.events if k == kind]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    rec = _Recorder()

    def dataplane(progress: Any = None, only: tuple[str, ...] = ()) -> Any:
        if threading.current_thread() is threading.main_thread():
            time.sleep(0.05)  # the images' thread must wait for the tools, not race them
        rec.add(f"dataplane {','.join(only) or 'all'}")
        return dataplane_binaries.DataPlaneBinaries(binaries.cache_root())

    monkeypatch.setattr(microvm_host, "choose_data_plane", lambda requested, progress: requested)
    monkeypatch.setattr(microvm_host, "ensure_host_tools", lambda progress: rec.add("host tools"))
    monkeypatch.setattr(binaries, "provision", lambda progress=None: rec.add("kubernetes"))
    monkeypatch.setattr(dataplane_binaries, "provision_dataplane", dataplane)
    monkeypatch.setattr(dataplane_binaries, "provision_kwok", lambda progress=None: rec.add("kwok"))
    monkeypatch.setattr(cli_tools, "provision_clis", lambda progress=None, aws=True: rec.add(f"clis aws={aws}"))
    monkeypatch.setattr(cli_tools, "provision_awscli", lambda progress=None: rec.add("awscli"))
    monkeypatch.setattr("fargatelab.local.apt.need", lambda *args: rec.add("mmdebstrap"))
    monkeypatch.setattr(images, "build_images", lambda *args: rec.add("images") or images.Images(binaries.cache_root()))
    monkeypatch.setattr(registry_storage, "published_storage", lambda *args: rec.add("registry tree"))
    return rec


def test_microvms_get_the_image_tools_first_and_the_images_beside_the_go_builds(recorder: _Recorder) -> None:
    lines: list[str] = []
    assert provisioning.provision_all("microvm", clis=True, progress=lines.append) == "microvm"
    assert recorder.whats("main") == ["dataplane coredns,registry,crane", "kubernetes", "dataplane all",
                                      "clis aws=False"]
    beside = recorder.whats("beside")
    assert sorted(beside) == sorted(["host tools", "mmdebstrap", "dataplane coredns,registry,crane", "images",
                                     "registry tree", "awscli"])
    # The images are built with the tools the main thread built first.
    assert recorder.events.index(("main", "dataplane coredns,registry,crane")) < recorder.events.index(
        ("beside", "images"))
    assert "kwok" not in beside + recorder.whats("main")
    assert lines[-1].startswith("provisioned for the microvm data plane and the workshop tools in ")


def test_kwok_nodes_get_kwok_and_no_data_plane(recorder: _Recorder) -> None:
    assert provisioning.provision_all("kwok", clis=False, progress=lambda _line: None) == "kwok"
    assert recorder.whats("main") == ["kubernetes", "kwok"]
    assert recorder.whats("beside") == []


def test_a_failure_beside_the_builds_fails_the_provisioning_in_one_line(
        recorder: _Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(progress: Any = None) -> None:
        raise OSError("pip: no index")

    monkeypatch.setattr(cli_tools, "provision_awscli", refused)
    with pytest.raises(HarnessError) as failure:
        provisioning.provision_all("kwok", clis=True, progress=lambda _line: None)
    assert failure.value.code == ExitCode.MISSING_BINARY
    assert str(failure.value) == "provisioning the AWS CLI failed: pip: no index"
    # The Go builds went on meanwhile.
    assert recorder.whats("main") == ["kubernetes", "kwok", "clis aws=False"]


def test_an_interrupted_build_is_reported_as_the_interruption(recorder: _Recorder,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(progress: Any = None) -> None:
        raise KeyboardInterrupt

    def refused(progress: Any = None) -> None:
        raise OSError("pip: interrupted too")

    monkeypatch.setattr(binaries, "provision", interrupted)
    monkeypatch.setattr(cli_tools, "provision_awscli", refused)
    with pytest.raises(KeyboardInterrupt):
        provisioning.provision_all("kwok", clis=True, progress=lambda _line: None)
