"""The ALBs' data plane figures, for scripts/benchmark.py: how soon an Ingress's ALB answers once its pods are
Ready, how soon a new pod reaches the proxy, and the latency of the game page through it.

Targets on the 2-core reference machine: Ingress created -> first 200 <= 10 s after its pods are Ready; a
target change reaches the proxy <= 2 s; p50 latency through the ALB <= 2 ms on loopback.
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import time
from typing import Any, Callable

GAME = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: game, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: game}}}}
  template:
    metadata: {{labels: {{app: game}}}}
    spec:
      containers: [{{name: game, image: public.ecr.aws/l6m2t8p7/docker-2048:latest, ports: [{{containerPort: 80}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: game, namespace: {ns}}}
spec: {{selector: {{app: game}}, ports: [{{port: 80, targetPort: 80}}]}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: game
  namespace: {ns}
  annotations: {{alb.ingress.kubernetes.io/scheme: internet-facing, alb.ingress.kubernetes.io/target-type: ip}}
spec:
  ingressClassName: alb
  rules: [{{http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: game, port: {{number: 80}}}}}}}}]}}}}]
"""
REQUESTS = 200


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise RuntimeError(f"no {what} after {timeout:.0f} s")


def _status(address: str, hostname: str) -> int:
    conn = http.client.HTTPConnection(address, 80, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": hostname})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()


def _ready_ips(kubectl: list[str], ns: str) -> set[str]:
    pods = json.loads(subprocess.run(kubectl + ["-n", ns, "get", "pods", "-o", "json"], capture_output=True,
                                     text=True, check=True).stdout)["items"]
    return {p["status"]["podIP"] for p in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))}


def alb_figures(env: Any, kubectl: list[str], ns: str) -> None:
    """``kubectl`` talks to ``env``, and ``ns`` is a namespace a Fargate profile selects."""
    h = env.handle()
    subprocess.run(kubectl + ["apply", "-f", "-"], input=GAME.format(ns=ns), text=True, check=True,
                   capture_output=True)
    ready_at = _until(lambda: _ready_ips(kubectl, ns) and time.monotonic(), 180, "Ready game pod")
    hostname = _until(lambda: subprocess.run(kubectl + ["-n", ns, "get", "ingress", "game", "-o",
                                             "jsonpath={.status.loadBalancer.ingress[0].hostname}"],
                                             capture_output=True, text=True).stdout, 120, "Ingress hostname")
    address = _until(lambda: h.load_balancer_address(hostname), 60, "address of the ALB")
    _until(lambda: _status(address, hostname) == 200, 120, "HTTP 200 through the ALB")
    print(f"{'ALB: pods Ready -> first 200 through it':<44} {time.monotonic() - ready_at:8.1f} s   "
          "(target <= 10 s)", flush=True)

    config = next((env.dir / "albs").glob("alb-*/haproxy.cfg"))
    before = _ready_ips(kubectl, ns)
    subprocess.run(kubectl + ["-n", ns, "scale", "deployment", "game", "--replicas=2"], check=True,
                   capture_output=True)
    new_ip, ready_at = _until(lambda: (n := _ready_ips(kubectl, ns) - before) and (n.pop(), time.monotonic()), 180,
                              "the second game pod Ready")
    _until(lambda: f"server {new_ip}:80 " in config.read_text(), 60, "the new target in the proxy's configuration")
    print(f"{'ALB: new pod Ready -> in its proxy':<44} {time.monotonic() - ready_at:8.1f} s   "
          "(target <= 2 s)", flush=True)

    conn = http.client.HTTPConnection(address, 80, timeout=5)
    latencies = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        conn.request("GET", "/", headers={"Host": hostname})
        conn.getresponse().read()
        latencies.append((time.perf_counter() - started) * 1000)
    conn.close()
    print(f"{f'ALB: game page latency, p50 of {REQUESTS}':<44} {statistics.median(latencies):8.2f} ms  "
          f"(target <= 2 ms; max {max(latencies):.1f} ms)", flush=True)
    subprocess.run(kubectl + ["delete", "namespace", ns, "--wait=true"], capture_output=True)
