"""This process as fleetwave's function code expects it: Lambda's environment, logs kept off the result's stdout."""

from __future__ import annotations

import logging
import os
import sys


class StderrProxy:
    """A stream that always writes to the *current* sys.stderr (pytest swaps it per test)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def functions_runtime() -> None:
    """Prepare this process to run fleetwave's function code (handlers, services), as Lambda's environment would.

    Call before importing ``fleetwave.service.*``: their Powertools child loggers take the service name from
    POWERTOOLS_SERVICE_NAME when imported, and a child of no "fleetwave" parent fails on its first append_keys.
    The functions log to stdout; in the CLI stdout belongs to the result (``--json``), so their logs go to stderr.
    """
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "fleetwave")
    # The functions' INFO logs are for CloudWatch; on a terminal only their errors are worth a line.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    from fleetwave.observability import logger

    for handler in logging.getLogger(logger.name).handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(StderrProxy())  # type: ignore[arg-type]
