"""What ``fargate-lab --help`` says: each command's description, the exit codes, the environment variables.

Plain text (argparse shows it as written); the same facts are in docs/troubleshooting.md (exit codes) and
docs/environment-variables.md (variables), which the tests keep in step with these tables.
"""

from __future__ import annotations

from ..errors import ExitCode

__all__ = ["DESCRIPTIONS", "ENVIRONMENT", "EXIT_CODES", "epilog"]

DESCRIPTIONS = {
    "fargate-lab": (
        "Run the EKS-on-Fargate workshop's local environment, check a student's own EKS cluster against the "
        "labs, explain whether manifests run on Fargate, and remove what a run left behind."),
    "up": (
        "Start the local EKS-on-Fargate environment in the background: a real control plane, moto for the AWS "
        "APIs, KWOK for the Fargate nodes and the emulation of what EKS adds. Prints the export lines that "
        "point kubectl, boto3 and the aws CLI at it: eval \"$(fargate-lab up)\"."),
    "env": "Print the export lines (KUBECONFIG, AWS_ENDPOINT_URL, ...) of a running local environment.",
    "status": (
        "Show each component of a local environment: its state, pid, port and log. Exits 7 when one died."),
    "down": "Stop every process of a local environment and remove its state.",
    "resolve": "Print the loopback address where the local environment serves an internet-facing ALB's DNS "
               "name, for curl --resolve NAME:80:ADDRESS or a browser's --host-resolver-rules=\"MAP NAME ADDRESS\". "
               "Exit 8 for a name that is no ALB of the environment, or an internal one (it answers only inside "
               "the VPC).",
    "kind-engine": (
        "Make sure a Docker engine runs for the kind backend: install Debian's docker.io where Docker is "
        "missing, start dockerd with its networks away from the VPC's addresses (and, on a host whose root "
        "cannot grant every capability, a runc that asks only for those it can), and wait until it answers. "
        "With --node-image, also build kind's node image for the pinned Kubernetes (minutes, once)."),
    "provision": (
        "Build, or fetch where the official releases can be reached, everything a run of the local backend "
        "starts from, so that the run itself starts in seconds: the Kubernetes binaries, the data plane's "
        "binaries and stand-in images (microVMs) or kwok (KWOK nodes), and the workshop's eksctl, helm and "
        "AWS CLI. Go builds run one after another, the downloads beside them; everything is cached in "
        "~/.cache/fargate-labs, and a second run finds it there in seconds."),
    "explain": (
        "Tell, for every pod and pod template of a manifest, whether it runs on Fargate, which profile "
        "matches it and the capacity Fargate gives it, or why it stays pending. Without --profiles the "
        "workshop's profiles are used (fargate-game-2048, study_wildcard with study-*, kube-system)."),
    "cleanup": (
        "Delete everything tagged with a run id (in a local environment, an EKS cluster, or every cluster "
        "of a region), then check that nothing is left. With --orphans instead of a run id: remove what "
        "runs killed with -9 left on this host (processes, network namespaces, mounts, cgroups, a local "
        "environment's state) once nothing of them is alive. Exits 17 when something remains."),
    "leaks": ("List what is still tagged with a run id (or, with --orphans, what runs killed with -9 left on "
              "this host), deleting nothing. Exits 17 when anything is found."),
    "check": (
        "Check your own EKS cluster against the labs, read-only: the cluster and region come from your "
        "kubeconfig's current context (or --context), the labs run in check mode, and each lab is reported "
        "as done or not yet, with the command that would do what is missing. Exits 0 when every checked "
        "step is done, 1 when some are not yet. Needs AWS credentials for the cluster's account."),
}

#: exit code name -> what it means (every name of ExitCode; the table is checked against it)
EXIT_CODES = {
    "OK": "success",
    "USAGE": "a bad option or argument",
    "NOT_RUNNING": "no local environment of that name is up",
    "ALREADY_RUNNING": "the local environment is already up",
    "MISSING_BINARY": "the Kubernetes binaries could not be provisioned",
    "PORT_IN_USE": "a fixed port is taken",
    "START_FAILED": "a component of the local environment did not start, or died",
    "BAD_INPUT": "a file or name given is missing or malformed",
    "BACKEND_UNAVAILABLE": "the backend cannot be reached (Docker for kind, the EKS cluster or its API)",
    "UNSAFE_CLUSTER": "replay refused on a cluster not tagged fargate-labs/sandbox=true",
    "AWS": "an AWS call failed",
    "NO_CREDENTIALS": "no valid AWS credentials",
    "CLUSTER_NOT_ACTIVE": "the EKS cluster is not ACTIVE",
    "NOT_FARGATE_READY": "the cluster cannot run Fargate pods",
    "NO_LOAD_BALANCER_CONTROLLER": "the AWS Load Balancer Controller is missing or not running",
    "MISSING_PERMISSIONS": "IAM or Kubernetes RBAC does not allow what is needed",
    "LEAKED_RESOURCES": "something tagged with the run id remains",
    "KUBERNETES_UNAUTHORIZED": "the cluster refuses the IAM identity's token",
    "COMPONENT_DIED": "a component of the run's environment died during the run",
    "INTERRUPTED": "stopped by Ctrl-C",
}

#: every FARGATE_LABS_* variable the package and its scripts read or set -> what it does
ENVIRONMENT = {
    "FARGATE_LABS_ENV": "name of the local environment (default: default); `fargate-lab env` exports it",
    "FARGATE_LABS_DATA_PLANE": "the local backend's data plane: auto (default), microvm or kwok; "
                               "--data-plane overrides it",
    "FARGATE_LABS_STATE": "where local environments keep their state (default: ~/.local/state/fargate-labs)",
    "FARGATE_LABS_CACHE": "where built binaries and images are cached (default: ~/.cache/fargate-labs)",
    "FARGATE_LABS_K8S_VERSION": "Kubernetes release of the local backend's binaries (default: v1.34.4)",
    "FARGATE_LABS_KIND_VERSION": "kind release of the kind backend (default: v0.30.0)",
    "FARGATE_LABS_KIND_IMAGE": "node image of the kind backend (default: kindest/node:v1.34.0)",
    "FARGATE_LABS_MANIFESTS": "a directory with another copy of the labs' manifests",
    "FARGATE_LABS_DEBIAN_MIRROR": "Debian mirror the local images are built from (default: deb.debian.org)",
    "FARGATE_LABS_DEBIAN_SECURITY_MIRROR": "Debian security mirror of those images (default: deb.debian.org)",
    "FARGATE_LABS_CHROMIUM": "the Chromium binary the browser steps open pages in (default: chromium on PATH)",
    "FARGATE_LABS_RUN_ID": "set, not read: the run id on every process the harness starts (cleanup finds them by it)",
    "FARGATE_LABS_MICROVM": "set, not read: on each process of a local pod's microVM, which microVM it belongs to",
}


def epilog() -> str:
    """The exit codes and the environment variables, for the end of ``fargate-lab --help``."""
    codes = sorted((value, name) for name, value in vars(ExitCode).items() if name.isupper())
    lines = ["exit codes:"]
    lines += [f"  {value:>3}  {name:<28} {EXIT_CODES.get(name, '')}" for value, name in codes]
    lines += ["  (check: 1 when some checked step is not done yet; explain --strict: 1 when a pod cannot run on "
              "Fargate)", "", "environment variables:"]
    lines += [f"  {name:<36} {text}" for name, text in ENVIRONMENT.items()]
    lines += ["", "More: docs/troubleshooting.md (each error line and what to do), docs/environment-variables.md."]
    return "\n".join(lines)
