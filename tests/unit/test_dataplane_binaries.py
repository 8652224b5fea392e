"""Data-plane binaries: pins, cache directory, manifest checks, partial rebuilds, and the Go and apt steps
against stand-in ``go``/``apt-get`` scripts; one integration test builds everything for real."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fargatelab.errors import ExitCode, HarnessError
from fargatelab.local import dataplane_binaries as dp
from fargatelab.local import go_build as gb
from fargatelab.local.go_build import pins_digest
from fargatelab.local.binaries import KUBERNETES_VERSION
from fargatelab.rules.naming import kubelet_version
from stand_ins import script

REQUIRED = {
    "fargate-node", "containerd", "containerd-shim-runc-v2", "runc", "coredns", "registry", "crane",
    "cni/host-device", "cni/ptp", "cni/bridge", "cni/loopback", "cni/host-local", "cni/static", "cni/portmap",
}


@pytest.fixture
def fake_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Builds that write a small script per binary; returns the names of the components built."""
    built: list[str] = []

    def build(component: dp.Component, target: Path, progress: Any) -> dict[str, Any]:
        built.append(component.name)
        sums = {}
        for rel in component.binaries:
            p = script(target / rel, f"echo {rel} {component.version}")
            sums[rel] = gb._digest(p)
        entry: dict[str, Any] = {"version": component.version, "tags": list(component.tags), "sha256": sums}
        if component.name == "runc":
            entry["seccomp"] = True
        return entry

    monkeypatch.setattr(gb, "_build", build)
    monkeypatch.setattr(gb, "_check_go", lambda components: "go1.99.0")
    return built


# --- pins ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "name"),
    [
        ("github.com/distribution/distribution/v3/cmd/registry", "registry"),
        ("github.com/distribution/distribution/v3", "distribution"),
        ("github.com/coredns/coredns", "coredns"),
        ("github.com/containernetworking/plugins/plugins/ipam/host-local", "host-local"),
    ],
)
def test_a_command_is_named_as_go_install_names_it(package: str, name: str) -> None:
    assert gb._command_name(package) == name


def test_every_binary_the_data_plane_needs_is_pinned_once() -> None:
    binaries = [rel for c in dp.COMPONENTS for rel in c.binaries]
    assert len(binaries) == len(set(binaries))
    assert set(binaries) == REQUIRED


def test_pins() -> None:
    versions = {c.name: c.version for c in dp.COMPONENTS}
    assert versions == {
        "kubernetes": KUBERNETES_VERSION, "containerd": "v2.4.2", "containerd-shim": "v2.4.2", "runc": "v1.3.7",
        "cni-plugins": "v1.10.0", "coredns": "v1.14.7", "registry": "v3.1.2", "crane": "v0.22.1",
    }
    assert all(not c.cgo for c in dp.COMPONENTS if c.name != "runc")


def test_the_cache_directory_follows_the_pins(cache: Path) -> None:
    assert dp.dataplane_dir().parent.parent == cache
    assert dp.dataplane_dir() == dp.dataplane_dir()
    bumped = tuple(dataclasses.replace(c, version="v2.4.3") if c.name == "containerd" else c
                   for c in dp.COMPONENTS)
    assert pins_digest(bumped) != pins_digest(dp.COMPONENTS)
    # Binaries stamped with the plain version, from before the EKS stamp, must not pass for current ones.
    unstamped = tuple(dataclasses.replace(c, stamps=()) if c.name == "kubernetes" else c for c in dp.COMPONENTS)
    assert pins_digest(unstamped) != pins_digest(dp.COMPONENTS)
    assert dp.dataplane_dir().parent.name == f"dataplane-{pins_digest(dp.COMPONENTS)}"


def test_the_node_program_follows_its_own_go_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """kubelet and kube-proxy are one program built from the project's own main package: a change to it is a
    new cache directory, so a stale build is never used."""
    kubernetes = next(c for c in dp.COMPONENTS if c.name == "kubernetes")
    assert kubernetes.binaries == ("fargate-node",)
    [(name, rel)] = kubernetes.sources
    source = (gb.DATA / name).read_text()
    assert rel == "cmd/fargate-node/main.go" and source.startswith("// Command fargate-node")
    for upstream in ("k8s.io/kubernetes/cmd/kubelet/app", "k8s.io/kubernetes/cmd/kube-proxy/app"):
        assert f'"{upstream}"' in source
    before = pins_digest(dp.COMPONENTS)
    for other in gb.DATA.iterdir():
        (tmp_path / other.name).write_bytes(other.read_bytes())
    (tmp_path / name).write_text(source + "\n// changed\n")
    monkeypatch.setattr(gb, "DATA", tmp_path)
    assert pins_digest(dp.COMPONENTS) != before


