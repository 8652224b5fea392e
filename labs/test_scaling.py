"""Lab 3 — scaling the 2048 game and the Fargate node count (document 000 "Application 배포", document 002).

Documented (000): ``kubectl -n fargate-game-2048 deployment fargate-game-2048 --replicas=3`` — broken as written
(no ``scale`` verb, and the Deployment is ``deployment-2048``; docs/document-defects.md 000-1); the output
beside it comes from ``kubectl -n fargate-game-2048 scale deployment deployment-2048 --replicas=3`` →
``deployment.apps/deployment-2048 scaled``, then 3 pods on 3 Fargate nodes (from 5).
(002): ``kubectl scale deployment -n study-aews deployment-2048 --replicas 4`` → two more Fargate nodes (7 → 9).
Fact under test: the Fargate nodes of the deployment follow its replicas exactly, one pod per node, and no
Fargate node is left without its pod. Other labs may run beside this one, so only this deployment's nodes
are counted (plus the cluster-wide "no orphan Fargate node").
"""

from __future__ import annotations

import re
import shlex

import pytest

from fargatelab import Lab, expect
from labs._game import DEPLOYMENT, FARGATE_GAME, STUDY, Game, Games, Variant, group, param, require_lbc


pytestmark = [pytest.mark.lab("Lab 3 — scaling replicas and the node count", "000, 002"), pytest.mark.replay_only]

DOCUMENTED_FIRST = "kubectl -n fargate-game-2048 deployment fargate-game-2048 --replicas=3"
# kubectl >= 1.27 looks for a plugin named after the unknown word; older ones say "unknown command".
DOCUMENTED_FIRST_ERRORS = re.compile(r'flags cannot be placed before plugin name: -n|unknown command "deployment"')


def _scale(lab: Lab, game: Game, replicas: int, documented: bool = True) -> str:
    """Run the variant's documented scale command (the working form for 000) and return its output."""
    command = game.variant.scale_command.format(replicas=replicas)
    executed = game.documented(command)
    if documented:
        lab.step(command, executed)
    else:
        lab.step(f"(to reach the starting point) {executed}")
    return lab.kube.kubectl(*shlex.split(executed)[1:]).stdout.strip()


@group(FARGATE_GAME)
def test_documented_scale_command_is_defective(lab: Lab, games: Games) -> None:
    """000-1: the first scale command as printed fails and changes nothing; it is reported as a defect."""
    game = games(FARGATE_GAME, lab)
    game.wait_running(lab)
    replicas = game.replicas()
    executed = game.documented(DOCUMENTED_FIRST)
    lab.step(DOCUMENTED_FIRST, executed)
    result = lab.kube.kubectl(*shlex.split(executed)[1:], check=False)
    expect(f"`{DOCUMENTED_FIRST}` fails", result.ok, False)
    assert DOCUMENTED_FIRST_ERRORS.search(result.stderr), (
        f"error of `{DOCUMENTED_FIRST}`\n  expected: {DOCUMENTED_FIRST_ERRORS.pattern}\n  actual:   {result.stderr.strip()}")

    # Adding only the verb still names the namespace instead of the Deployment.
    with_verb = f"kubectl -n {game.namespace} scale deployment fargate-game-2048 --replicas=3"
    lab.step("(the same with the scale verb) kubectl -n fargate-game-2048 scale deployment fargate-game-2048 "
             "--replicas=3", with_verb)
    wrong_name = lab.kube.kubectl(*shlex.split(with_verb)[1:], check=False)
    # kubectl words it "Error from server (NotFound): …" or "error: no objects passed to scale …" by version.
    expect("the scale verb alone does not fix it (no Deployment fargate-game-2048)",
           (wrong_name.ok, 'deployments.apps "fargate-game-2048" not found' in wrong_name.stderr),
           (False, True))
    expect(f"replicas of {DEPLOYMENT} after the failed commands", game.replicas(), replicas)

    lab.defect(f"000 \"Application 배포\": `{DOCUMENTED_FIRST}` fails ({result.stderr.strip()}): it has no `scale` "
               f"verb and names the namespace instead of the Deployment {DEPLOYMENT}; the output printed beside it "
               "comes from `kubectl -n fargate-game-2048 scale deployment deployment-2048 --replicas=3` "
               "(docs/document-defects.md 000-1)")


TRANSITIONS = [
    param(FARGATE_GAME, 5, 3, id="5->3"),  # 000
    param(FARGATE_GAME, 3, 5, id="3->5"),  # back up
    param(STUDY, 2, 4, id="2->4"),  # 002: nodes 7 -> 9
    param(STUDY, 4, 2, id="4->2"),  # back down
]


@pytest.mark.parametrize("variant,before,after", TRANSITIONS)
def test_scale(lab: Lab, games: Games, variant: Variant, before: int, after: int) -> None:
    game = games(variant, lab)
    game.wait_running(lab)
    if game.replicas() != before:  # run alone, or after a failure: reach the documented starting point
        _scale(lab, game, before, documented=False)
        game.wait_running(lab, before)
    expect(f"Fargate nodes of {DEPLOYMENT} before scaling", len(game.fargate_nodes()), before)

    output = _scale(lab, game, after)
    expect("output of the scale command", output, f"deployment.apps/{DEPLOYMENT} scaled")
    expect(f"replicas of {DEPLOYMENT}", game.replicas(), after)
    lab.step(f"kubectl -n {variant.namespace} get pod -o wide")
    lab.step("kubectl get nodes -o wide")
    pods = game.wait_running(lab, after)  # each pod on its own Fargate node, no Fargate node without its pod
    nodes = game.fargate_nodes()
    expect(f"Fargate nodes of {DEPLOYMENT} after scaling {before}->{after}", len(nodes), after)
    listed = lab.kube.fargate_nodes()
    hosts = {p["metadata"]["name"]: lab.kube.fargate_node_of(p, listed) or {"metadata": {"name": "none"}, "status": {}}
             for p in pods}
    expect("one pod per Fargate node", sorted(h["metadata"]["name"] for h in hosts.values()), sorted(nodes))
    for pod in pods:
        node = hosts[pod["metadata"]["name"]]
        internal = [a["address"] for a in node["status"].get("addresses", []) if a["type"] == "InternalIP"]
        expect(f"node of {pod['metadata']['name']}: InternalIP = pod IP", internal, [pod["status"]["podIP"]])

    # The ALB's ip targets follow the pods (when the Load Balancer Controller is there).
    require_lbc(lab.kube, fail=False)
    targets = game.wait_targets_are_pods(lab)
    expect(f"ALB targets after scaling {before}->{after}", sorted(targets),
           sorted((p["status"]["podIP"], 80) for p in game.pods()))
