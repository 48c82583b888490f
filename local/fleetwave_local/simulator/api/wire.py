"""What every operation of the simulated SSM API shares: the JSON body, validation errors, timestamps, paging."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.awsrequest import AWSPreparedRequest

from ..botocore_hook import SsmApiError

T = TypeVar("T")


def json_body(request: AWSPreparedRequest) -> dict[str, Any]:
    raw = request.body
    if raw is None or raw in (b"", ""):
        return {}
    if hasattr(raw, "read"):
        raw = raw.read()
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    body = json.loads(text) if text else {}
    return body if isinstance(body, dict) else {}


def validation_error(member: str, constraint: str) -> SsmApiError:
    return SsmApiError(
        "ValidationException",
        f"1 validation error detected: Value at '{member}' failed to satisfy constraint: {constraint}",
    )


def parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SsmApiError("InvalidFilterValue", f"{value} is not a valid timestamp.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def paginate(
    items: list[T], body: dict[str, Any], scope: str, *, default: int, maximum: int
) -> tuple[list[T], str | None]:
    max_results = int(body.get("MaxResults") or default)
    if max_results > maximum:
        raise validation_error("maxResults", f"Member must have value less than or equal to {maximum}")
    if max_results < 1:
        raise validation_error("maxResults", "Member must have value greater than or equal to 1")
    offset = 0
    token = body.get("NextToken")
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()).decode())
            if decoded["s"] != scope:
                raise ValueError(scope)
            offset = int(decoded["o"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise SsmApiError("InvalidNextToken", "The specified token isn't valid.") from None
    page = items[offset : offset + max_results]
    end = offset + len(page)
    next_token = None
    if end < len(items):
        next_token = base64.urlsafe_b64encode(json.dumps({"s": scope, "o": end}).encode()).decode()
    return page, next_token


def with_token(response: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token is not None:
        response["NextToken"] = token
    return response