@pytest.mark.parametrize(("name", "upstream", "left_out"), [
    ("coredns", "github.com/coredns/coredns/coremain", ("route53", "azure", "clouddns", "etcd", "trace")),
    ("registry", "github.com/distribution/distribution/v3/registry", ("azure", "gcs", "s3-aws", "cloudfront")),
])
def test_coredns_and_the_registry_are_upstream_without_the_cloud_sdks(name: str, upstream: str,
                                                                      left_out: tuple[str, ...]) -> None:
    """Built from a main of the project's own inside upstream's module (so upstream's go.mod pins every
    dependency), importing upstream's server and leaving out what needs a cloud provider's SDK."""
    component = next(c for c in dp.COMPONENTS if c.name == name)
    assert component.binaries == (name,) and component.in_module
    [(source_name, rel)] = component.sources
    assert rel == f"fargatelab/{name}/main.go" and component.packages == (f"./fargatelab/{name}",)
    imports = set(re.findall(r'^\s*(?:_ )?"([^"]+)"', (gb.DATA / source_name).read_text(), re.MULTILINE))
    assert upstream in imports
    assert not [i for i in imports if i.rsplit("/", 1)[-1] in left_out]


def test_kubelet_and_kube_proxy_carry_the_eks_version_of_a_fargate_node() -> None:
    assert dp.KUBELET_VERSION == kubelet_version(KUBERNETES_VERSION)
    assert dp.KUBELET_VERSION.startswith(f"{KUBERNETES_VERSION}-eks-")
    kubernetes = next(c for c in dp.COMPONENTS if c.name == "kubernetes")
    assert kubernetes.version == KUBERNETES_VERSION
    assert dict(kubernetes.stamps) == {
        "k8s.io/component-base/version.gitVersion": dp.KUBELET_VERSION,
        "k8s.io/client-go/pkg/version.gitVersion": dp.KUBELET_VERSION,
    }
    # No other component is a Kubernetes binary, so none other gets the stamp.
    assert all("k8s.io/" not in var for c in dp.COMPONENTS if c is not kubernetes for var, _ in c.stamps)


def test_a_stamp_replaces_the_variable_in_place_and_leaves_the_others() -> None:
    base = "-s -w -X k8s.io/component-base/version.gitVersion=v1.34.4 -X k8s.io/component-base/version.gitMajor=1"
    assert gb._ldflags(base, (("k8s.io/component-base/version.gitVersion", "v1.34.4-eks-abc1234"),
                              ("example.com/v.extra", "x"))) == (
        "-s -w -X k8s.io/component-base/version.gitVersion=v1.34.4-eks-abc1234 "
        "-X k8s.io/component-base/version.gitMajor=1 -X example.com/v.extra=x")
    assert gb._ldflags("-s -w", ()) == "-s -w"
    assert gb._with_stamps(["-trimpath"], (("a.b", "c"),)) == ["-trimpath", "-ldflags", "-X a.b=c"]


# --- verification and partial rebuilds ------------------------------------------------------------


def test_provisioning_builds_each_component_once_then_reuses_the_cache(cache: Path, fake_builds: list[str]) -> None:
    lines: list[str] = []
    first = dp.provision_dataplane(lines.append)
    assert fake_builds == [c.name for c in dp.COMPONENTS]
    assert dp.verify_dataplane(first.bin_dir) == []
    assert first.path("bridge") == str(first.cni_dir / "bridge")
    assert first.path("fargate-node") == str(first.bin_dir / "fargate-node")
    assert first.seccomp
    manifest = json.loads((first.bin_dir / dp.MANIFEST).read_text())
    assert manifest["components"]["containerd"]["go"] == "go1.99.0"

    fake_builds.clear()
    again = dp.provision_dataplane(lines.append)
    assert fake_builds == []
    assert again == first


