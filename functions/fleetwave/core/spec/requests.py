"""The start request a spec becomes, and whether it fits the path that carries it to start_rollout.

``fleetwave start`` sends it in a synchronous Lambda invoke (6 MB); a scheduled spec travels in its EventBridge
Scheduler schedule's input (256 KB). A spec too large for its path is refused when it is validated, not when the
deploy or the start fails.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal

from fleetwave.constants import MAX_SCHEDULE_INPUT_BYTES, MAX_SYNC_INVOKE_BYTES
from fleetwave.core.spec.problems import Loc

if TYPE_CHECKING:
    from fleetwave.core.spec.models import RolloutSpec

Trigger = Literal["cli", "schedule", "remediation", "twin"]


def start_request(spec: RolloutSpec, trigger: Trigger) -> dict[str, Any]:
    """The start_rollout event for ``spec``: the validated spec as JSON (defaults kept, nulls left out)."""
    return {"trigger": trigger, "spec": spec.model_dump(mode="json", exclude_none=True)}


def spec_digest(spec: RolloutSpec) -> str:
    """SHA-256 of the spec's canonical JSON: what a scheduled start must match to be started (see start_scheduled)."""
    canonical = json.dumps(spec.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode_request(payload: Any) -> bytes:
    """How a request is sent: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KiB"


def start_request_problem(spec: RolloutSpec) -> tuple[Loc, str] | None:
    """(field, message) when the start request of ``spec`` is larger than its start path accepts, else None.

    The field named is the largest part of the spec (usually ``targets``): the one to shrink.
    """
    scheduled = spec.schedule is not None
    request = start_request(spec, "schedule" if scheduled else "cli")
    size = len(encode_request(request))
    limit = MAX_SCHEDULE_INPUT_BYTES if scheduled else MAX_SYNC_INVOKE_BYTES
    if size <= limit:
        return None
    parts = request["spec"]
    largest = max(parts, key=lambda key: len(encode_request(parts[key])))
    path = "the EventBridge Scheduler schedule's input" if scheduled else "fleetwave start's synchronous Lambda invoke"
    return (
        (largest,),
        f"the start request would be {_size(size)}; {path} takes at most {_size(limit)}: name fewer targets "
        "(tags instead of IDs) or split the spec",
    )
