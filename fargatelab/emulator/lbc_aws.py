"""What the controller holds in ELBv2, found by tags, and how one Ingress's stack is made to match its model.

Nothing is remembered between passes: every pass reads the load balancers and target groups tagged
``elbv2.k8s.aws/cluster=<cluster>`` and groups them by ``ingress.k8s.aws/stack``, so a restarted
controller adopts what an earlier life created instead of making a second load balancer. Resources are
matched by ``ingress.k8s.aws/resource`` (``LoadBalancer``, ``80``, ``80:<priority>``, or the target
group's ``<ns>/<ingress>-<service>:<port>``) as the controller's synthesizers do, and an immutable change
(name, scheme) replaces the resource: old one deleted first, then the new one created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from botocore.exceptions import ClientError

from ..eks.facts import RUN_ID_TAG
from ..eks.elbv2 import paged, with_tags
from .lbc_model import Action, Condition, RuleSpec, StackSpec, TargetGroupSpec
from .lbc_subnets import discover_subnets

__all__ = ["TAG_CLUSTER", "TAG_STACK", "TAG_RESOURCE", "LB_RESOURCE", "Inventory", "Deployed", "StackDeployer",
           "read_inventory"]

TAG_CLUSTER = "elbv2.k8s.aws/cluster"
TAG_STACK = "ingress.k8s.aws/stack"
TAG_RESOURCE = "ingress.k8s.aws/resource"
LB_RESOURCE = "LoadBalancer"
LISTENER_PORT = 80
# The controller's target group health check defaults for HTTP/1 ALB target groups.
_HEALTH_CHECK = {"HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port", "HealthCheckPath": "/",
                 "HealthCheckIntervalSeconds": 15, "HealthCheckTimeoutSeconds": 5, "HealthyThresholdCount": 2,
                 "UnhealthyThresholdCount": 2, "Matcher": {"HttpCode": "200"}}


@dataclass
class Inventory:
    """The cluster's load balancers and target groups by stack id, each description with a ``Tags`` dict."""

    load_balancers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    target_groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def stacks(self) -> set[str]:
        return set(self.load_balancers) | set(self.target_groups)


@dataclass
class Deployed:
    lb_arn: str
    lb_name: str
    scheme: str
    vpc_id: str
    target_group_arns: dict[str, str]  # resource id -> ARN
    changed: bool
    #: the load balancer's DNSName as ELBv2 reports it: the Ingress's hostname, one name for both
    dns_name: str = ""


def read_inventory(elbv2: Any, cluster: str) -> Inventory:
    inv = Inventory()
    for item in with_tags(elbv2, paged(elbv2, "describe_load_balancers", "LoadBalancers"), "LoadBalancerArn"):
        if item["Tags"].get(TAG_CLUSTER) == cluster and TAG_STACK in item["Tags"]:
            inv.load_balancers.setdefault(item["Tags"][TAG_STACK], []).append(item)
    for item in with_tags(elbv2, paged(elbv2, "describe_target_groups", "TargetGroups"), "TargetGroupArn"):
        if item["Tags"].get(TAG_CLUSTER) == cluster and TAG_STACK in item["Tags"]:
            inv.target_groups.setdefault(item["Tags"][TAG_STACK], []).append(item)
    return inv


def _aws_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _aws_action(action: Action, tg_arns: dict[str, str]) -> dict[str, Any]:
    if action.type == "forward":
        return {"Type": "forward", "TargetGroupArn": tg_arns[action.target_group]}
    config = {"StatusCode": action.status_code, "ContentType": action.content_type}
    if action.message_body:
        config["MessageBody"] = action.message_body
    return {"Type": "fixed-response", "FixedResponseConfig": config}


def _action_key(action: dict[str, Any]) -> tuple[str, ...]:
    if action["Type"] == "forward":
        arn = action.get("TargetGroupArn") or \
            ((action.get("ForwardConfig") or {}).get("TargetGroups") or [{}])[0].get("TargetGroupArn", "")
        return ("forward", arn)
    config = action.get("FixedResponseConfig") or {}
    return (action["Type"], config.get("StatusCode", ""), config.get("ContentType", ""), config.get("MessageBody", ""))


