"""SNS summary publishing: one message with a variant per protocol (MessageStructure=json)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fleetwave.adapters.aws import error_code
from fleetwave.errors import RetryLaterError


class SummaryPublishError(RetryLaterError):
    """SNS did not take the message: the stream record must be retried."""


class SummaryPublisher:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self.sns = sns
        self.topic_arn = topic_arn

    def publish(self, subject: str, body: str, payload: dict[str, Any], attributes: dict[str, str]) -> str:
        """E-mail subscribers get the body; SQS, Lambda and HTTPS subscribers the JSON payload; anything else
        both. ``attributes`` become String message attributes (for subscription filter policies)."""
        document = json.dumps(payload, sort_keys=True)
        message = {
            "default": body + "\n\n" + json.dumps(payload, indent=2, sort_keys=True),
            "email": body,
            "sqs": document,
            "lambda": document,
            "https": document,
        }
        try:
            response = self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=subject[:100],
                Message=json.dumps(message),
                MessageStructure="json",
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v},
            )
        except (ClientError, BotoCoreError) as error:
            raise SummaryPublishError(f"SNS Publish failed: {error_code(error) or type(error).__name__}") from error
        return str(response["MessageId"])
