"""Carrying out the engine's decisions: load the ledger, call fleetwave.core.engine, act with conditional writes.

Every action is safe to repeat and safe to race: a conditional write decides who acts, the loser re-reads.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from fleetwave.adapters.aws import error_code
from fleetwave.adapters.ledger import WaveReshapeTooLargeError
from fleetwave.adapters.ssm import CommandRequest
from fleetwave.constants import (
    COMMENT_PREFIX,
    DISPATCH_CONSISTENCY_WINDOW_SECONDS,
    MAX_COMMENT_LENGTH,
    MAX_CONNECTION_CHECKS_PER_WAVE,
)
from fleetwave.core.engine import (
    Action,
    CancelCommands,
    DispatchChunk,
    Finish,
    Halt,
    Postpone,
    StartBake,
    StartWave,
    chunk_bounds,
    decide,
    decide_wave_start,
    intent_is_stale,
)
from fleetwave.core.model import Chunk, ChunkState, Rollout, RolloutState, Wave, WaveState
from fleetwave.core.planner import (
    NOT_CONNECTED_REASON,
    busy_nodes,
    check_wave,
    sessions_to_terminate,
    skip_reason,
    wave_concurrency,
)
from fleetwave.core.spec import RolloutSpec
from fleetwave.errors import ConflictError, RetryLaterError
from fleetwave.observability import metrics
from fleetwave.service.deps import Deps

logger = Logger(service="fleetwave", child=True)

# SendCommand errors that no retry can fix: the rollout fails instead of looping.
_FATAL_SEND_ERRORS = frozenset(
    {
        "InvalidDocument",
        "InvalidDocumentVersion",
        "InvalidParameters",
        "AccessDeniedException",
        "InvalidRole",
        "InvalidNotificationConfig",
        "InvalidOutputFolder",
        "UnsupportedPlatformType",
    }
)
_MAX_ROUNDS = 50


def chunk_comment(rollout_id: str, wave: int, chunk: int, user_comment: str | None = None) -> str:
    """``fleetwave:<rollout>:<wave>:<chunk>`` (what a retry searches ListCommands for), then the user's comment."""
    marker = f"{COMMENT_PREFIX}:{rollout_id}:{wave}:{chunk}"
    if user_comment:
        marker = f"{marker} {user_comment}"
    return marker[:MAX_COMMENT_LENGTH]


@lru_cache(maxsize=64)
def _spec_from_json(spec_json: str) -> RolloutSpec:
    return RolloutSpec.model_validate(json.loads(spec_json))


def load_spec(deps: Deps, rollout_id: str) -> RolloutSpec:
    return _spec_from_json(deps.ledger.rollouts.spec_json(rollout_id))


def settle(deps: Deps, rollout_id: str) -> Rollout:
    """Decide and act until the rollout has nothing more to do right now; returns its latest state."""
    rollout = deps.ledger.rollouts.get(rollout_id)
    for _ in range(_MAX_ROUNDS):
        wave = deps.ledger.plans.wave(rollout_id, rollout.current_wave)
        chunks = deps.ledger.dispatch.chunks(rollout_id, rollout.current_wave)
        actions = decide(rollout, wave, chunks, deps.now())
        if not actions:
            return rollout
        execute(deps, rollout, wave, chunks, actions)
        rollout = deps.ledger.rollouts.get(rollout_id)
    logger.warning("settle stopped after %d rounds", _MAX_ROUNDS, extra={"rollout_id": rollout_id})
    return rollout


def execute(deps: Deps, rollout: Rollout, wave: Wave | None, chunks: list[Chunk], actions: list[Action]) -> None:
    for action in actions:
        try:
            _execute_one(deps, rollout, wave, chunks, action)
        except ConflictError:
            # Somebody else acted first (another batch, a retry, the reconciler): re-read and decide again.
            logger.info(
                "lost a race on %s; re-reading", type(action).__name__, extra={"rollout_id": rollout.rollout_id}
            )
            return


