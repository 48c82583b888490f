"""EventBridge Scheduler expressions: the six cron fields with their ranges and wildcards, rate(), and the next run
times in the schedule's time zone (daylight saving as Scheduler handles it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fleetwave.core.spec import parse_spec
from fleetwave.core.spec.schedule import ScheduleError, next_cron_runs, next_rate_runs, parse_cron, parse_rate

NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def local(runs: list[datetime]) -> list[str]:
    return [run.isoformat(timespec="minutes") for run in runs]


@pytest.mark.parametrize(
    "expression",
    [
        "0 3 ? * TUE#2 *",
        "cron(0 3 ? * TUE#2 *)",
        "*/15 * * * ? *",
        "0 9 ? * MON-FRI *",
        "0 9 ? * mon-fri *",
        "0 0 L * ? *",
        "0 0 LW * ? *",
        "0 9 15W * ? *",
        "0 22 ? * 6L *",
        "0 22 ? * L *",
        "0 10 1 1,4,7,10 ? 2026-2030",
        "5/10 1-5/2 1-15 JAN-JUN ? *",
        "0 12 * * ? 2199",
    ],
)
def test_expressions_scheduler_accepts_are_accepted(expression: str) -> None:
    assert parse_cron(expression).expression.startswith("cron(")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("99 99 ? * TUE#9 *", "minutes '99': 99 is out of range 0-59; hours '99': 99 is out of range 0-23; "
                              "day-of-week 'TUE#9': the week after '#' must be 1 to 5"),
        ("0 3 * *", "'0 3 * *' has 4 fields; a cron expression has 6"),
        ("0 3 * * * *", "exactly one of day-of-month (*) and day-of-week (*) must be '?'"),
        ("0 3 ? * ? *", "exactly one of day-of-month (?) and day-of-week (?) must be '?'"),
        ("0 3 ? * 3#1,6#3 *", "day-of-week '3#1,6#3': '#' must stand alone in its field"),
        ("0 3 ? * 8 *", "day-of-week '8': 8 is out of range 1-7"),
        ("0 3 ? * 0 *", "day-of-week '0': 0 is out of range 1-7"),
        ("0 3 ? 13 MON *", "month '13': 13 is out of range 1-12"),
        ("0 3 ? * MON 2200", "year '2200': 2200 is out of range 1970-2199"),
        ("0 3 ? * MON/2 *", "day-of-week 'MON/2': '/' is not allowed in the day-of-week field"),
        ("0 3 L-2 * ? *", "day-of-month 'L-2': L and W stand alone"),
        ("0 5-1 * * ? *", "hours '5-1': the range starts after it ends"),
        ("0 */0 * * ? *", "hours '*/0': the step after '/' must be a whole number of 1 or more"),
        ("0 3 ? JAN-XYZ MON *", "month 'JAN-XYZ': 'XYZ' is not a number 1-12 or JAN-DEC"),
        ("0 3 1,,2 * ? *", "day-of-month '1,,2': an empty item in the list"),
        ("0 3 31 2 ? *", "never runs: no date matches its day, month and year fields"),
        ("0 3 ? * 2L,3 *", "day-of-week '2L,3': L stands alone"),
    ],
)  # fmt: skip
def test_expressions_scheduler_refuses_are_refused_with_the_field(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as error:
        parse_cron(expression)
    assert message in str(error.value)


def test_the_second_tuesday_in_paris() -> None:
    runs = next_cron_runs(parse_cron("0 3 ? * TUE#2 *"), "Europe/Paris", NEW_YEAR)
    assert local(runs) == ["2026-01-13T03:00+01:00", "2026-02-10T03:00+01:00", "2026-03-10T03:00+01:00"]


def test_day_of_week_counts_from_sunday() -> None:
    runs = next_cron_runs(parse_cron("0 0 ? * 1 *"), "UTC", NEW_YEAR)
    assert [run.strftime("%a") for run in runs] == ["Sun", "Sun", "Sun"] and runs[0].day == 4


def test_last_days_weekdays_and_last_weekdays_of_a_month() -> None:
    assert [r.day for r in next_cron_runs(parse_cron("0 0 L * ? *"), "UTC", NEW_YEAR)] == [31, 28, 31]
    # 2026-02-01 and 2026-03-01 are Sundays, 2026-08-01 a Saturday: W never leaves the month.
    assert [r.date().isoformat() for r in next_cron_runs(parse_cron("0 0 1W 2,3,8 ? *"), "UTC", NEW_YEAR)] == [
        "2026-02-02",
        "2026-03-02",
        "2026-08-03",
    ]
    assert [r.date().isoformat() for r in next_cron_runs(parse_cron("0 0 ? * 6L *"), "UTC", NEW_YEAR)] == [
        "2026-01-30",
        "2026-02-27",
        "2026-03-27",
    ]
    # 2026-05-31 is a Sunday: the last weekday of May is Friday the 29th.
    may = datetime(2026, 5, 1, tzinfo=UTC)
    assert next_cron_runs(parse_cron("0 0 LW * ? *"), "UTC", may, 1)[0].date().isoformat() == "2026-05-29"


def test_a_time_the_clock_skips_does_not_run_and_a_repeated_time_runs_once() -> None:
    daily = parse_cron("30 2 * * ? *")
    spring = next_cron_runs(daily, "Europe/Paris", datetime(2026, 3, 28, tzinfo=UTC))
    assert local(spring) == ["2026-03-28T02:30+01:00", "2026-03-30T02:30+02:00", "2026-03-31T02:30+02:00"]
    autumn = next_cron_runs(daily, "Europe/Paris", datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert local(autumn) == ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00", "2026-10-27T02:30+01:00"]


def test_a_schedule_whose_years_have_passed_has_no_next_run() -> None:
    assert next_cron_runs(parse_cron("0 0 1 1 ? 2020"), "UTC", NEW_YEAR) == []


@pytest.mark.parametrize(
    ("text", "expression"),
    [("rate(1 day)", "rate(1 day)"), ("7 days", "rate(7 days)"), ("rate(30 minutes)", "rate(30 minutes)")],
)
def test_rates(text: str, expression: str) -> None:
    assert parse_rate(text).expression == expression


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rate(1 days)", "write 1 day (singular for 1, plural above)"),
        ("rate(5 minute)", "write 5 minutes"),
        ("rate(0 hours)", "the value must be 1 or more"),
        ("rate(2 weeks)", "'weeks' is not a unit"),
        ("every day", "is not a rate expression"),
    ],
)
def test_bad_rates(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as error:
        parse_rate(text)
    assert message in str(error.value)


def test_a_rate_runs_when_deployed_then_every_interval() -> None:
    runs = next_rate_runs(parse_rate("rate(7 days)"), "Europe/Paris", NEW_YEAR)
    assert local(runs) == ["2026-01-01T01:00+01:00", "2026-01-08T01:00+01:00", "2026-01-15T01:00+01:00"]


def test_the_spec_gives_its_next_runs_in_its_time_zone() -> None:
    spec = parse_spec(
        {
            "name": "patch",
            "document": {"name": "AWS-RunPatchBaseline"},
            "targets": {"tags": {"Patch Group": "prod"}},
            "schedule": {"cron": "0 3 ? * TUE#2 *", "timezone": "America/New_York"},
        }
    )
    assert spec.schedule is not None
    assert local(spec.schedule.next_runs(NEW_YEAR)) == [
        "2026-01-13T03:00-05:00",
        "2026-02-10T03:00-05:00",
        "2026-03-10T03:00-04:00",
    ]