def test_only_the_corrupt_or_missing_component_is_rebuilt(cache: Path, fake_builds: list[str]) -> None:
    bin_dir = dp.provision_dataplane(lambda line: None).bin_dir
    (bin_dir / "containerd").write_text("#!/bin/sh\necho truncated\n")
    (bin_dir / "cni" / "portmap").unlink()
    problems = dp.verify_dataplane(bin_dir)
    assert any("containerd: checksum differs" in p for p in problems)
    assert any("cni/portmap: missing" in p for p in problems)

    fake_builds.clear()
    lines: list[str] = []
    dp.provision_dataplane(lines.append)
    assert fake_builds == ["containerd", "cni-plugins"]
    assert any("building containerd again" in line for line in lines)
    assert dp.verify_dataplane(bin_dir) == []


def test_a_version_change_in_the_manifest_means_a_rebuild(cache: Path, fake_builds: list[str]) -> None:
    bin_dir = dp.provision_dataplane(lambda line: None).bin_dir
    manifest = json.loads((bin_dir / dp.MANIFEST).read_text())
    manifest["components"]["crane"]["version"] = "v0.0.1"
    (bin_dir / dp.MANIFEST).write_text(json.dumps(manifest))
    assert dp.verify_dataplane(bin_dir) == [f"crane: not built at {dp.CRANE_VERSION} according to "
                                            f"{bin_dir / dp.MANIFEST}"]
    fake_builds.clear()
    dp.provision_dataplane(lambda line: None)
    assert fake_builds == ["crane"]


def test_runc_without_seccomp_is_rebuilt_once_libseccomp_is_there(
    cache: Path, fake_builds: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = dp.provision_dataplane(lambda line: None).bin_dir
    manifest = json.loads((bin_dir / dp.MANIFEST).read_text())
    manifest["components"]["runc"]["seccomp"] = False
    (bin_dir / dp.MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setattr(gb, "_has_libseccomp", lambda: False)
    fake_builds.clear()
    assert not dp.provision_dataplane(lambda line: None).seccomp
    assert fake_builds == []
    monkeypatch.setattr(gb, "_has_libseccomp", lambda: True)
    assert dp.provision_dataplane(lambda line: None).seccomp
    assert fake_builds == ["runc"]


def test_a_directory_without_manifest_is_only_checked_for_executables(tmp_path: Path) -> None:
    for rel in REQUIRED:
        script(tmp_path / rel, "true")
    assert dp.verify_dataplane(tmp_path) == []
    (tmp_path / "runc").chmod(0o644)
    assert dp.verify_dataplane(tmp_path) == [f"runc: missing or not executable in {tmp_path}"]


def test_an_unknown_binary_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="etcd"):
        dp.DataPlaneBinaries(tmp_path).path("etcd")


# --- Go ----------------------------------------------------------------------------------------------


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of stand-in tools only (plus /bin for the shell's own commands)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")
    return tools


def test_a_go_too_old_is_refused_before_any_build(fake_path: Path) -> None:
    if Path("/usr/bin/go").exists():
        pytest.skip("a system go in /usr/bin would shadow the stand-in")
    script(fake_path / "go", 'echo go1.24.3')
    with pytest.raises(HarnessError) as err:
        gb._check_go(list(dp.COMPONENTS))
    assert err.value.code == ExitCode.MISSING_BINARY
    assert "cni-plugins v1.10.0 needs Go >= 1.26.8 but `go` is go1.24.3: install a newer Go" in str(err.value)
    script(fake_path / "go", 'echo go1.26.8')
    assert gb._check_go(list(dp.COMPONENTS)) == "go1.26.8"


def test_no_go_at_all_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError, match=r"needs Go, and `go` is not on PATH: install it"):
        gb._go()


def test_a_component_is_installed_with_its_tags_and_version_stamps(
    fake_path: Path, tmp_path: Path
) -> None:
    # The stand-in records its arguments and environment, and "builds" the command named by its last argument.
    record = tmp_path / "go-args"
    script(fake_path / "go", f'printf "%s\\n" "$@" "CGO=$CGO_ENABLED" "TC=$GOTOOLCHAIN" "FLAGS=$GOFLAGS" > {record}\n'
           'for last; do :; done\nname=${last%@*}; name=${name##*/}\nprintf "#!/bin/sh\\n" > "$GOBIN/$name"')
    target = tmp_path / "cache" / "bin"
    target.mkdir(parents=True)
    lines: list[str] = []
    crane = next(c for c in dp.COMPONENTS if c.name == "crane")
    entry = gb._build(crane, target, lines.append)
    args = record.read_text().splitlines()
    assert args[0] == "install"
    assert "-s -w -X github.com/google/go-containerregistry/cmd/crane/cmd.Version=v0.22.1" in args
    assert "github.com/google/go-containerregistry/cmd/crane@v0.22.1" in args
    # The compiler skips DWARF, which -s -w would drop from the binary anyway.
    assert {"CGO=0", "TC=local", "FLAGS=-mod=mod -gcflags=all=-dwarf=false"} <= set(args)
    assert entry["sha256"] == {"crane": gb._digest(target / "crane")}
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".crane-")] == []
    assert lines[0] == "building crane v0.22.1"
    assert lines[1].startswith("  built crane in ")