def _execute_one(deps: Deps, rollout: Rollout, wave: Wave | None, chunks: list[Chunk], action: Action) -> None:
    now = deps.now()
    match action:
        case DispatchChunk():
            assert wave is not None
            dispatch_chunk(deps, rollout, wave, action)
        case CancelCommands(command_ids=command_ids):
            for command_id in command_ids:
                deps.ssm.cancel_command(command_id)
            deps.ledger.dispatch.mark_cancel_requested(
                rollout.rollout_id, [c for c in chunks if c.command_id in command_ids]
            )
            logger.info("cancel requested", extra={"rollout_id": rollout.rollout_id, "commands": list(command_ids)})
        case Halt(reason=reason, state=state):
            deps.ledger.rollouts.halt(rollout, state, reason, now)
            metrics.add_metric(name="RolloutsHalted", unit="Count", value=1)
            logger.warning("rollout %s: %s", state.value, reason, extra={"rollout_id": rollout.rollout_id})
        case StartBake(completed_wave=completed, next_wave=next_wave, until=until):
            deps.ledger.rollouts.begin_bake(rollout.rollout_id, completed, until, now)
            logger.info(
                "wave %d complete; baking until %s",
                completed,
                until.isoformat(),
                extra={"rollout_id": rollout.rollout_id},
            )
            if until <= now:
                advance(deps, rollout.rollout_id, next_wave)
            else:
                deps.timers.fire_at(
                    deps.timers.name_for(rollout.rollout_id, next_wave),
                    until,
                    {"rollout_id": rollout.rollout_id, "wave": next_wave},
                )
        case Postpone(wave=next_wave, until=until, reason=reason):
            deps.ledger.rollouts.postpone(rollout.rollout_id, next_wave, until, reason)
            deps.timers.fire_at(
                deps.timers.name_for(rollout.rollout_id, next_wave, f"-{int(until.timestamp())}"),
                until,
                {"rollout_id": rollout.rollout_id, "wave": next_wave},
            )
            logger.info("wave %d postponed: %s", next_wave, reason, extra={"rollout_id": rollout.rollout_id})
        case StartWave(wave=index):
            nobody_left = check_wave_start(deps, rollout, index)
            if nobody_left is not None:
                _execute_one(deps, rollout, wave, chunks, nobody_left)
                return
            deps.ledger.rollouts.start_wave(rollout.rollout_id, index, now)
            metrics.add_metric(name="WavesStarted", unit="Count", value=1)
            logger.info("wave %d started", index, extra={"rollout_id": rollout.rollout_id})
        case Finish(state=state, reason=reason):
            deps.ledger.rollouts.finish(rollout.rollout_id, rollout.current_wave, state, now, reason)
            metrics.add_metric(name=f"Rollouts{state.value.title().replace('_', '')}", unit="Count", value=1)
            logger.info("rollout finished: %s", state.value, extra={"rollout_id": rollout.rollout_id})


def advance(deps: Deps, rollout_id: str, wave_index: int) -> Rollout:
    """Start wave ``wave_index`` if the gates allow it (invariant 3), then settle. Safe to call twice."""
    rollout = deps.ledger.rollouts.get(rollout_id)
    spec = load_spec(deps, rollout_id)
    alarm_states = deps.gates.alarm_states(list(rollout.alarm_gates)) if rollout.alarm_gates else {}
    closed = deps.gates.closed_calendars(spec.calendars) if spec.calendars else []
    actions = decide_wave_start(rollout, wave_index, deps.now(), alarm_states=alarm_states, closed_calendars=closed)
    execute(deps, rollout, None, [], actions)
    return settle(deps, rollout_id)


def resume(deps: Deps, rollout_id: str) -> Rollout:
    """Carry on a rollout whose starter may have stopped anywhere (a crash, a timeout): start wave 0 if it is still
    PENDING; otherwise find the commands of chunks left in INTENT by their Comment (ListCommands) before anything is
    sent again (invariant 1), then settle. Raises RetryLaterError while an intent is too recent to tell "not sent"
    from "not listed yet"."""
    rollout = deps.ledger.rollouts.get(rollout_id)
    if rollout.state is RolloutState.PENDING:
        return advance(deps, rollout_id, 0)
    for chunk in deps.ledger.dispatch.chunks(rollout_id, rollout.current_wave, with_ids=True):
        if chunk.state is ChunkState.INTENT:
            recover_intent(deps, rollout, chunk)
    return settle(deps, rollout_id)


