"""``fargate-lab explain -f FILE [--profiles FILE] [-o table|json] [--strict]``: the command behind :mod:`fargatelab.rules.explain`.

Reads a manifest (several YAML documents allowed, ``-`` for stdin, named ``<stdin>`` in errors) and, optionally, the Fargate
profiles to match against; without ``--profiles`` it uses the profiles the workshop documents create:
``fargate-game-2048`` (000), ``study_wildcard`` with ``study-*`` and ``kube-system`` (002).

Everything a user can get wrong (a missing file, a file that is not YAML or not a manifest, a profiles
file that holds no profiles) is a :class:`~fargatelab.errors.HarnessError` with one line and
:attr:`~fargatelab.errors.ExitCode.BAD_INPUT`.

>>> import tempfile, os
>>> with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
...     _ = f.write("kind: Pod\\nmetadata: {name: web, namespace: study-aews}\\nspec: {containers: [{name: web}]}\\n")
>>> run_explain(f.name, None, "table")
KIND  NAMESPACE   NAME  FARGATE  PROFILE         CAPACITY        REASON
Pod   study-aews  web   yes      study_wildcard  0.25vCPU 0.5GB  -
0
>>> os.unlink(f.name)
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import yaml

from ..errors import ExitCode, HarnessError
from ..rules.explain import explain, format_table, load_profiles, to_json
from ..rules.matching import Profile, Selector

__all__ = ["run_explain", "documented_profiles", "load_manifest", "load_profiles_file"]


def documented_profiles() -> list[Profile]:
    """The Fargate profiles of the workshop documents (lab-reference, Lab 1), all ACTIVE."""
    return [
        Profile("fargate-game-2048", [Selector("fargate-game-2048")]),
        Profile("study_wildcard", [Selector("study-*")]),
        Profile("kube-system", [Selector("kube-system")]),
    ]


def shown(filename: str, what: str) -> str:
    """How an error names the input: ``manifest m.yaml``, or ``<stdin>`` for ``-``.

    >>> shown("m.yaml", "manifest"), shown("-", "manifest")
    ('manifest m.yaml', '<stdin>')
    """
    return "<stdin>" if filename == "-" else f"{what} {filename}"


def _read(filename: str, what: str) -> str:
    if filename == "-":
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            raise HarnessError("<stdin> is not text (expected YAML)", ExitCode.BAD_INPUT) from None
    try:
        with open(filename, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise HarnessError(f"{what} {filename} does not exist", ExitCode.BAD_INPUT) from None
    except IsADirectoryError:
        raise HarnessError(f"{what} {filename} is a directory: pass one file", ExitCode.BAD_INPUT) from None
    except UnicodeDecodeError:
        raise HarnessError(f"{what} {filename} is not a text file (expected YAML)", ExitCode.BAD_INPUT) from None
    except OSError as err:
        raise HarnessError(f"cannot read {what} {filename}: {err.strerror}", ExitCode.BAD_INPUT) from None


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else str(problem)


def load_manifest(filename: str) -> list[dict[str, Any]]:
    """The Kubernetes objects of a YAML file (``---``-separated documents; empty documents are skipped)."""
    text = _read(filename, "manifest")
    name = shown(filename, "manifest")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise HarnessError(f"{name} is not valid YAML ({_yaml_error(exc)})", ExitCode.BAD_INPUT) from None
    for i, doc in enumerate(docs, 1):
        if not isinstance(doc, dict) or "kind" not in doc:
            raise HarnessError(
                f"{name} is not a Kubernetes manifest: document {i} has no kind "
                "(expected objects such as `kind: Deployment`)", ExitCode.BAD_INPUT)
    return docs


def load_profiles_file(filename: str) -> list[Profile]:
    """Profiles from JSON or YAML: ``aws eks describe-fargate-profile`` output, a list of profiles,
    ``{"fargateProfiles": [...]}``, or an eksctl ClusterConfig."""
    text = _read(filename, "profiles file")
    name = shown(filename, "profiles file")
    try:
        doc = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise HarnessError(f"{name} is neither JSON nor YAML ({_yaml_error(exc)})",
                           ExitCode.BAD_INPUT) from None
    if not isinstance(doc, (dict, list)):
        raise HarnessError(f"{name} holds no Fargate profiles "
                           "(expected describe-fargate-profile output or an eksctl ClusterConfig)",
                           ExitCode.BAD_INPUT)
    try:
        return load_profiles(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HarnessError(f"{name}: {exc}", ExitCode.BAD_INPUT) from None


#: ``--strict``: some pod of the manifest cannot run on Fargate
NOT_ON_FARGATE = 1


def run_explain(filename: str, profiles: str | None, output: str, out: TextIO | None = None,
                strict: bool = False) -> int:
    """Print where each pod of ``filename`` would run; returns the process exit code (with ``strict``, 1 when
    any pod cannot run on Fargate)."""
    docs = load_manifest(filename)
    known = load_profiles_file(profiles) if profiles else documented_profiles()
    verdicts = explain(docs, known)
    stream = out or sys.stdout
    stream.write((to_json(verdicts) if output == "json" else format_table(verdicts)) + "\n")
    if not verdicts and output != "json":
        print(f"fargate-lab: no Pod or pod template in {shown(filename, 'manifest')}", file=sys.stderr)
    off = [v for v in verdicts if not v.runs_on_fargate]
    if strict and off:
        print(f"fargate-lab: {len(off)} of {len(verdicts)} pod(s) cannot run on Fargate (--strict)", file=sys.stderr)
        return NOT_ON_FARGATE
    return ExitCode.OK
