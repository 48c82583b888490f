"""The planner: which online managed node goes in which wave. Pure and deterministic."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetwave.core.model import SkippedTarget
from fleetwave.core.spec import RolloutSpec, SessionsSpec, Size
from fleetwave.core.spec import waves as spec_waves

NOT_CONNECTED_REASON = "not connected (GetConnectionStatus)"
# The label of the wave that nodes with an active session move to when their own wave starts.
DEFERRED_WAVE_MARK = "deferred: active Session Manager sessions"


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
        return NOT_CONNECTED_REASON
    return None


def resolve_wave_sizes(marks: Iterable[Size], target_count: int) -> tuple[list[int], list[str]]:
    """Cumulative marks -> sizes of the non-empty waves (``spec.waves``); PlanError when the marks do not grow."""
    try:
        return spec_waves.resolve_wave_sizes(list(marks), target_count)
    except spec_waves.WaveMarksError as error:
        raise PlanError(f"waves[{error.index}]: {error.message}") from None


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
        waves.append(
            WavePlan(
                index=index,
                instance_ids=ids,
                max_concurrency=wave_concurrency(spec, size),
                mark=_mark_label(start, len(ordered)),
            )
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


def wave_concurrency(spec: RolloutSpec, size: int) -> int:
    """The spec's max_concurrency for a wave of ``size`` targets (a percentage is of the wave)."""
    return max(1, min(size, spec.max_concurrency.resolve(size, rounding="up")))


# ---------------------------------------------------------------------------------------- at wave start
#
# The plan puts nodes that are in a Session Manager session last, but a later wave starts hours after the plan.
# Just before a wave is dispatched, its nodes are checked again:
#   - a node in an active session moves to the rollout's *deferred wave*: one extra wave, always the last, created
#     the first time a node is deferred and grown by later waves. Its nodes run last (after the last bake), and are
#     dispatched then even if still in a session: they waited as long as the rollout lasted.
#   - with sessions.mode terminate_older_than, sessions older than the limit are terminated and their nodes stay in
#     the wave; nodes with younger sessions are deferred as above.
#   - a node that GetConnectionStatus reports not connected is skipped and reported (a delivery timeout would only
#     tell the same, much later). A wave too large for one call per node refreshes PingStatus instead.
# Moving and skipping happen before the wave has dispatched anything, so every counter stays exact (invariant 2).


@dataclass(frozen=True)
class ActiveSession:
    """A Session Manager session that is not over (DescribeSessions, State=Active)."""

    session_id: str
    target: str
    started_at: datetime


@dataclass(frozen=True)
class WaveCheck:
    """What the check changes in a wave about to start: the targets kept, moved to the deferred wave, or skipped."""

    keep: tuple[str, ...]
    deferred: tuple[str, ...] = ()
    skipped: tuple[SkippedTarget, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.deferred or self.skipped)


def sessions_to_terminate(
    policy: SessionsSpec, sessions: Iterable[ActiveSession], now: datetime
) -> list[ActiveSession]:
    """Sessions the spec allows fleetwave to end before dispatch (terminate_older_than: older than the limit)."""
    if policy.mode != "terminate_older_than":
        return []
    cutoff = now - timedelta(seconds=policy.older_than)
    return [session for session in sessions if session.started_at <= cutoff]


def busy_nodes(policy: SessionsSpec, sessions: Iterable[ActiveSession], terminated: Collection[str] = ()) -> set[str]:
    """Nodes whose dispatch waits for their session: every session except those terminated (mode ignore: none)."""
    if policy.mode == "ignore":
        return set()
    return {session.target for session in sessions if session.session_id not in terminated}


def check_wave(
    targets: Iterable[str], *, busy: Collection[str], unreachable: Mapping[str, str], can_defer: bool
) -> WaveCheck:
    """Split a wave's targets, in their order: deferred (busy, when the wave is not the deferred wave itself), skipped
    (``unreachable``: node -> why), kept. A deferred node's connection is checked when the deferred wave starts."""
    keep: list[str] = []
    deferred: list[str] = []
    skipped: list[SkippedTarget] = []
    for instance_id in targets:
        if can_defer and instance_id in busy:
            deferred.append(instance_id)
        elif instance_id in unreachable:
            skipped.append(SkippedTarget(instance_id, unreachable[instance_id]))
        else:
            keep.append(instance_id)
    return WaveCheck(tuple(keep), tuple(deferred), tuple(skipped))
