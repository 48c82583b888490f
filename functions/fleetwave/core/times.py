"""How fleetwave writes and reads moments in text: ISO 8601 in UTC with a ``Z``. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def iso(moment: datetime) -> str:
    """``2026-01-01T00:00:00Z`` (microseconds only when there are some)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 moment as ``iso`` writes it (or with an offset); None for an empty value."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def parse_moment(value: Any) -> datetime | None:
    """A moment in any form a record may carry it (epoch seconds, ISO 8601 with ``T`` or a space), or None when
    there is none or it cannot be read."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
            return datetime.fromtimestamp(float(value), UTC)
        moment = parse_time(str(value).replace(" ", "T"))
    except (ValueError, OverflowError, OSError):
        return None
    return moment.astimezone(UTC) if moment and moment.tzinfo else moment