def check_wave_start(deps: Deps, rollout: Rollout, wave_index: int) -> Halt | None:
    """Just before a wave dispatches, look at its nodes again (the plan may be hours old; see core.planner):
    end sessions the spec allows to end, move nodes in a session to the deferred wave, skip nodes that are not
    connected. Safe to repeat and to race: the ledger applies the change only to the wave as it was read.
    Returns a Halt (FAILED) when no target of the whole rollout would be left: nothing could run at all.

    API calls: ceil(active sessions / 200) DescribeSessions, one TerminateSession per session ended, and one
    GetConnectionStatus per node that stays in the wave (see unreachable_nodes for large waves). GetConnectionStatus
    is asked only here, per wave and only for nodes DescribeInstanceInformation found Online at plan time (PingStatus
    filtered the rest then): asking at plan time would cost the same calls for the whole fleet at once, and be hours
    stale by the last wave.
    """
    wave = deps.ledger.plans.wave(rollout.rollout_id, wave_index)
    if wave is None or wave.state is not WaveState.PENDING or wave.size == 0:
        return None
    spec = load_spec(deps, rollout.rollout_id)
    now = deps.now()
    targets = deps.ledger.plans.targets(rollout.rollout_id, wave_index, 0, wave.size)
    deferred_index = deps.ledger.plans.deferred_wave_index(rollout.rollout_id)
    can_defer = wave_index != deferred_index
    sessions = deps.ssm.active_sessions(targets) if spec.sessions.mode != "ignore" else []
    terminated: list[str] = []
    for session in sessions_to_terminate(spec.sessions, sessions, now):
        deps.ssm.terminate_session(session.session_id)
        terminated.append(session.session_id)
    if terminated:
        metrics.add_metric(name="SessionsTerminated", unit="Count", value=len(terminated))
        logger.info("terminated %d session(s) older than %d s", len(terminated), spec.sessions.older_than)
    busy = busy_nodes(spec.sessions, sessions, terminated)
    staying = [t for t in targets if not (can_defer and t in busy)]
    check = check_wave(targets, busy=busy, unreachable=unreachable_nodes(deps, staying), can_defer=can_defer)
    if not check.changed:
        return None
    if len(check.skipped) >= rollout.target_count:
        reasons = sorted({s.reason for s in check.skipped})
        return Halt(f"no target is reachable: {len(check.skipped)} {', '.join(reasons)}", RolloutState.FAILED)
    deferred_wave = deps.ledger.plans.wave(rollout.rollout_id, deferred_index) if deferred_index is not None else None
    deferred_size = (deferred_wave.size if deferred_wave else 0) + len(check.deferred)
    try:
        moved_to = deps.ledger.plans.reshape_wave(
            rollout,
            wave,
            targets,
            check,
            deferred_wave=deferred_wave,
            deferred_concurrency=wave_concurrency(spec, deferred_size),
        )
    except WaveReshapeTooLargeError as error:
        logger.warning("wave %d starts unchecked: %s", wave_index, error, extra={"rollout_id": rollout.rollout_id})
        return None
    if check.deferred:
        metrics.add_metric(name="NodesDeferred", unit="Count", value=len(check.deferred))
    if check.skipped:
        metrics.add_metric(name="NodesNotConnected", unit="Count", value=len(check.skipped))
    logger.info(
        "wave %d: %d node(s) in a session moved to wave %s, %d not connected skipped",
        wave_index,
        len(check.deferred),
        moved_to,
        len(check.skipped),
        extra={"rollout_id": rollout.rollout_id, "deferred": list(check.deferred[:50])},
    )
    return None


def unreachable_nodes(deps: Deps, instance_ids: list[str]) -> dict[str, str]:
    """Nodes a command would not reach now, and why: GetConnectionStatus for each node of a wave up to
    MAX_CONNECTION_CHECKS_PER_WAVE; beyond that, one call per node would not fit the wave start's time budget (nor
    SSM's request rate), and a fresh PingStatus (DescribeInstanceInformation, 50 nodes per call) is the check."""
    if len(instance_ids) <= MAX_CONNECTION_CHECKS_PER_WAVE:
        return {node: NOT_CONNECTED_REASON for node in instance_ids if not deps.ssm.is_connected(node)}
    found = deps.ssm.describe_nodes(instance_ids)
    reasons = {node: skip_reason(info) for node, info in found.items()}
    return {node: reason for node, reason in reasons.items() if reason is not None}


