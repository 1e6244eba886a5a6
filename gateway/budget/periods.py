"""Budget periods aligned to the calendar in a team's time zone: a day starts at local
midnight, a week on Monday at local midnight, a month on its first day; `lifetime` never ends.
Wall-clock construction through zoneinfo keeps DST days at 23 or 25 hours."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.policies import Period


@dataclass(frozen=True, slots=True)
class Window:
    period: Period
    id: str  # part of the store key: d2026-11-28, w2026-11-23 (its Monday), m2026-11, life
    start: datetime | None
    end: datetime | None  # when it resets; None for lifetime


def _midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def window(period: Period, now: datetime, tz: ZoneInfo) -> Window:
    local = now.astimezone(tz).date()
    if period == "day":
        return Window(period, f"d{local.isoformat()}", _midnight(local, tz),
                      _midnight(local + timedelta(days=1), tz))  # fmt: skip
    if period == "week":
        monday = local - timedelta(days=local.weekday())
        return Window(period, f"w{monday.isoformat()}", _midnight(monday, tz),
                      _midnight(monday + timedelta(days=7), tz))  # fmt: skip
    if period == "month":
        first = local.replace(day=1)
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return Window(period, f"m{first:%Y-%m}", _midnight(first, tz), _midnight(nxt, tz))
    return Window(period, "life", None, None)


def local_day(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def days(period: Period, now: datetime, tz: ZoneInfo) -> list[date]:
    """The local days of the period containing `now`, up to today (for spend reports)."""
    w = window(period, now, tz)
    today = local_day(now, tz)
    first = w.start.date() if w.start else today - timedelta(days=365)
    return [first + timedelta(days=i) for i in range((today - first).days + 1)]
