"""The planner: which online managed node goes in which wave. Pure and deterministic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fleetwave.core.model import SkippedTarget
from fleetwave.core.spec import RolloutSpec, Size


class PlanError(ValueError):
    """The spec cannot be planned against this fleet (no targets, impossible wave sizes)."""


@dataclass(frozen=True)
class NodeInfo:
    """What SSM and EC2 say about one candidate target."""

    instance_id: str
    managed: bool = True
    ping_status: str = "Online"  # Online | ConnectionLost | Inactive
    platform: str = ""
    connected: bool = True
    has_active_session: bool = False


@dataclass(frozen=True)
class WavePlan:
    index: int
    instance_ids: tuple[str, ...]
    max_concurrency: int
    mark: str

    @property
    def size(self) -> int:
        return len(self.instance_ids)


@dataclass(frozen=True)
class Plan:
    waves: tuple[WavePlan, ...]
    skipped: tuple[SkippedTarget, ...]
    deferred: tuple[str, ...]
    budget_allowed: int
    dropped_marks: tuple[str, ...] = ()

    @property
    def target_count(self) -> int:
        return sum(wave.size for wave in self.waves)


def skip_reason(node: NodeInfo) -> str | None:
    """Why a candidate is not a target, or None when it is an online managed node."""
    if not node.managed:
        return "not a managed node (no SSM agent registered)"
    if node.ping_status != "Online":
        return f"SSM agent {node.ping_status}"
    if not node.connected:
        return "not connected (GetConnectionStatus)"
    return None


def resolve_wave_sizes(marks: Iterable[Size], target_count: int) -> tuple[list[int], list[str]]:
    """Cumulative marks -> sizes of the non-empty waves; the last wave takes what is left.

    Returns the sizes and the marks that resolved to no new target (reported, never silent).
    """
    sizes: list[int] = []
    dropped: list[str] = []
    covered = 0
    marks = list(marks)
    for index, mark in enumerate(marks):
        reach = min(target_count, mark.resolve(target_count, rounding="up"))
        if index == len(marks) - 1:
            reach = target_count
        if reach < covered:
            raise PlanError(
                f"waves[{index}]: {mark} resolves to {reach} targets, fewer than the {covered} already covered "
                "(wave sizes are cumulative)"
            )
        if reach == covered:
            dropped.append(f"waves[{index}] ({mark})")
            continue
        sizes.append(reach - covered)
        covered = reach
    return sizes, dropped


def plan_rollout(spec: RolloutSpec, nodes: Iterable[NodeInfo]) -> Plan:
    """Split the online managed nodes into waves. Every target lands in exactly one wave, in a stable order."""
    unique: dict[str, NodeInfo] = {}
    for node in nodes:
        unique.setdefault(node.instance_id, node)
    skipped: list[SkippedTarget] = []
    eligible: list[str] = []
    deferred: list[str] = []
    for instance_id in sorted(unique):
        node = unique[instance_id]
        reason = skip_reason(node)
        if reason is not None:
            skipped.append(SkippedTarget(instance_id, reason))
        elif node.has_active_session and spec.sessions.mode == "defer":
            deferred.append(instance_id)
        else:
            eligible.append(instance_id)
    # Nodes with an active Session Manager session go last, so nobody's session is cut by an early reboot.
    ordered = eligible + deferred
    if not ordered:
        found = f"{len(unique)} candidate(s), none online" if unique else "no node matches the targets"
        raise PlanError(f"targets: empty target set ({found})")
    sizes, dropped = resolve_wave_sizes(spec.waves, len(ordered))
    waves: list[WavePlan] = []
    start = 0
    for index, size in enumerate(sizes):
        ids = tuple(ordered[start : start + size])
        start += size
        concurrency = max(1, min(size, spec.max_concurrency.resolve(size, rounding="up")))
        waves.append(
            WavePlan(index=index, instance_ids=ids, max_concurrency=concurrency, mark=_mark_label(start, len(ordered)))
        )
    budget_allowed = spec.error_budget.allowed.resolve(len(ordered), rounding="down")
    return Plan(
        waves=tuple(waves),
        skipped=tuple(skipped),
        deferred=tuple(deferred),
        budget_allowed=budget_allowed,
        dropped_marks=tuple(dropped),
    )


def _mark_label(covered: int, total: int) -> str:
    return f"{covered}/{total} ({covered * 100 / total:.0f}%)"
