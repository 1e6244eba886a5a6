"""Budget periods follow the calendar of the team's time zone, DST included."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.budget.lines import LineCache
from gateway.budget.periods import days, window
from gateway.policies import load_policies

BERLIN = ZoneInfo("Europe/Berlin")


def test_day_starts_at_local_midnight_not_utc_midnight() -> None:
    now = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)  # already the 29th in Berlin
    w = window("day", now, BERLIN)
    assert w.id == "d2026-11-29"
    assert w.end == datetime(2026, 11, 30, tzinfo=BERLIN)


def test_week_starts_on_monday_and_month_on_the_first() -> None:
    now = datetime(2026, 12, 31, 12, tzinfo=UTC)  # a Thursday
    assert window("week", now, BERLIN).id == "w2026-12-28"
    m = window("month", now, BERLIN)
    assert m.id == "m2026-12"
    assert m.end == datetime(2027, 1, 1, tzinfo=BERLIN)


def test_a_dst_day_is_23_hours_long() -> None:
    w = window("day", datetime(2026, 3, 29, 12, tzinfo=UTC), BERLIN)
    assert w.start is not None and w.end is not None
    assert w.end.astimezone(UTC) - w.start.astimezone(UTC) == timedelta(hours=23)


def test_lifetime_never_resets_and_periods_list_their_days() -> None:
    assert window("lifetime", datetime.now(UTC), BERLIN).end is None
    now = datetime(2026, 11, 4, 9, tzinfo=UTC)
    assert [d.day for d in days("month", now, BERLIN)] == [1, 2, 3, 4]


def test_line_cache_follows_the_minute_midnight_and_policy_reloads(tmp_path: Path) -> None:
    (tmp_path / "teams.yaml").write_text(
        "teams:\n  t:\n    timezone: Europe/Berlin\n    budgets: {day: '1.00'}\n"
        "    limits: {rpm: 10}\n"
    )
    team = load_policies(tmp_path).team("t")
    assert team is not None
    cache = LineCache()
    before = datetime(2026, 3, 28, 22, 59, 30, tzinfo=UTC)  # 23:59:30 in Berlin
    lines, rates = cache.get(team, None, before)
    assert cache.get(team, None, before + timedelta(seconds=20)) == (lines, rates)
    assert lines[0].window.id == "d2026-03-28" and lines[0].limit_nano == 1_000_000_000
    after, after_rates = cache.get(team, None, before + timedelta(seconds=30))  # midnight
    assert after[0].window.id == "d2026-03-29" and after_rates != rates
    reloaded = load_policies(tmp_path).team("t")
    assert reloaded is not None
    assert cache.get(reloaded, None, before + timedelta(seconds=31))[0] is not after
