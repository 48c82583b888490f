"""CloudWatch Alarm State Change events as EventBridge delivers them, for the twin's remediate and alarm gates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fleetwave.constants import CLOUDWATCH_EVENT_SOURCE, DETAIL_TYPE_ALARM

from fleetwave_local.twin.account import ACCOUNT, REGION


def alarm_state_change_event(
    alarm_name: str,
    *,
    event_id: str,
    at: datetime,
    state: str = "ALARM",
    previous_state: str = "OK",
    dimensions: dict[str, str] | None = None,
    composite: bool = False,
    metric_name: str = "StatusCheckFailed",
    namespace: str = "AWS/EC2",
    description: str = "",
    reason: str = "Threshold Crossed: 1 out of the last 1 datapoints was greater than or equal to the threshold (1.0).",
    region: str = REGION,
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """The EventBridge envelope of a ``CloudWatch Alarm State Change`` event, field for field as AWS documents it:
    a metric alarm carries ``configuration.metrics[].metricStat.metric.dimensions``; a composite alarm carries its
    ``alarmRule`` and no metrics."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"
    configuration: dict[str, Any]
    if composite:
        configuration = {"alarmRule": f"ALARM({alarm_name}-a) OR ALARM({alarm_name}-b)", "description": description}
    else:
        configuration = {
            "description": description,
            "metrics": [
                {
                    "id": "m1",
                    "metricStat": {
                        "metric": {"dimensions": dict(dimensions or {}), "name": metric_name, "namespace": namespace},
                        "period": 60,
                        "stat": "Maximum",
                    },
                    "returnData": True,
                }
            ],
        }
    return {
        "version": "0",
        "id": event_id,
        "detail-type": DETAIL_TYPE_ALARM,
        "source": CLOUDWATCH_EVENT_SOURCE,
        "account": account,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm_name}"],
        "detail": {
            "alarmName": alarm_name,
            "state": {
                "value": state,
                "reason": reason,
                "reasonData": json.dumps({"version": "1.0", "queryDate": stamp, "threshold": 1.0}),
                "timestamp": stamp,
            },
            "previousState": {"value": previous_state, "reason": "Threshold Crossed", "timestamp": stamp},
            "configuration": configuration,
        },
    }
