"""SNS summary publishing."""

from __future__ import annotations

import json
from typing import Any


class SummaryPublisher:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self.sns = sns
        self.topic_arn = topic_arn

    def publish(self, subject: str, body: str, payload: dict[str, Any], attributes: dict[str, str]) -> str:
        message = {
            "default": body + "\n\n" + json.dumps(payload, indent=2, sort_keys=True),
            "email": body,
            "sqs": json.dumps(payload, sort_keys=True),
            "lambda": json.dumps(payload, sort_keys=True),
            "https": json.dumps(payload, sort_keys=True),
        }
        response = self.sns.publish(
            TopicArn=self.topic_arn,
            Subject=subject[:100],
            Message=json.dumps(message),
            MessageStructure="json",
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v},
        )
        return str(response["MessageId"])
