"""The ALBs' data plane end to end: an ALB Ingress over real pods answers HTTP at its hostname through a real
HAProxy, DescribeTargetHealth reports what its checks found, no target means the ALB's 503, and deleting the
Ingress takes the proxy away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any, Callable

import pytest

from fargatelab.errors import ExitCode, HarnessError
from fargatelab.local import process
from cluster_helpers import fargate_profile, kubectl, until
from fargatelab.local.environment import LocalEnvironment

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="microVMs need root (network namespaces, cgroups): run as root"),
]

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: albs}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: albs}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: albs
  annotations: {alb.ingress.kubernetes.io/scheme: internet-facing, alb.ingress.kubernetes.io/target-type: ip}
spec:
  ingressClassName: alb
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


@pytest.fixture(scope="module")
def env(local_environment: Callable[..., LocalEnvironment]) -> LocalEnvironment:
    return local_environment("albs", data_plane="microvm")






def _get(address: str, hostname: str, path: str = "/") -> tuple[int, str]:
    request = urllib.request.Request(f"http://{address}{path}", headers={"Host": hostname})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err)


def _answered(address: str, hostname: str, status: int, timeout: float = 120) -> tuple[int, str]:
    def check() -> tuple[int, str] | None:
        got = _get(address, hostname)
        return got if got[0] == status else None

    found: tuple[int, str] = until(check, timeout, f"HTTP {status} from http://{hostname}/ at {address}")
    return found


def _states(elbv2: Any, tg_arn: str) -> dict[str, str]:
    health = elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
    return {h["Target"]["Id"]: h["TargetHealth"]["State"] for h in health}


def test_an_alb_serves_its_pods_at_its_hostname(env: LocalEnvironment, aws: Callable[[str], Any],
                                                 pod_execution_role: str) -> None:
    h = env.handle()
    eks, elbv2 = aws("eks"), aws("elbv2")
    fargate_profile(env, eks, pod_execution_role, "albs", "albs")
    assert kubectl(env, "apply", "-f", "-", stdin=WEB).returncode == 0
    hostname = until(lambda: kubectl(env, "get", "ingress", "-n", "albs", "web", "-o",
                                       "jsonpath={.status.loadBalancer.ingress[0].hostname}").stdout, 120, "hostname")
    (lb,) = [b for b in elbv2.describe_load_balancers()["LoadBalancers"] if b["DNSName"] == hostname]

    # The user's way in: `fargate-lab resolve`, then curl --resolve (here: the Host header).
    resolved = subprocess.run([sys.executable, "-m", "fargatelab.cli.main", "resolve", "--name", env.name, hostname],
                              capture_output=True, text=True, env=dict(os.environ))
    assert resolved.returncode == 0, resolved.stderr
    address = resolved.stdout.strip()
    assert address.startswith("127.100.")
    status, body = _answered(address, hostname, 200)
    assert "<title>Welcome to nginx!</title>" in body

    (tg,) = elbv2.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]

    def both_running() -> set[str]:
        pods = json.loads(kubectl(env, "get", "pods", "-n", "albs", "-o", "json").stdout)["items"]
        ips = {p["status"].get("podIP") for p in pods if p["status"].get("phase") == "Running"}
        return ips if len(ips) == 2 and None not in ips else set()

    ips = until(both_running, 120, "both web pods Running")
    until(lambda: _states(elbv2, tg["TargetGroupArn"]) == {ip: "healthy" for ip in ips}, 60, "targets healthy")

    # A health check the pods fail: unhealthy with the codes, and fail-open (every target is unhealthy).
    elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/missing")
    until(lambda: set(_states(elbv2, tg["TargetGroupArn"]).values()) == {"unhealthy"}, 60, "targets unhealthy")
    described = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    assert {(d["TargetHealth"]["Reason"], d["TargetHealth"]["Description"]) for d in described} == {
        ("Target.ResponseCodeMismatch", "Health checks failed with these codes: [404]")}
    assert _get(address, hostname)[0] == 200
    elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/")
    until(lambda: set(_states(elbv2, tg["TargetGroupArn"]).values()) == {"healthy"}, 60, "targets healthy again")

    # Inside the VPC the name resolves to the ALB's address there, through the cluster DNS and the VPC's
    # resolver, and the ALB answers a pod (busybox's nc: its static wget cannot load resolver libraries).
    assert kubectl(env, "run", "-n", "albs", "client", "--image=busybox", "--", "sleep", "3600").returncode == 0
    until(lambda: "Running" in kubectl(env, "get", "pod", "-n", "albs", "client").stdout, 120, "client Running")
    in_vpc = until(lambda: (out := kubectl(env, "exec", "-n", "albs", "client", "--", "nslookup", hostname).stdout)
                    and "10.11." in out.split(hostname, 1)[-1] and out, 60, f"{hostname} resolved in the VPC")
    vpc_address = in_vpc.split(hostname, 1)[-1].split("Address:")[1].split()[0]
    page = kubectl(env, "exec", "-n", "albs", "client", "--", "sh", "-c",
                    f"printf 'GET / HTTP/1.0\\r\\nHost: {hostname}\\r\\n\\r\\n' | nc -w 3 {vpc_address} 80")
    assert "<title>Welcome to nginx!</title>" in page.stdout, page.stdout + page.stderr

    # A proxy that dies is started again.
    proxy = next(r for r in env.status() if r["name"] == "alb-proxies")
    haproxies = [p for p in process.tagged_pids(h.run_id) if "haproxy" in _cmdline(p)]
    for pid in haproxies:
        os.kill(pid, signal.SIGKILL)
    until(lambda: _get(address, hostname)[0] == 200, 30, "the page again after the proxy was killed")
    assert process.alive(proxy["pid"])

    # No target: the ALB's own 503.
    assert kubectl(env, "scale", "deployment", "-n", "albs", "web", "--replicas=0").returncode == 0
    status, body = _answered(address, hostname, 503)
    assert "<title>503 Service Temporarily Unavailable</title>" in body

    with pytest.raises(HarnessError) as unknown:
        env.resolve_load_balancer("k8s-nothing-here-0123456789-1.ap-northeast-2.elb.amazonaws.com")
    assert unknown.value.code == ExitCode.BAD_INPUT and "\n" not in str(unknown.value)

    # Deleting the Ingress deletes the ALB, and its proxy goes with it.
    assert kubectl(env, "delete", "ingress", "-n", "albs", "web", "--wait=true").returncode == 0
    until(lambda: not [p for p in process.tagged_pids(h.run_id) if "haproxy" in _cmdline(p)], 60, "no proxy left")
    names = json.loads((env.dir / "load-balancers.json").read_text())
    assert hostname not in names
    assert _get(address, hostname)[0] == 0  # nothing listens there any more


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
