"""The ``fargate-lab`` command: the local environment (``up``, ``env``, ``status``, ``down``), a student's
self-check (``check``), ``explain`` for manifests, and ``cleanup``/``leaks`` of a run.

Every failure a user can cause prints one line ``fargate-lab: error: …`` and exits with the code of its
class (see :class:`fargatelab.errors.ExitCode`). Options are validated by argparse before any work starts.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any, Sequence

from ..backends.capabilities import DATA_PLANES, default_data_plane
from ..errors import ExitCode, HarnessError
from ..rules.naming import validate_cluster_name
from ..rules.timing import PROFILES
from .help_text import DESCRIPTIONS, epilog

__all__ = ["main", "get_parser"]


def cluster_name_argument(value: str) -> str:
    """argparse type of ``--cluster``: an EKS cluster name, or a usage error saying what is allowed."""
    try:
        return validate_cluster_name(value)
    except HarnessError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fargate-labs")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def get_parser() -> argparse.ArgumentParser:
    """The whole command line (shell completion generators read it too)."""
    # Raw, for the epilog's tables; the description is wrapped here instead.
    p = argparse.ArgumentParser(prog="fargate-lab", description=textwrap.fill(DESCRIPTIONS["fargate-lab"], 79),
                                epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _completion(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=DESCRIPTIONS[name])  # type: ignore[no-any-return]

    def with_name(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--name", default=None, help="environment name (default: $FARGATE_LABS_ENV or 'default')")
        return sp

    up = with_name(command("up", "start the local EKS-on-Fargate environment in the background"))
    up.add_argument("--cluster", type=cluster_name_argument, default="eksworkshop", help="EKS cluster name")
    up.add_argument("--region", default="ap-northeast-2", help="AWS region (default ap-northeast-2)")
    up.add_argument("--apiserver-port", type=int, default=0, help="fixed API server port (default: a free one)")
    up.add_argument("--bin-dir", default=None, help="directory with prebuilt etcd, kube-* , kubectl and kwok")
    up.add_argument("--timing", choices=tuple(PROFILES), default="fast",
                    help="timing profile: fast (default) or eks (the documented EKS latencies)")
    up.add_argument("--timing-scale", type=float, default=1.0, help="multiply every emulated latency")
    up.add_argument("--run-id", default="", help="run id to tag everything with (default: random)")
    up.add_argument("--placement", choices=("per-pod-node", "hosted"), default="per-pod-node",
                    help="per-pod-node: a Fargate node per pod (default); hosted: pods on worker nodes, "
                         "shadow Fargate nodes (how the kind backend runs)")
    up.add_argument("--data-plane", choices=DATA_PLANES, default=None,
                    help="microvm: every Fargate pod runs for real in a microVM of its own, with a real kubelet, "
                         "containerd and runc (Linux, root); kwok: KWOK plays the Fargate nodes; auto (default, "
                         "$FARGATE_LABS_DATA_PLANE): microvm where the host can, else kwok, said in one line")

    with_name(command("env", "print the export lines of a running environment"))
    status = with_name(command("status", "show each component, its pid, port and log"))
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")
    with_name(command("down", "stop everything and remove the state"))
    resolve = with_name(command("resolve", "print the address that serves an ALB's DNS name"))
    resolve.add_argument("dns_name", metavar="DNSNAME", help="the ALB's DNS name (the Ingress hostname)")

    prov = command("provision", "build (or fetch) everything a run starts from, ahead of it")
    prov.add_argument("--data-plane", choices=DATA_PLANES, default=None,
                      help="what the runs will use: microvm (the data plane's binaries and images), kwok (kwok), "
                           "auto (default, $FARGATE_LABS_DATA_PLANE): what `up` would choose on this host")
    prov.add_argument("--no-tools", action="store_true",
                      help="leave out the workshop's command-line tools (eksctl, helm, the AWS CLI)")

    engine = command("kind-engine", "install and start a Docker engine for the kind backend")
    engine.add_argument("--node-image", action="store_true", help="also build kind's node image (minutes, once)")

    ex = command("explain", "tell whether the pods of a manifest run on Fargate, and their size")
    ex.add_argument("-f", "--filename", required=True, help="manifest file (YAML, several documents allowed; - reads stdin)")
    ex.add_argument("--profiles", default=None, help="Fargate profiles: EKS API JSON/YAML or eksctl ClusterConfig")
    ex.add_argument("-o", "--output", choices=("table", "json"), default="table")
    ex.add_argument("--strict", action="store_true", help="exit 1 when any pod cannot run on Fargate")

    from .check import add_parser as add_check
    from .cleanup import add_parsers

    add_check(sub, DESCRIPTIONS["check"])
    add_parsers(sub, cluster_name_argument, DESCRIPTIONS)
    return p


def _completion(p: argparse.ArgumentParser) -> None:
    """``--print-completion bash|zsh|tcsh`` when shtab (the ``cli`` extra) is installed."""
    try:
        import shtab
    except ImportError:
        return
    shtab.add_argument_to(p, ["--print-completion"], help="print the shell completion script of fargate-lab")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _env_name(args: argparse.Namespace) -> str:
    import os

    return args.name or os.environ.get("FARGATE_LABS_ENV") or "default"


def _run(args: argparse.Namespace) -> int:
    if args.command == "explain":
        from .explain import run_explain

        return run_explain(args.filename, args.profiles, args.output, strict=args.strict)
    if args.command == "check":
        from .check import run_check

        return run_check(args)
    if args.command == "kind-engine":
        from ..kind.engine import start_engine

        start_engine(_stderr)
        if args.node_image:
            from ..kind.node_image import provision_node_image

            print(provision_node_image(_stderr))
        return ExitCode.OK
    if args.command == "provision":
        from ..local.provisioning import provision_all

        provision_all(args.data_plane or default_data_plane(), clis=not args.no_tools, progress=_stderr)
        return ExitCode.OK
    if args.command in ("cleanup", "leaks"):
        from .cleanup import run_cleanup, run_leaks

        return run_cleanup(args) if args.command == "cleanup" else run_leaks(args)

    from ..local.environment import EnvironmentConfig, LocalEnvironment

    env = LocalEnvironment(_env_name(args))
    if args.command == "up":
        env.up(EnvironmentConfig(
            name=env.name, cluster_name=args.cluster, region=args.region, apiserver_port=args.apiserver_port,
            bin_dir=args.bin_dir, timing=args.timing, timing_scale=args.timing_scale, run_id=args.run_id,
            placement=args.placement, data_plane=args.data_plane or default_data_plane(),
        ))
        sys.stdout.write(env.exports())
    elif args.command == "env":
        sys.stdout.write(env.exports())
    elif args.command == "status":
        rows = env.status()
        _print_status(rows, args.output)
        if any(r["state"] != "running" for r in rows):
            dead = ", ".join(r["name"] for r in rows if r["state"] != "running")
            print(f"fargate-lab: error: {dead} died: read its log above, then `fargate-lab down` "
                  "and `fargate-lab up`", file=sys.stderr)
            return ExitCode.START_FAILED
    elif args.command == "down":
        env.down()
    elif args.command == "resolve":
        print(env.resolve_load_balancer(args.dns_name))
    return ExitCode.OK


def _print_status(rows: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    width = max(len(r["name"]) for r in rows) if rows else 4
    print(f"{'COMPONENT':<{width}}  {'STATE':<7}  {'PID':>7}  {'PORT':>5}  LOG")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['state']:<7}  {r['pid']:>7}  {r['port'] or '-':>5}  {r['log']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        return _run(args)
    except HarnessError as err:
        print(f"fargate-lab: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print("fargate-lab: interrupted; everything started was stopped", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

