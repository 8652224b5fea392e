"""``fargate-lab cleanup`` and ``fargate-lab leaks``: the leftovers of a run, removed or listed by its run id.

Where to look:

* ``--env NAME``: the run's resources inside local environment NAME (its kubeconfig and moto endpoint);
* ``--cluster C --region R``: an EKS cluster, reached as the eks backend reaches it (boto3's usual
  configuration, so ``AWS_ENDPOINT_URL`` points it at moto too);
* neither: every EKS cluster of the region (``--region``, else ``$AWS_REGION``), AWS side only.

``--orphans`` instead of a run id: every run on this host that was killed with -9 and has nothing alive
(see :mod:`fargatelab.local.orphans`), found by the names its data plane gives what it makes.

``cleanup`` first takes down every local environment whose run id is X (a local-backend run keeps all it
made inside its environment), and any process still tagged with X; then deletes the run's resources
(:func:`fargatelab.cleanup.deletion.delete_run`) and ends with the leak check. Both commands exit
``LEAKED_RESOURCES`` (17) when anything of the run remains.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any

from ..errors import ExitCode, HarnessError

__all__ = ["add_parsers", "run_cleanup", "run_leaks"]


def add_parsers(sub: Any, cluster_type: Any, descriptions: dict[str, str]) -> None:
    for name, text in (("cleanup", "delete everything tagged with a run id, then check nothing is left"),
                       ("leaks", "list what is still tagged with a run id (exit 17 if anything)")):
        p = sub.add_parser(name, help=text, description=descriptions[name])
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--run-id", help="the run whose resources to remove" if name == "cleanup"
                           else "the run whose resources to list")
        which.add_argument("--orphans", action="store_true",
                           help="every run on this host killed with -9 that left something (processes, network "
                                "namespaces, mounts, cgroups, a local environment's state) and has nothing alive")
        where = p.add_mutually_exclusive_group()
        where.add_argument("--env", default=None, metavar="NAME", help="a local environment the run used")
        where.add_argument("--cluster", type=cluster_type, default=None, help="the EKS cluster the run used")
        p.add_argument("--region", default=None, help="AWS region (default: $AWS_REGION, else ap-northeast-2)")
        if name == "leaks":
            p.add_argument("-o", "--output", choices=("table", "json"), default="table",
                           help="json: {run_id, leftovers, notes} on stdout")


def _say(line: str) -> None:
    print(line, flush=True)


def _local_environments(run_id: str) -> list[str]:
    from ..local.environment import LocalEnvironment, state_root

    root = state_root()
    names = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.is_dir() and (entry / "state.json").exists():
            try:
                env = LocalEnvironment(entry.name)
            except HarnessError:
                continue
            if (env.state() or {}).get("run_id") == run_id:
                names.append(entry.name)
    return names


def _scope(args: argparse.Namespace, kubeconfig_needed: bool = True) -> Any:
    from ..cleanup.leftovers import RunScope

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "ap-northeast-2"
    if args.env:
        from ..local.environment import LocalEnvironment
        from ..plugin.run_end import aws_factory

        handle = LocalEnvironment(args.env).handle()
        return RunScope(run_id=args.run_id, region=handle.region, aws=aws_factory(handle),
                        clusters=[handle.cluster_name], kubeconfig=handle.kubeconfig)
    from ..backends.eks_connection import Connection, connect

    if args.cluster:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            conn, _description, kubeconfig = connect(args.cluster, region, args.run_id)
        except NoCredentialsError:
            raise HarnessError("no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                               ExitCode.NO_CREDENTIALS) from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise HarnessError(f"no EKS cluster {args.cluster!r} in {region}: check --cluster and --region "
                                   "(or omit --cluster to search every cluster of the region)",
                                   ExitCode.BACKEND_UNAVAILABLE) from None
            raise HarnessError(f"eks:DescribeCluster failed: {code}", ExitCode.AWS) from None
        except BotoCoreError as exc:
            raise HarnessError(f"cannot reach AWS: {exc}", ExitCode.AWS) from None
        return conn.scope(args.run_id, str(kubeconfig))
    conn = Connection("", region)
    scope = conn.scope(args.run_id, None)
    scope.clusters = []
    return scope


def _aws_errors(call: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return call()
    except NoCredentialsError:
        raise HarnessError("no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                           ExitCode.NO_CREDENTIALS) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if "AccessDenied" in code or code == "UnauthorizedOperation":
            raise HarnessError(f"not allowed: {exc.operation_name} ({code}): attach docs/iam/replay-policy.json",
                               ExitCode.MISSING_PERMISSIONS) from None
        raise HarnessError(f"{exc.operation_name} failed: {code}", ExitCode.AWS) from None
    except BotoCoreError as exc:
        raise HarnessError(f"cannot reach AWS: {exc}", ExitCode.AWS) from None


def _report(scope: Any, leftovers: list[Any], output: str = "table") -> int:
    if output == "json":
        print(json.dumps({"run_id": scope.run_id, "leftovers": [str(left) for left in leftovers],
                          "notes": list(scope.notes)}, indent=2))
        return ExitCode.LEAKED_RESOURCES if leftovers else ExitCode.OK
    for note in scope.notes:
        _say(f"note: {note}")
    if leftovers:
        for left in leftovers:
            _say(f"LEFT: {left}")
        print(f"fargate-lab: error: {len(leftovers)} resource(s) of run {scope.run_id} remain", file=sys.stderr)
        return ExitCode.LEAKED_RESOURCES
    _say(f"leak check: nothing of run {scope.run_id} remains")
    return ExitCode.OK


def _validate(args: argparse.Namespace) -> None:
    from ..rules.naming import validate_run_id

    validate_run_id(args.run_id)


def _orphans(args: argparse.Namespace, remove: bool) -> int:
    from ..kind.leftovers import KindNodes
    from ..local.environment import remove_orphans, state_root
    from ..local.orphans import find_orphans

    if args.env or args.cluster:
        raise HarnessError("--orphans looks at this whole host: leave out --env and --cluster", ExitCode.USAGE)
    sources = [KindNodes()]
    if remove:
        removed = remove_orphans(_say, sources)
        left = find_orphans(state_root(), sources)
        for orphan in left:
            _say(f"LEFT: {orphan}")
        if left:
            print(f"fargate-lab: error: {len(left)} run(s) killed with -9 still left something", file=sys.stderr)
            return ExitCode.LEAKED_RESOURCES
        _say(f"orphans: {len(removed)} run(s) killed with -9 cleaned up; nothing of such runs remains")
        return ExitCode.OK
    found = find_orphans(state_root(), sources)
    if getattr(args, "output", "table") == "json":
        print(json.dumps({"orphans": [{"run_id": o.run_id, "remains": o.remains} for o in found]}, indent=2))
    else:
        for orphan in found:
            _say(f"LEFT: {orphan}")
        if not found:
            _say("orphans: no run killed with -9 left anything on this host")
    if found and getattr(args, "output", "table") != "json":
        print(f"fargate-lab: error: {len(found)} run(s) killed with -9 left something: "
              "`fargate-lab cleanup --orphans` removes it", file=sys.stderr)
    return ExitCode.LEAKED_RESOURCES if found else ExitCode.OK


def run_leaks(args: argparse.Namespace) -> int:
    from ..cleanup.leftovers import find_leftovers

    if args.orphans:
        return _orphans(args, remove=False)
    _validate(args)
    scope = _scope(args)
    leftovers = _aws_errors(lambda: find_leftovers(scope))
    return _report(scope, leftovers, args.output)


def run_cleanup(args: argparse.Namespace) -> int:
    from ..local import process
    from ..cleanup.deletion import delete_run
    from ..cleanup.leftovers import find_leftovers
    from ..local.environment import LocalEnvironment, state_root

    if args.orphans:
        return _orphans(args, remove=True)
    _validate(args)
    taken_down = _local_environments(args.run_id)
    for name in taken_down:
        LocalEnvironment(name).down(quiet=True)
        _say(f"took down local environment {name!r} (run {args.run_id})")
    stray = process.tagged_pids(args.run_id)
    if stray:
        process.stop(stray)
        _say(f"stopped {len(stray)} process(es) still tagged with run {args.run_id}")
    if args.env is None and args.cluster is None and taken_down:
        # A local-backend run: everything it made lived in that environment.
        shutil.rmtree(state_root() / f"eks-{args.run_id}", ignore_errors=True)
        _say(f"leak check: nothing of run {args.run_id} remains (its environment is gone)")
        return ExitCode.OK
    scope = _scope(args)
    errors = _aws_errors(lambda: delete_run(scope, _say))
    for error in errors:
        _say(f"cleanup error: {error}")
    leftovers = _aws_errors(lambda: find_leftovers(scope))
    shutil.rmtree(state_root() / f"eks-{args.run_id}", ignore_errors=True)
    return _report(scope, leftovers)