def test_the_node_program_is_linked_with_the_eks_version_and_the_control_plane_flags(
    fake_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "go-args"
    script(fake_path / "go", f'printf "%s\\n" "$@" > {record}\n'
           'printf "#!/bin/sh\\n" > "$GOBIN/fargate-node"')
    plain = ("-s -w -X k8s.io/component-base/version.gitVersion=v1.34.4 -X k8s.io/component-base/version.gitMajor=1 "
             "-X k8s.io/client-go/pkg/version.gitVersion=v1.34.4 -X k8s.io/client-go/pkg/version.gitMajor=1")
    # The shared module's flags, as the control plane's build gets them.
    monkeypatch.setattr(gb, "kubernetes_module", lambda version: (tmp_path, ["-trimpath", "-ldflags", plain]))
    target = tmp_path / "cache" / "bin"
    target.mkdir(parents=True)
    kubernetes = next(c for c in dp.COMPONENTS if c.name == "kubernetes")
    gb._build(kubernetes, target, lambda line: None)
    args = record.read_text().splitlines()
    assert args[0] == "build"
    assert args.count("-ldflags") == 1
    v = dp.KUBELET_VERSION
    assert args[args.index("-ldflags") + 1] == (
        f"-s -w -X k8s.io/component-base/version.gitVersion={v} -X k8s.io/component-base/version.gitMajor=1 "
        f"-X k8s.io/client-go/pkg/version.gitVersion={v} -X k8s.io/client-go/pkg/version.gitMajor=1")
    assert args[-1:] == ["./cmd/fargate-node"]
    # The program's main package is put into the shared module before the build.
    assert (tmp_path / "cmd/fargate-node/main.go").read_text() == (gb.DATA / "fargate-node.go").read_text()


def test_a_failed_build_names_the_last_log_line_and_the_log(fake_path: Path, tmp_path: Path) -> None:
    script(fake_path / "go", 'echo "compiling..."; echo "go: module x: 410 Gone" >&2; exit 1')
    log = tmp_path / "x.log"
    with pytest.raises(HarnessError) as err:
        gb._run_go(["install", "x@v1"], tmp_path, {}, log, lambda line: None, "x")
    assert err.value.code == ExitCode.MISSING_BINARY
    assert str(err.value).startswith(f"building x with Go failed: go: module x: 410 Gone (full log {log}); ")


# --- runc's seccomp -----------------------------------------------------------------------------------


def test_without_root_runc_is_built_without_seccomp_and_says_so(
    fake_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gb, "_has_libseccomp", lambda: False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    lines: list[str] = []
    assert gb._seccomp_ready(lines.append, tmp_path / "log") is False
    assert "building runc WITHOUT seccomp" in lines[0]


def test_a_failed_apt_install_is_retried_after_an_update_then_given_up(
    fake_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "apt-calls"
    script(fake_path / "apt-get", f'echo "$*" >> {calls}; [ "$3" = update ]')
    script(fake_path / "pkg-config", "exit 1")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    lines: list[str] = []
    assert gb._seccomp_ready(lines.append, tmp_path / "log") is False
    # Each waits for another apt run's lock instead of failing at once.
    wait = "-o DPkg::Lock::Timeout=300"
    assert calls.read_text().splitlines() == [
        f"{wait} install -y --no-install-recommends libseccomp-dev", f"{wait} update",
        f"{wait} install -y --no-install-recommends libseccomp-dev",
    ]
    assert lines[0] == "installing libseccomp-dev with apt-get, for runc's seccomp support"
    assert "failed" in lines[1] and "WITHOUT seccomp" in lines[1]


def test_an_apt_install_that_works_enables_seccomp(
    fake_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "installed"
    script(fake_path / "apt-get", f"touch {installed}")
    script(fake_path / "pkg-config", f'[ -e {installed} ]')
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert gb._seccomp_ready(lambda line: None, tmp_path / "log") is True


# --- the real thing ------------------------------------------------------------------------------------

VERSION_COMMANDS = {
    # the kubelet, then kube-proxy, of the one program that is both
    "fargate-node": (["--version"], f"Kubernetes {kubelet_version(KUBERNETES_VERSION)}"),
    "fargate-node --proxy": (["--proxy", "--version"], f"Kubernetes {kubelet_version(KUBERNETES_VERSION)}"),
    "containerd": (["--version"], f"containerd github.com/containerd/containerd/v2 {dp.CONTAINERD_VERSION}"),
    "containerd-shim-runc-v2": (["-v"], dp.CONTAINERD_VERSION),
    "runc": (["--version"], f"runc version {dp.RUNC_VERSION.lstrip('v')}"),
    "coredns": (["-version"], f"CoreDNS-{dp.COREDNS_VERSION.lstrip('v')}"),
    "registry": (["--version"], dp.REGISTRY_VERSION),
    "crane": (["version"], dp.CRANE_VERSION),
}


@pytest.mark.integration
def test_every_data_plane_binary_builds_and_reports_its_version() -> None:
    binaries = dp.provision_dataplane()
    assert dp.verify_dataplane(binaries.bin_dir) == []
    for name, (args, expected) in VERSION_COMMANDS.items():
        out = subprocess.run([binaries.path(name.split()[0]), *args], capture_output=True, text=True, timeout=60)
        assert expected in out.stdout + out.stderr, (name, out)
        if name.startswith("fargate-node"):
            # Exactly, so that a plain "v1.34.4" with something after it does not pass.
            assert out.stdout.strip() == expected, (name, out)
    for plugin in sorted(p.name for p in binaries.cni_dir.iterdir()):
        # A CNI plugin run without CNI_COMMAND prints its "about" line, version included.
        out = subprocess.run([binaries.path(plugin)], capture_output=True, text=True, timeout=60,
                             env={"PATH": os.environ["PATH"]})
        assert f"CNI {plugin} plugin {dp.CNI_PLUGINS_VERSION}" in out.stdout + out.stderr, (plugin, out)
    if binaries.seccomp:
        out = subprocess.run([binaries.path("runc"), "--version"], capture_output=True, text=True, timeout=60)
        assert "libseccomp:" in out.stdout


def test_kwok_comes_from_its_official_release_where_that_is_reachable(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """kwok's release is the command itself, not an archive; checked against the published checksums."""
    import hashlib

    monkeypatch.setenv("FARGATE_LABS_CACHE", str(tmp_path))
    body = b"#!/bin/sh\necho kwok\n"
    base = f"https://github.com/kubernetes-sigs/kwok/releases/download/{dp.KWOK_VERSION}"
    served = {f"{base}/checksums.txt": f"{hashlib.sha256(body).hexdigest()}  kwok-linux-amd64\n".encode(),
              f"{base}/kwok-linux-amd64": body}
    monkeypatch.setattr(gb, "fetch", lambda url, timeout=20: served[url])
    monkeypatch.setattr(gb, "fetch_verified", lambda url, sha: served[url])
    monkeypatch.setattr("fargatelab.local.binaries.platform.machine", lambda: "x86_64")
    assert not dp.kwok_built()
    path = Path(dp.provision_kwok(lambda _line: None))
    assert path.read_bytes() == body and dp.kwok_built()
    manifest = json.loads((path.parent / "MANIFEST.json").read_text())["components"]["kwok"]
    assert manifest["source"] == f"{base}/kwok-linux-amd64"