def dispatch_chunk(deps: Deps, rollout: Rollout, wave: Wave, action: DispatchChunk) -> None:
    """Invariant 1: record the intent, then send; a retry finds the command by its Comment before re-sending."""
    start, end = chunk_bounds(action.chunk, wave.size)
    instance_ids = deps.ledger.plans.targets(rollout.rollout_id, wave.index, start, end)
    spec = load_spec(deps, rollout.rollout_id)
    chunk = Chunk(
        wave=wave.index,
        index=action.chunk,
        instance_ids=tuple(instance_ids),
        state=ChunkState.INTENT,
        max_concurrency=action.max_concurrency,
        requested_at=deps.now(),
    )
    comment = chunk_comment(rollout.rollout_id, wave.index, action.chunk, spec.comment)
    deps.ledger.dispatch.claim_chunk(rollout, wave.index, chunk, comment, deps.now())
    _send(deps, rollout, spec, chunk, comment, action.max_errors)


def _send(deps: Deps, rollout: Rollout, spec: RolloutSpec, chunk: Chunk, comment: str, max_errors: int) -> None:
    settings = deps.settings
    request = CommandRequest(
        document_name=rollout.document_name,
        document_version=rollout.document_version,
        document_hash=rollout.document_hash,
        instance_ids=chunk.instance_ids,
        parameters=spec.document.parameters,
        comment=comment,
        max_concurrency=chunk.max_concurrency,
        max_errors=max_errors,
        timeout_seconds=spec.timeout_seconds,
        notification_topic_arn=settings.STATUS_TOPIC_ARN,
        notification_role_arn=settings.NOTIFICATION_ROLE_ARN,
        output_s3_bucket=spec.output.s3_bucket,
        output_s3_prefix=spec.output.s3_prefix,
        cloudwatch_log_group=spec.output.cloudwatch_log_group,
        cloudwatch_enabled=spec.output.cloudwatch_enabled,
    )
    try:
        command_id = deps.ssm.send_command(request)
    except ClientError as error:
        code = error_code(error)
        if code in _FATAL_SEND_ERRORS:
            reason = f"SendCommand rejected wave {chunk.wave} chunk {chunk.index}: {code}"
            deps.ledger.rollouts.halt(
                deps.ledger.rollouts.get(rollout.rollout_id), RolloutState.FAILED, reason, deps.now()
            )
            logger.error(reason, extra={"rollout_id": rollout.rollout_id})
            return
        # Throttling or a service error that outlived botocore's retries: the intent stays recorded, and the
        # next attempt (a redelivered batch or the reconciler) finds or re-sends the command.
        raise RetryLaterError(f"SendCommand failed for wave {chunk.wave} chunk {chunk.index}: {code}") from error
    metrics.add_metric(name="CommandsSent", unit="Count", value=1)
    metrics.add_metric(name="InvocationsDispatched", unit="Count", value=len(chunk.instance_ids))
    deps.ledger.dispatch.record_sent(rollout, chunk, command_id, deps.now())
    logger.info(
        "sent wave %d chunk %d: %d targets",
        chunk.wave,
        chunk.index,
        len(chunk.instance_ids),
        extra={"rollout_id": rollout.rollout_id, "command_id": command_id},
    )


def recover_intent(deps: Deps, rollout: Rollout, chunk: Chunk) -> None:
    """A chunk stuck in INTENT (the sender crashed): find its command, or send it if it never went out."""
    assert chunk.requested_at is not None
    comment = chunk.comment
    command_id = deps.ssm.find_command(rollout.document_name, comment, chunk.requested_at - timedelta(minutes=5))
    if command_id:
        deps.ledger.dispatch.record_sent(rollout, chunk, command_id, deps.now())
        logger.info("recovered a sent chunk", extra={"rollout_id": rollout.rollout_id, "command_id": command_id})
        return
    if not intent_is_stale(chunk, deps.now(), DISPATCH_CONSISTENCY_WINDOW_SECONDS):
        raise RetryLaterError("dispatch intent is too recent to tell 'not sent' from 'not listed yet'")
    if rollout.state is not RolloutState.RUNNING:
        return  # halted since: the intent is never sent
    spec = load_spec(deps, rollout.rollout_id)
    _send(deps, rollout, spec, chunk, comment, max(0, rollout.remaining_budget))
