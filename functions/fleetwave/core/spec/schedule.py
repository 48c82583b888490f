"""EventBridge Scheduler expressions, checked as Scheduler defines them, and their next run times.

``cron(minutes hours day-of-month month day-of-week year)``, six fields:

    minutes       0-59               , - * /
    hours         0-23               , - * /
    day-of-month  1-31               , - * ? / L W
    month         1-12 or JAN-DEC    , - * /
    day-of-week   1-7 or SUN-SAT     , - * ? L #     (1 is Sunday)
    year          1970-2199          , - * /

One of day-of-month and day-of-week is ``?`` and the other is not. ``L`` is the last day of the month (day-of-month)
or of the week (day-of-week; ``5L`` is the month's last Thursday); ``3W`` the weekday nearest the 3rd; ``3#2`` the
month's second Tuesday (``#`` stands alone in its field, and the week is 1 to 5).

``rate(value unit)``: a whole number of at least 1 and ``minute``/``hour``/``day`` (singular for 1, plural above).

Times are wall-clock times in the schedule's time zone. As Scheduler does over daylight-saving changes, a time the
clock skips does not run, and a time the clock repeats runs once.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
FIRST_YEAR, LAST_YEAR = 1970, 2199


class ScheduleError(ValueError):
    """A schedule expression Scheduler would refuse, or one that never runs."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    step: bool = True  # "/" allowed

    def value(self, text: str, item: str) -> int:
        upper = text.upper()
        if self.names and upper in self.names:
            return self.names.index(upper) + self.low
        if not text.isdigit():
            named = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
            raise ScheduleError(f"{self.name} {item!r}: {text!r} is not a number {self.low}-{self.high}{named}")
        number = int(text)
        if not self.low <= number <= self.high:
            raise ScheduleError(f"{self.name} {item!r}: {number} is out of range {self.low}-{self.high}")
        return number

    def parse(self, text: str) -> frozenset[int]:
        """A field of plain values: ``*``, ``5``, ``1-5``, ``*/10``, ``0/15``, ``1-20/5``, and lists of those."""
        values: set[int] = set()
        for item in text.split(","):
            if not item:
                raise ScheduleError(f"{self.name} {text!r}: an empty item in the list")
            body, slash, step_text = item.partition("/")
            if slash and not self.step:
                raise ScheduleError(f"{self.name} {item!r}: '/' is not allowed in the {self.name} field")
            if body == "*":
                low, high = self.low, self.high
            elif "-" in body:
                first, _, last = body.partition("-")
                low, high = self.value(first, item), self.value(last, item)
                if low > high:
                    raise ScheduleError(f"{self.name} {item!r}: the range starts after it ends")
            else:
                low = self.value(body, item)
                high = self.high if slash else low
            step = 1
            if slash:
                if not step_text.isdigit() or int(step_text) < 1:
                    raise ScheduleError(f"{self.name} {item!r}: the step after '/' must be a whole number of 1 or more")
                step = int(step_text)
            values.update(range(low, high + 1, step))
        return frozenset(values)


_MINUTES = _Field("minutes", 0, 59)
_HOURS = _Field("hours", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, MONTHS)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, DAYS, step=False)
_YEAR = _Field("year", FIRST_YEAR, LAST_YEAR)


def _weekday(day: date) -> int:
    """Scheduler's day-of-week number: 1 Sunday ... 7 Saturday."""
    return (day.weekday() + 1) % 7 + 1


