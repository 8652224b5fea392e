"""``fargate-lab explain``: manifests and profiles files in, a table or JSON out; bad input is one line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from fargatelab.cli.main import main
from fargatelab.errors import ExitCode, HarnessError
from fargatelab.cli.explain import documented_profiles, load_manifest, load_profiles_file, run_explain

MANIFESTS = Path(__file__).resolve().parents[2] / "fixtures" / "manifests"

TEAM_A_WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, resources: {requests: {cpu: "1", memory: 2Gi}}}]
"""


def _run(tmp_path: Path, text: str, profiles: str | None = None, output: str = "table") -> str:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(text)
    out = io.StringIO()
    assert run_explain(str(manifest), profiles, output, out) == ExitCode.OK
    return out.getvalue()


def test_documented_profiles_are_the_workshops() -> None:
    assert [(p.name, [s.namespace for s in p.selectors]) for p in documented_profiles()] == [
        ("fargate-game-2048", ["fargate-game-2048"]), ("study_wildcard", ["study-*"]), ("kube-system", ["kube-system"])]


@pytest.mark.parametrize("manifest,expected", [
    ("netshoot.yaml", [("Deployment", "netshoot", True, "study_wildcard", "0.5vCPU 1GB")]),
    ("kube-ops-view.yaml", [("Deployment", "kube-ops-view", True, "kube-system", "0.25vCPU 0.5GB")]),
    ("root-shell.yaml", [("Pod", "root-shell", False, "study_wildcard", None)]),
    ("daemonset.yaml", [("DaemonSet", "daemonset-probe", False, None, None)]),
], ids=["netshoot", "kube-ops-view", "root-shell", "daemonset"])
def test_workshop_manifests_with_the_documented_profiles(manifest: str, expected: list[tuple]) -> None:
    out = io.StringIO()
    assert run_explain(str(MANIFESTS / manifest), None, "json", out) == ExitCode.OK
    verdicts = json.loads(out.getvalue())
    assert [(v["kind"], v["name"], v["runs_on_fargate"], v["profile"], v["capacity_provisioned"])
            for v in verdicts] == expected


def test_table_output(tmp_path: Path) -> None:
    table = _run(tmp_path, TEAM_A_WEB)
    assert table.splitlines()[0].split() == ["KIND", "NAMESPACE", "NAME", "FARGATE", "PROFILE", "CAPACITY", "REASON"]
    assert "no Fargate profile matches namespace team-a and labels {app=web}" in table


@pytest.mark.parametrize("profiles_text", [
    # aws eks describe-fargate-profile output (JSON)
    json.dumps({"fargateProfile": {"fargateProfileName": "team-a", "status": "ACTIVE",
                                   "selectors": [{"namespace": "team-*", "labels": {"app": "web"}}]}}),
    # eksctl ClusterConfig (YAML)
    "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nfargateProfiles:\n"
    "  - name: team-a\n    selectors:\n      - namespace: team-a\n",
], ids=["describe-fargate-profile json", "eksctl yaml"])
def test_profiles_file(tmp_path: Path, profiles_text: str) -> None:
    profiles = tmp_path / "profiles"
    profiles.write_text(profiles_text)
    [verdict] = json.loads(_run(tmp_path, TEAM_A_WEB, str(profiles), "json"))
    # 1 vCPU + 2 GiB + 256 MB rounds up to 1 vCPU 3 GB
    assert (verdict["runs_on_fargate"], verdict["profile"], verdict["capacity_provisioned"]) == (True, "team-a",
                                                                                                 "1vCPU 3GB")


def test_empty_documents_are_skipped(tmp_path: Path) -> None:
    assert "netshoot" in _run(tmp_path, "---\n---\n" + (MANIFESTS / "netshoot.yaml").read_text() + "\n---\n")


@pytest.mark.parametrize("text,words", [
    ("kind: Pod\nmetadata: {name: [unclosed\n", "is not valid YAML (line"),
    ("just a sentence, not a manifest\n", "is not a Kubernetes manifest: document 1 has no kind"),
    ("- a\n- list\n", "is not a Kubernetes manifest"),
    ("# Lab manifests\n\n| `x` | y |\n", "is not valid YAML"),
], ids=["broken yaml", "plain text", "a list", "markdown"])
def test_a_file_that_is_not_a_manifest(tmp_path: Path, text: str, words: str) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(text)
    with pytest.raises(HarnessError) as raised:
        load_manifest(str(manifest))
    assert raised.value.code == ExitCode.BAD_INPUT
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="manifest .*nope.yaml does not exist") as raised:
        load_manifest(str(tmp_path / "nope.yaml"))
    assert raised.value.code == ExitCode.BAD_INPUT
    with pytest.raises(HarnessError, match="profiles file .* does not exist"):
        load_profiles_file(str(tmp_path / "nope.json"))
    with pytest.raises(HarnessError, match="is a directory"):
        load_manifest(str(tmp_path))


@pytest.mark.parametrize("text,words", [
    ("{not json", "neither JSON nor YAML"),
    ("42\n", "holds no Fargate profiles"),
    ('{"something": "else"}', "no Fargate profiles found"),
    ('[{"selectors": []}]', "not a Fargate profile"),
], ids=["broken", "scalar", "no profiles", "entry without name"])
def test_a_bad_profiles_file(tmp_path: Path, text: str, words: str) -> None:
    profiles = tmp_path / "profiles.json"
    profiles.write_text(text)
    with pytest.raises(HarnessError) as raised:
        load_profiles_file(str(profiles))
    assert raised.value.code == ExitCode.BAD_INPUT and words in str(raised.value)


def test_cli_prints_one_line_and_exits_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    assert main(["explain", "-f", str(binary)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("fargate-lab: error: manifest ") and err.count("\n") == 1


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "-f", str(MANIFESTS / "sample-app.yaml"), "-o", "json"]) == ExitCode.OK
    [verdict] = json.loads(capsys.readouterr().out)
    assert verdict["capacity_provisioned"] == "0.5vCPU 1GB"


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((MANIFESTS / "netshoot.yaml").read_text()))
    out = io.StringIO()
    assert run_explain("-", None, "table", out) == ExitCode.OK
    assert "0.5vCPU 1GB" in out.getvalue()


def test_no_workload_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path, "apiVersion: v1\nkind: Namespace\nmetadata: {name: study-aews}\n")
    assert "no Pod or pod template" in capsys.readouterr().err
