"""boto3 clients, built lazily (never at import) and cached per process.

botocore's own retries (standard mode) are the only retry loop for throttling and 5xx errors.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20)


@cache
def client(service: str) -> Any:
    """A cached boto3 client; honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> like every boto3 client."""
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests start moto or the simulator, then build fresh ones)."""
    client.cache_clear()


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
