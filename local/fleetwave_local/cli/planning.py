"""``plan``: the plan start_rollout would make, as a document, from whichever adapters (AWS or the twin) it is given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetwave.constants import MAX_IDS_PER_COMMAND
from fleetwave.core.planner import Plan
from fleetwave.core.spec import RolloutSpec
from fleetwave.errors import SpecRejectedError

from fleetwave_local.cli.runtime import functions_runtime


def plan_document(spec: RolloutSpec, plan: Plan, *, document: Mapping[str, str] | None) -> dict[str, Any]:
    return {
        "schema": "fleetwave.plan/v1",
        "spec": spec.name,
        "document": dict(document) if document else None,
        "target_count": plan.target_count,
        "budget_allowed": plan.budget_allowed,
        "waves": [
            {
                "index": wave.index,
                "mark": wave.mark,
                "size": wave.size,
                "max_concurrency": wave.max_concurrency,
                "chunks": -(-wave.size // MAX_IDS_PER_COMMAND),
                "instance_ids": list(wave.instance_ids),
            }
            for wave in plan.waves
        ],
        "skipped": [{"instance_id": s.instance_id, "reason": s.reason} for s in plan.skipped],
        "deferred": list(plan.deferred),
        "dropped_marks": list(plan.dropped_marks),
    }


def plan_with_deps(deps: Any, spec: RolloutSpec) -> dict[str, Any]:
    """Check the document and plan the targets with these adapters (nothing is written, nothing dispatched).

    Raises SpecRejectedError with the same problems start_rollout would give.
    """
    functions_runtime()
    from fleetwave.service.start import check_document, plan_for

    info = deps.ssm.describe_document(spec.document.name, spec.document.version)
    problems = check_document(spec, info, deps.settings.ALLOWED_DOCUMENTS)
    if problems:
        raise SpecRejectedError(problems)
    plan = plan_for(deps, spec)
    return plan_document(spec, plan, document={"name": info.name, "version": info.version, "hash": info.hash})
