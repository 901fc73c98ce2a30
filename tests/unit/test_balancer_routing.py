"""Which strategy routes which kind, and how the choice is shown to a person."""

from __future__ import annotations

import pytest

from coordinator import flags
from coordinator.core.balancer import STRATEGY_NAMES, BalancerConfig
from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import Registration, TaskSpec
from coordinator.core.routing import Router, check_strategy, parse_overrides
from coordinator.service.convert import task_to_proto
from swarmmesh._convert import task_from_proto
from swarmmesh._render import task_detail


def test_every_named_strategy_can_be_built() -> None:
    for name in STRATEGY_NAMES:
        assert Router(BalancerConfig(strategy=name)).default.name == name


def test_unknown_strategy_names_are_refused_with_the_choices() -> None:
    assert "hybrid" in check_strategy("fastest")
    with pytest.raises(ValueError, match="round-robin"):
        Router(BalancerConfig(strategy="fastest"))


def test_overrides_route_some_kinds_with_another_strategy() -> None:
    r = Router(BalancerConfig(overrides=parse_overrides("ocr=round-robin, embed=cache-affinity")))
    assert r.for_kind("ocr").name == "round-robin"
    assert r.for_kind("embed").name == "cache-affinity"
    assert r.for_kind("other").name == "hybrid"
    for bad in ("ocr", "=hybrid", "ocr=fastest"):
        with pytest.raises(ValueError, match="strategy_overrides"):
            parse_overrides(bad)


def test_coordinator_flags_and_env_reach_the_core() -> None:
    cfg = flags.from_args(
        ["--strategy", "least-loaded", "--strategy-overrides", "ocr=expertise", "--max-pending-per-tenant", "50"],
        env={"SWARMMESH_TENANT_WEIGHTS": "gold=3", "SWARMMESH_AGING_BOUND_S": "30", "SWARMMESH_EJECT_BASE_S": "0",
             "SWARMMESH_WARM_IN_FLIGHT": "0"})
    core = cfg.core
    assert core.balancer.strategy == "least-loaded" and core.balancer.overrides == (("ocr", "expertise"),)
    assert core.balancer.warm_in_flight == 0
    assert core.fairness.tenant_weights == (("gold", 3.0),) and core.fairness.max_pending_per_tenant == 50
    assert core.fairness.aging_bound_s == 30.0 and not core.health.outlier_ejection
    for bad in ("--strategy=fastest", "--strategy-overrides=x", "--tenant-weights=a=0", "--aging-bound-s=-1",
                "--warm-in-flight=-1"):
        with pytest.raises(SystemExit):
            flags.from_args([bad], env={})


def test_labels_no_agent_satisfies_leave_the_task_waiting_with_a_reason() -> None:
    core = MeshCore()
    core.register(Registration("a", (("math", 1),), frozenset(), 4, "1", 4), 0)
    [s] = core.submit([TaskSpec(kind="k", required_labels=(("vision", 1),))], 0)
    assert core.dispatch(0) == {}
    rec = core.get(s.task_id)
    assert "vision" in core.pending_reason(rec) and core.routing_reason(rec) == ""


def test_each_assignment_records_strategy_and_reason_shown_in_task_details() -> None:
    core = MeshCore(CoreConfig(balancer=BalancerConfig(overrides=(("rr", "round-robin"),))))
    core.register(Registration("a", (), frozenset(), 4, "1", 4), 0)
    core.register(Registration("b", (), frozenset(), 4, "1", 4), 0)
    [h, r] = core.submit([TaskSpec(kind="k"), TaskSpec(kind="rr")], 0)
    core.dispatch(0)
    hybrid, rr = core.get(h.task_id), core.get(r.task_id)
    assert hybrid.route_strategy == "hybrid" and rr.route_strategy == "round-robin"
    why = core.routing_reason(hybrid)
    assert "fastest expected completion" in why and "2 agent(s) had a free slot" in why
    msg = task_to_proto(hybrid, routing_reason=why)
    assert msg.strategy == "hybrid" and msg.routing_reason == why
    assert task_to_proto(hybrid).strategy == ""  # list and watch views stay lean
    text = task_detail(task_from_proto(msg))
    assert "routed by" in text and "hybrid: fastest expected completion" in text
