"""Documented command lines run as written, through the real CLIs (eksctl, aws, helm, kubectl).

Only the run's names are put in: ``$EKSCLUSTER_NAME`` and each documented name the run renamed (a
namespace, a profile). The line runs in bash with the backend's kubeconfig and AWS endpoint, the tools the
harness provisioned first on PATH; what ran, its exit code and its output go into the report beside the
documented line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

__all__ = ["Ran", "Tools", "substitute", "run_line"]

#: output kept in the report per command
_OUTPUT_LIMIT = 6000
_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Ran:
    """One command line that ran: as the report shows it."""

    command: str
    exit_code: int
    output: str
    #: what of the output was compared with the document, one line each
    compared: list[str] = field(default_factory=list)
    #: standard output alone (``output`` has standard error after it), for parsing; not in the report
    stdout: str = field(default="", repr=False)

    def record(self) -> str:
        data = asdict(self)
        del data["stdout"]
        data["output"] = _COLOURS.sub("", self.output)  # `ip -c a` colours its output: the report shows text
        if len(data["output"]) > _OUTPUT_LIMIT:
            data["output"] = data["output"][:_OUTPUT_LIMIT] + \
                f"\n… ({len(data['output']) - _OUTPUT_LIMIT} more characters)"
        return json.dumps(data)


@dataclass(frozen=True)
class Tools:
    """The real CLIs a backend's labs run: a directory put first on PATH, and their versions."""

    bin_dir: Path | None
    versions: Mapping[str, str]
    #: why there are none ('' when there are): what a step that falls back to the API calls says
    problem: str = ""

    @classmethod
    def on_path(cls) -> Tools:
        """The user's own tools, as their shell finds them (a student's self-check provisions nothing)."""
        return cls(None, {})

    def has(self, name: str) -> bool:
        if self.problem:
            return False
        return (self.bin_dir / name).exists() if self.bin_dir else shutil.which(name) is not None

    def why_not(self, name: str) -> str:
        return self.problem or (f"no {name} in {self.bin_dir}" if self.bin_dir else f"no {name} on PATH")


def substitute(line: str, names: Mapping[str, str]) -> str:
    """``line`` with each documented name (a whole word: not part of a longer name) replaced by the run's.

    >>> substitute("eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048 "
    ...            "--namespace fargate-game-2048", {"$EKSCLUSTER_NAME": "eksworkshop",
    ...            "fargate-game-2048": "fargate-game-2048-ab12cd34"})
    'eksctl create fargateprofile --cluster eksworkshop --name fargate-game-2048-ab12cd34 --namespace fargate-game-2048-ab12cd34'
    >>> substitute("kubectl get ns study-aews-x study-aews", {"study-aews": "study-aews-r1"})
    'kubectl get ns study-aews-x study-aews-r1'
    """
    for documented, actual in sorted(names.items(), key=lambda kv: -len(kv[0])):
        line = re.sub(rf"(?<![\w$-]){re.escape(documented)}(?![\w-])", lambda _m: actual, line)
    return line


def run_line(line: str, env: Mapping[str, str], timeout: float, stdin: str | None = None) -> Ran:
    """Run ``line`` in bash (pipefail, as a student's terminal would fail on the first broken pipe part)."""
    try:
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", line], env=dict(env), input=stdin,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Ran(line, 124, f"{out}\n(stopped after {timeout:.0f} s)")
    output = proc.stdout + (("\n" if proc.stdout and not proc.stdout.endswith("\n") else "") + proc.stderr
                            if proc.stderr else "")
    return Ran(line, proc.returncode, output, stdout=proc.stdout)


def environment(tools: Tools, kubeconfig: str, aws: Mapping[str, str], cluster_name: str,
                kubectl: str = "kubectl") -> dict[str, str]:
    """What a student's shell has: the tools on PATH (and the backend's kubectl), the kubeconfig, the AWS
    endpoint and region, and the documents' own variable for the cluster."""
    env = dict(os.environ)
    env.update(aws)
    env.update(KUBECONFIG=kubeconfig, EKSCLUSTER_NAME=cluster_name, CLUSTER_NAME=cluster_name)
    first = ([str(tools.bin_dir)] if tools.bin_dir and not tools.problem else []) + \
        ([os.path.dirname(kubectl)] if os.path.isabs(kubectl) else [])
    env["PATH"] = os.pathsep.join([*first, env.get("PATH", "")])
    return env
