"""The AWS Load Balancer Controller, emulated: ALB Ingresses become ELBv2 load balancers (moto's, or real).

Level-triggered like the rest of the emulation: each pass lists the Ingresses, the TargetGroupBindings
and what ELBv2 holds for the cluster (by tags, never from memory), and acts on the difference, so a
restarted controller picks up where the last one stopped and never makes a second load balancer. Two
halves, as in the real controller: the ingress reconciler (model -> load balancer, listener, rules,
target groups, TargetGroupBindings, status, events) and the TargetGroupBinding reconciler (endpoints ->
registered targets). The ingress class, controller name and finalizer can be changed so a second
instance (a test's) can run beside the emulation's own without either touching the other's Ingresses,
much like the real controller's ``--ingress-class`` flag.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from kubernetes import client

from ..rules.naming import dns_digits, load_balancer_dns_name
from .aws_generation import Generation
from .changes import Changes
from .kube import Clients, emit_event, status_of
from .lbc_aws import Deployed, Inventory, StackDeployer, read_inventory
from .lbc_kube import (STACK_NAME_LABEL,
    STACK_NAMESPACE_LABEL,
    TGB_GROUP,
    TGB_PLURAL,
    TGB_VERSION,
    apply_tgbs,
    delete_tgbs,
    install,
    list_all,
    set_finalizer,
    set_hostname,
    tgb_object)
from .lbc_model import CONTROLLER, FINALIZER, INGRESS_CLASS, ModelError, build_stack, is_alb_ingress
from .lbc_subnets import resolve_vpc
from .lbc_targets import desired_targets, is_fargate, sync_targets

__all__ = ["LoadBalancerController"]

log = logging.getLogger(__name__)
INGRESS_COMPONENT = "ingress"
TGB_COMPONENT = "targetGroupBinding"
_REINSTALL_SECONDS = 30.0
#: the longest the controller goes without a pass, whether or not anything it watches changed
RESYNC_SECONDS = 5.0
#: the least time between two passes, however often what they read changes (a rollout changes endpoint
#: slices many times a second, and a pass reads every load balancer and target group)
MIN_GAP = 0.5


class LoadBalancerController:
    def __init__(self, clients: Clients, elbv2: Any, ec2: Any, region: str, cluster: str, run_id: str, *,
                 interval: float = 0.5, ingress_class: str = INGRESS_CLASS, controller: str = CONTROLLER,
                 finalizer: str = FINALIZER, vpc_id: str | None = None) -> None:
        self.c = clients
        self.elbv2 = elbv2
        self.ec2 = ec2
        self.region = region
        self.cluster = cluster
        self.interval = interval
        self.ingress_class = ingress_class
        self.controller = controller
        self.finalizer = finalizer
        self._vpc = vpc_id
        self.deployer = StackDeployer(elbv2, ec2, cluster, run_id, self._vpc_id)
        self._installed_at: float | None = None
        # Events only: what was last reported per object, so a quiet pass does not repeat itself.
        self._reported: dict[tuple[str, str], str] = {}
        #: the last pass failed somewhere: the next one runs after ``interval`` whether or not anything changed
        self._retry = False

    def _vpc_id(self) -> str:
        if not self._vpc:
            self._vpc = resolve_vpc(self.ec2, self.cluster)
        return self._vpc

    # --- one pass -----------------------------------------------------------------------------

    def reconcile(self) -> None:
        self._retry = False
        self._install()
        classes = {c["metadata"]["name"]: c for c in list_all(self.c, "ingressclasses")}
        managed: dict[tuple[str, str], dict[str, Any]] = {}
        cleanup: list[dict[str, Any]] = []
        for ing in list_all(self.c, "ingresses"):
            meta = ing["metadata"]
            ours = is_alb_ingress(ing, classes, self.ingress_class, self.controller)
            if ours and not meta.get("deletionTimestamp"):
                managed[(meta["namespace"], meta["name"])] = ing
            elif self.finalizer in (meta.get("finalizers") or []):
                cleanup.append(ing)  # deleted, or no longer of our class: its resources go
        if managed or cleanup:
            inv = read_inventory(self.elbv2, self.cluster)
            for ing in cleanup:
                self._cleanup(ing, inv)
            services = self._services() if managed else {}
            for (namespace, _), ing in managed.items():
                self._reconcile_ingress(ing, inv, services.get(namespace, {}))
        self._reconcile_bindings(managed)

    def _install(self) -> None:
        if self._installed_at is not None and time.monotonic() - self._installed_at < _REINSTALL_SECONDS:
            return
        install(self.c, self.ingress_class, self.controller)
        self._installed_at = time.monotonic()

    def _services(self) -> dict[str, dict[str, dict[str, Any]]]:
        by_ns: dict[str, dict[str, dict[str, Any]]] = {}
        for svc in list_all(self.c, "services"):
            by_ns.setdefault(svc["metadata"]["namespace"], {})[svc["metadata"]["name"]] = svc
        return by_ns

    def _report(self, obj: dict[str, Any], kind: str, reason: str, message: str, component: str,
                key: str | None = None, topic: str = "") -> None:
        """Record an event unless the same outcome was the last one reported on this object and topic."""
        if kind == "Warning":  # something failed: the controller tries again soon, as the real one requeues
            self._retry = True
        slot = (obj["metadata"].get("uid", ""), topic)
        outcome = key or f"{reason}:{message}"
        if self._reported.get(slot) == outcome:
            return
        self._reported[slot] = outcome
        try:
            emit_event(self.c, obj, kind, reason, message, component)
        except Exception as exc:
            log.warning("cannot record event %s on %s: %s", reason, obj["metadata"].get("name"), exc)

    # --- ingress reconciler -------------------------------------------------------------------

    def _reconcile_ingress(self, ing: dict[str, Any], inv: Inventory, services: dict[str, dict[str, Any]]) -> None:
        meta = ing["metadata"]
        try:
            # First, as the controller does: nothing may exist in AWS that a deletion would not clean up.
            set_finalizer(self.c, ing, True, self.finalizer)
        except Exception as exc:
            self._retry = True  # a concurrent edit (409, 422): the next pass
            if status_of(exc) not in (409, 422):
                self._report(ing, "Warning", "FailedAddFinalizer", f"Failed add finalizer due to {exc}",
                             INGRESS_COMPONENT)
            return
        try:
            spec = build_stack(ing, services, self.cluster)
        except ModelError as exc:
            self._report(ing, "Warning", "FailedBuildModel", f"Failed build model due to {exc}", INGRESS_COMPONENT)
            return
        try:
            deployed: Deployed = self.deployer.deploy(spec, inv)
        except ModelError as exc:  # subnet discovery belongs to the controller's model build
            self._report(ing, "Warning", "FailedBuildModel", f"Failed build model due to {exc}", INGRESS_COMPONENT)
            return
        except Exception as exc:
            self._report(ing, "Warning", "FailedDeployModel", f"Failed deploy model due to {exc}", INGRESS_COMPONENT)
            return
        try:
            bindings = [tgb_object(spec, tg, deployed.target_group_arns[tg.resource_id], deployed.vpc_id)
                        for tg in spec.target_groups]
            changed = apply_tgbs(self.c, spec, bindings) or deployed.changed
            # As the real controller does: the hostname is the DNSName ELBv2 gave the load balancer.
            hostname = deployed.dns_name or load_balancer_dns_name(deployed.lb_name, self.region, deployed.scheme,
                                                                   dns_digits(deployed.lb_arn))
            changed = set_hostname(self.c, ing, hostname) or changed
        except Exception as exc:
            self._report(ing, "Warning", "FailedDeployModel", f"Failed deploy model due to {exc}", INGRESS_COMPONENT)
            return
        # The real controller reports every successful reconcile; here, each change and each new generation.
        key = f"ok:{meta.get('generation')}:{deployed.lb_arn}"
        if changed:
            self._reported.pop((meta["uid"], ""), None)
        self._report(ing, "Normal", "SuccessfullyReconciled", "Successfully reconciled", INGRESS_COMPONENT, key)

    def _cleanup(self, ing: dict[str, Any], inv: Inventory) -> None:
        meta = ing["metadata"]
        try:
            delete_tgbs(self.c, meta["namespace"], meta["name"])
            if self.deployer.delete(f"{meta['namespace']}/{meta['name']}", inv):
                set_finalizer(self.c, ing, False, self.finalizer)
            else:
                self._retry = True
        except Exception as exc:
            self._retry = True
            if status_of(exc) not in (404, 409, 422):
                self._report(ing, "Warning", "FailedDeployModel", f"Failed deploy model due to {exc}",
                             INGRESS_COMPONENT)

    # --- TargetGroupBinding reconciler --------------------------------------------------------

    def _reconcile_bindings(self, managed: dict[tuple[str, str], dict[str, Any]]) -> None:
        mine: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        for tgb in list_all(self.c, "targetgroupbindings"):
            labels = tgb["metadata"].get("labels") or {}
            stack = (labels.get(STACK_NAMESPACE_LABEL, ""), labels.get(STACK_NAME_LABEL, ""))
            if stack in managed:
                mine.append((tgb, managed[stack]))
            elif stack == ("", "") and self.controller == CONTROLLER:
                mine.append((tgb, None))  # made by hand: the default controller serves it
        if not mine:
            return
        services = self._services()
        slices: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for s in list_all(self.c, "endpointslices"):
            owner = (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name", "")
            slices.setdefault((s["metadata"]["namespace"], owner), []).append(s)
        fargate = {n["metadata"]["name"] for n in list_all(self.c, "nodes") if is_fargate(n)}
        for tgb, ing in mine:
            try:
                self._reconcile_binding(tgb, ing, services, slices, fargate)
            except Exception as exc:
                self._report(tgb, "Warning", "FailedReconcile", f"Failed reconcile due to {exc}", TGB_COMPONENT)

    def _reconcile_binding(self, tgb: dict[str, Any], ing: dict[str, Any] | None,
                           services: dict[str, dict[str, dict[str, Any]]],
                           slices: dict[tuple[str, str], list[dict[str, Any]]], fargate: set[str]) -> None:
        meta, spec = tgb["metadata"], tgb.get("spec") or {}
        if meta.get("deletionTimestamp"):
            return
        svc_name = (spec.get("serviceRef") or {}).get("name", "")
        service = services.get(meta["namespace"], {}).get(svc_name)
        desired = desired_targets(tgb, service, slices.get((meta["namespace"], svc_name), []), fargate)
        if desired.error:
            self._report(tgb, "Warning", "BackendNotFound", desired.error, TGB_COMPONENT)
        result = sync_targets(self.elbv2, spec.get("targetGroupARN", ""), desired.targets)
        if result is None:
            return
        if ing is not None and spec.get("targetType") == "instance" and desired.fargate_endpoints:
            # The real controller says nothing here (its node selector just skips Fargate nodes): the labs
            # need to see why the target group stays empty.
            self._report(ing, "Warning", "NoInstanceTargets",
                         f"TargetGroupBinding {meta['name']}: target type instance registers no targets: "
                         f"{desired.fargate_endpoints} endpoint(s) of service {meta['namespace']}/{svc_name} run "
                         "on Fargate nodes, which are not EC2 instances; use the annotation "
                         "alb.ingress.kubernetes.io/target-type: ip", INGRESS_COMPONENT,
                         topic=f"fargate:{meta['uid']}")
        if desired.error:
            return
        if result != (0, 0):
            self._reported.pop((meta["uid"], ""), None)
        generation = meta.get("generation")
        if (tgb.get("status") or {}).get("observedGeneration") != generation:
            self.c.custom.patch_namespaced_custom_object_status(
                TGB_GROUP, TGB_VERSION, meta["namespace"], TGB_PLURAL, meta["name"],
                {"status": {"observedGeneration": generation}}, _preload_content=False,
                _content_type="application/merge-patch+json")
        self._report(tgb, "Normal", "SuccessfullyReconciled", "Successfully reconciled", TGB_COMPONENT,
                     key=f"ok:{generation}")

    # --- loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """A pass whenever what it reads changed: the Kubernetes objects (watched) or ELBv2 (its generation,
        asked every ``interval``), and at least every ``RESYNC_SECONDS`` whatever the two say. Nodes are not
        watched: their status changes all the time, and a pod's new node shows in its endpoint slice too."""
        kube = Changes(stop)
        for list_call in (self.c.networking.list_ingress_for_all_namespaces, self.c.networking.list_ingress_class,
                          self.c.core.list_service_for_all_namespaces,
                          client.DiscoveryV1Api(self.c.api).list_endpoint_slice_for_all_namespaces,
                          functools.partial(self.c.custom.list_cluster_custom_object, TGB_GROUP, TGB_VERSION,
                                            TGB_PLURAL)):
            kube.watch(list_call)
        elbv2 = Generation(getattr(self.elbv2.meta, "endpoint_url", None), "elbv2")
        kube_changed, last = True, 0.0
        while not stop.is_set():
            aws_changed = elbv2.changed()
            if kube_changed or aws_changed or self._retry or time.monotonic() - last >= RESYNC_SECONDS:
                last = time.monotonic()
                try:
                    self.reconcile()
                    elbv2.mark()
                except Exception as exc:  # the API server or AWS may be away for a moment: next pass
                    log.warning("load balancer controller pass failed: %s", exc)
                    self._retry = True
                stop.wait(max(0.0, MIN_GAP - (time.monotonic() - last)))
            kube_changed = kube.wait(self.interval)