def _conditions_key(conditions: Iterable[dict[str, Any]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    keys = []
    for c in conditions:
        config = c.get("PathPatternConfig") or c.get("HostHeaderConfig") or {}
        keys.append((c["Field"], tuple(config.get("Values") or c.get("Values") or ())))
    return tuple(sorted(keys))


def _aws_conditions(conditions: Iterable[Condition]) -> list[dict[str, Any]]:
    config_key = {"path-pattern": "PathPatternConfig", "host-header": "HostHeaderConfig"}
    return [{"Field": c.field, config_key[c.field]: {"Values": list(c.values)}} for c in conditions]


class StackDeployer:
    """Creates, updates and deletes the ELBv2 resources of one Ingress stack."""

    def __init__(self, elbv2: Any, ec2: Any, cluster: str, run_id: str, vpc_id: Callable[[], str]) -> None:
        self.elbv2 = elbv2
        self.ec2 = ec2
        self.cluster = cluster
        self.run_id = run_id
        self.vpc_id = vpc_id
        self.changed = False

    def _tags(self, spec: StackSpec, resource_id: str) -> dict[str, str]:
        # The environment's run id marks what the emulation made, unless the Ingress names its own run
        # (the labs' `alb.ingress.kubernetes.io/tags`): then the run that asked for it finds it.
        return {RUN_ID_TAG: self.run_id, **spec.user_tags, TAG_CLUSTER: self.cluster, TAG_STACK: spec.stack_id,
                TAG_RESOURCE: resource_id}

    # --- deploy -------------------------------------------------------------------------------

    def deploy(self, spec: StackSpec, inv: Inventory) -> Deployed:
        self.changed = False
        existing_tgs = inv.target_groups.get(spec.stack_id, [])
        tg_arns = {tg.resource_id: self._target_group(spec, tg, existing_tgs) for tg in spec.target_groups}
        lb = self._load_balancer(spec, inv.load_balancers.get(spec.stack_id, []))
        listener_arn = self._listener(spec, lb["LoadBalancerArn"], tg_arns)
        self._rules(spec, listener_arn, tg_arns)
        wanted = set(tg_arns.values())
        for tg in existing_tgs:
            if tg["TargetGroupArn"] not in wanted:
                self._delete_target_group(tg["TargetGroupArn"])
        return Deployed(lb["LoadBalancerArn"], lb["LoadBalancerName"], lb["Scheme"], lb.get("VpcId", ""), tg_arns,
                        self.changed, lb.get("DNSName", ""))

    def _target_group(self, spec: StackSpec, tg: TargetGroupSpec, existing: list[dict[str, Any]]) -> str:
        for item in existing:
            if item["Tags"].get(TAG_RESOURCE) == tg.resource_id and item["TargetGroupName"] == tg.name:
                return str(item["TargetGroupArn"])
        # A different name means an immutable field changed: the stale one is deleted once unreferenced.
        self.changed = True
        created = self.elbv2.create_target_group(
            Name=tg.name, Protocol=tg.protocol, ProtocolVersion=tg.protocol_version, Port=tg.port,
            VpcId=self.vpc_id(), TargetType=tg.target_type, IpAddressType="ipv4", **_HEALTH_CHECK,
            Tags=_aws_tags(self._tags(spec, tg.resource_id)))["TargetGroups"][0]
        return str(created["TargetGroupArn"])

    def _load_balancer(self, spec: StackSpec, existing: list[dict[str, Any]]) -> dict[str, Any]:
        keep: dict[str, Any] | None = None
        for lb in existing:
            if keep is None and lb["Tags"].get(TAG_RESOURCE) == LB_RESOURCE and \
                    lb["LoadBalancerName"] == spec.lb_name and lb["Scheme"] == spec.scheme:
                keep = lb
            else:  # the scheme changed (it is immutable), or a duplicate: replace
                self.changed = True
                self.elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        if keep is not None:
            tags = self._tags(spec, LB_RESOURCE)
            if any(keep["Tags"].get(k) != v for k, v in tags.items()):
                self.elbv2.add_tags(ResourceArns=[keep["LoadBalancerArn"]], Tags=_aws_tags(tags))
            return keep
        # Subnets are discovered only when a load balancer is created, as the controller does.
        subnets = discover_subnets(self.ec2, self.vpc_id(), spec.scheme, self.cluster)
        self.changed = True
        created: dict[str, Any] = self.elbv2.create_load_balancer(
            Name=spec.lb_name, Subnets=subnets, Scheme=spec.scheme, Type="application", IpAddressType="ipv4",
            Tags=_aws_tags(self._tags(spec, LB_RESOURCE)))["LoadBalancers"][0]
        return created

    def _listener(self, spec: StackSpec, lb_arn: str, tg_arns: dict[str, str]) -> str:
        default = [_aws_action(spec.default_action, tg_arns)]
        found = None
        for listener in paged(self.elbv2, "describe_listeners", "Listeners", LoadBalancerArn=lb_arn):
            if listener["Port"] == LISTENER_PORT and found is None:
                found = listener
            else:  # only the HTTP:80 listener is modelled
                self.changed = True
                self.elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
        if found is None:
            self.changed = True
            created = self.elbv2.create_listener(
                LoadBalancerArn=lb_arn, Protocol="HTTP", Port=LISTENER_PORT, DefaultActions=default,
                Tags=_aws_tags(self._tags(spec, str(LISTENER_PORT))))["Listeners"][0]
            return str(created["ListenerArn"])
        if [_action_key(a) for a in found["DefaultActions"]] != [_action_key(a) for a in default]:
            self.changed = True
            self.elbv2.modify_listener(ListenerArn=found["ListenerArn"], DefaultActions=default)
        return str(found["ListenerArn"])

    def _rules(self, spec: StackSpec, listener_arn: str, tg_arns: dict[str, str]) -> None:
        current = {str(r["Priority"]): r for r in paged(self.elbv2, "describe_rules", "Rules",
                                                         ListenerArn=listener_arn) if not r.get("IsDefault")}
        wanted: dict[str, RuleSpec] = {str(r.priority): r for r in spec.rules}
        for priority, rule in current.items():
            if priority not in wanted:
                self.changed = True
                self.elbv2.delete_rule(RuleArn=rule["RuleArn"])
        for priority, desired in wanted.items():
            conditions = _aws_conditions(desired.conditions)
            actions = [_aws_action(desired.action, tg_arns)]
            have = current.get(priority)
            if have is None:
                self.changed = True
                self.elbv2.create_rule(ListenerArn=listener_arn, Priority=desired.priority, Conditions=conditions,
                                       Actions=actions,
                                       Tags=_aws_tags(self._tags(spec, f"{LISTENER_PORT}:{desired.priority}")))
            elif _conditions_key(have["Conditions"]) != _conditions_key(conditions) or \
                    [_action_key(a) for a in have["Actions"]] != [_action_key(a) for a in actions]:
                self.changed = True
                self.elbv2.modify_rule(RuleArn=have["RuleArn"], Conditions=conditions, Actions=actions)

    # --- delete -------------------------------------------------------------------------------

    def _delete_target_group(self, arn: str) -> bool:
        """False while a listener or rule still uses it (ResourceInUse): retried next pass."""
        try:
            self.elbv2.delete_target_group(TargetGroupArn=arn)
        except ClientError as err:
            code = err.response["Error"]["Code"]
            if code in ("TargetGroupNotFound", "TargetGroupNotFoundException"):
                return True
            if code == "ResourceInUse":
                return False
            raise
        self.changed = True
        return True

    def delete(self, stack_id: str, inv: Inventory) -> bool:
        """Delete the stack's load balancers (their listeners and rules go with them), then its target groups.

        True once nothing of the stack is left.
        """
        for lb in inv.load_balancers.get(stack_id, []):
            self.elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        done = True
        for tg in inv.target_groups.get(stack_id, []):
            done = self._delete_target_group(tg["TargetGroupArn"]) and done
        return done
