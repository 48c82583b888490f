"""EventBridge patterns from fleetwave.constants as CDK objects (the constants stay the one definition)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from aws_cdk import aws_events as events

_FIELDS: Final = {
    "source": "source",
    "detail-type": "detail_type",
    "detail": "detail",
    "account": "account",
    "region": "region",
    "resources": "resources",
    "id": "id",
    "time": "time",
    "version": "version",
}


def event_pattern(pattern: Mapping[str, Any]) -> events.EventPattern:
    unknown = sorted(set(pattern) - set(_FIELDS))
    if unknown:
        raise ValueError(f"event pattern fields {unknown} have no CDK equivalent")
    return events.EventPattern(**{_FIELDS[name]: copy.deepcopy(value) for name, value in pattern.items()})