@dataclass(frozen=True)
class DayRule:
    """Which days of a month run: ``kind`` is "days" (day-of-month values), "last", "weekday_near" (``nW``),
    "last_weekday" (``LW``), "weekdays" (day-of-week values), "last_of" (``nL``) or "nth" (``n#k``)."""

    kind: str
    values: frozenset[int] = frozenset()
    number: int = 0
    week: int = 0

    def matches(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        if self.kind == "days":
            return day.day in self.values
        if self.kind == "last":
            return day.day == last
        if self.kind == "weekdays":
            return _weekday(day) in self.values
        if self.kind == "last_of":
            return _weekday(day) == self.number and day.day + 7 > last
        if self.kind == "nth":
            return _weekday(day) == self.number and (day.day - 1) // 7 + 1 == self.week
        target = last if self.kind == "last_weekday" else self.number
        if target > last:
            return False
        return day.day == _nearest_weekday(day.replace(day=target), last)


def _nearest_weekday(day: date, last: int) -> int:
    """The weekday nearest ``day`` within its month (``W``): Saturday moves to Friday, Sunday to Monday, never
    across the month's edge."""
    weekday = _weekday(day)
    if weekday == 7:  # Saturday
        return day.day + 2 if day.day == 1 else day.day - 1
    if weekday == 1:  # Sunday
        return day.day - 2 if day.day == last else day.day + 1
    return day.day


def _day_of_month(text: str) -> DayRule:
    if text == "L":
        return DayRule("last")
    if text == "LW":
        return DayRule("last_weekday")
    if text.endswith("W"):
        number = _DAY_OF_MONTH.value(text[:-1], text)
        return DayRule("weekday_near", number=number)
    if "L" in text or "W" in text:
        raise ScheduleError(f"day-of-month {text!r}: L and W stand alone (L, LW or a day like 15W)")
    return DayRule("days", _DAY_OF_MONTH.parse(text))


def _day_of_week(text: str) -> DayRule:
    if "#" in text:
        if "," in text:
            raise ScheduleError(f"day-of-week {text!r}: '#' must stand alone in its field (e.g. TUE#2)")
        day_text, _, week_text = text.partition("#")
        number = _DAY_OF_WEEK.value(day_text, text)
        if not week_text.isdigit() or not 1 <= int(week_text) <= 5:
            raise ScheduleError(f"day-of-week {text!r}: the week after '#' must be 1 to 5")
        return DayRule("nth", number=number, week=int(week_text))
    if text == "L":
        return DayRule("weekdays", frozenset({7}))
    if text.endswith("L"):
        return DayRule("last_of", number=_DAY_OF_WEEK.value(text[:-1], text))
    if "L" in text:
        raise ScheduleError(f"day-of-week {text!r}: L stands alone (L, or a day like 6L for the last Friday)")
    return DayRule("weekdays", _DAY_OF_WEEK.parse(text))


@dataclass(frozen=True)
class Cron:
    """A parsed Scheduler cron expression."""

    body: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: DayRule
    months: frozenset[int]
    years: frozenset[int]

    @property
    def expression(self) -> str:
        return f"cron({self.body})"

    def local_times(self, start: date) -> Iterator[datetime]:
        """Every wall-clock time the expression names, from ``start`` on, in order (naive datetimes)."""
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        for year in sorted(y for y in self.years if y >= start.year):
            for month in sorted(m for m in self.months if (year, m) >= (start.year, start.month)):
                for day_number in range(1, calendar.monthrange(year, month)[1] + 1):
                    day = date(year, month, day_number)
                    if day < start or not self.days.matches(day):
                        continue
                    for hour in hours:
                        for minute in minutes:
                            yield datetime(year, month, day_number, hour, minute)


def parse_cron(text: str) -> Cron:
    """``cron(0 3 ? * TUE#2 *)`` or its body ``0 3 ? * TUE#2 *``; raises ScheduleError naming the field."""
    body = text.strip()
    if body.startswith("cron(") and body.endswith(")"):
        body = body[5:-1].strip()
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"{text!r} has {len(fields)} fields; a cron expression has 6: minutes hours day-of-month month "
            "day-of-week year, e.g. '0 3 ? * TUE#2 *'"
        )
    minutes, hours, day_of_month, month, day_of_week, year = (field.upper() for field in fields)
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ScheduleError(
            f"{text!r}: exactly one of day-of-month ({day_of_month}) and day-of-week ({day_of_week}) must be '?'"
        )
    parsed: dict[str, Any] = {}
    problems: list[str] = []
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("minutes", lambda: _MINUTES.parse(minutes)),
        ("hours", lambda: _HOURS.parse(hours)),
        ("days", lambda: _day_of_week(day_of_week) if day_of_month == "?" else _day_of_month(day_of_month)),
        ("months", lambda: _MONTH.parse(month)),
        ("years", lambda: _YEAR.parse(year)),
    ]
    for name, parse in steps:
        try:
            parsed[name] = parse()
        except ScheduleError as error:
            problems.append(str(error))
    if problems:
        raise ScheduleError("; ".join(problems))
    cron = Cron(body=" ".join(fields), **parsed)
    if next(cron.local_times(date(FIRST_YEAR, 1, 1)), None) is None:
        raise ScheduleError(f"{text!r} never runs: no date matches its day, month and year fields")
    return cron


_RATE = re.compile(r"rate\(\s*([0-9]+)\s+([a-z]+)\s*\)")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Rate:
    value: int
    unit: str  # minute, hour or day

    @property
    def seconds(self) -> int:
        return self.value * _RATE_UNITS[self.unit]

    @property
    def expression(self) -> str:
        return f"rate({self.value} {self.unit}{'s' if self.value != 1 else ''})"


def parse_rate(text: str) -> Rate:
    """``rate(7 days)`` or ``7 days``; raises ScheduleError."""
    body = text.strip()
    match = _RATE.fullmatch(body) or _RATE.fullmatch(f"rate({body})")
    help_text = "a rate is a whole number and minute(s), hour(s) or day(s), e.g. 'rate(1 day)' or 'rate(7 days)'"
    if not match:
        raise ScheduleError(f"{text!r} is not a rate expression: {help_text}")
    value, unit = int(match.group(1)), match.group(2)
    singular = unit.removesuffix("s")
    if singular not in _RATE_UNITS:
        raise ScheduleError(f"{text!r}: {unit!r} is not a unit: {help_text}")
    if value < 1:
        raise ScheduleError(f"{text!r}: the value must be 1 or more")
    if (value == 1) != (unit == singular):
        expected = singular if value == 1 else f"{singular}s"
        raise ScheduleError(f"{text!r}: write {value} {expected} (singular for 1, plural above)")
    return Rate(value, singular)


def next_cron_runs(cron: Cron, timezone: str, after: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` run times strictly after ``after``, as aware datetimes in ``timezone``."""
    zone = ZoneInfo(timezone)
    local_after = after.astimezone(zone)
    runs: list[datetime] = []
    for naive in cron.local_times(local_after.date()):
        moment = naive.replace(tzinfo=zone)
        if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
            continue  # the clock skips this time (daylight saving starts): Scheduler does not run it
        if moment <= after:
            continue
        runs.append(moment)
        if len(runs) == count:
            break
    return runs


def next_rate_runs(rate: Rate, timezone: str, deployed: datetime, count: int = 3) -> list[datetime]:
    """Run times of a rate schedule created at ``deployed``: then, and every interval after."""
    zone = ZoneInfo(timezone)
    step = timedelta(seconds=rate.seconds)
    return [(deployed + step * index).astimezone(zone) for index in range(count)]
