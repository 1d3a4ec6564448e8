"""Dates and times as staff read them, in Dutch and in the school's time zone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def when(value: datetime | str | None, zone: ZoneInfo) -> str:
    """25/11/2026 14:03 (an ISO string is read first; a dash for none)."""
    if isinstance(value, str):
        try:
            moment: datetime | None = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    return moment.astimezone(zone).strftime("%d/%m/%Y %H:%M") if moment else "–"


def day(value: date | None) -> str:
    """25/11/2026, or 'geen'."""
    return value.strftime("%d/%m/%Y") if value else "geen"


def ago(value: datetime | None, now: datetime) -> str:
    """How long ago, roughly: 'net nu', '5 min geleden', 'gisteren', '3 dagen geleden'."""
    if value is None:
        return "nooit"
    seconds = (now - value).total_seconds()
    if seconds < 90:
        return "net nu"
    if seconds < 3600:
        return f"{int(seconds // 60)} min geleden"
    if seconds < 86400:
        return f"{int(seconds // 3600)} uur geleden"
    days = int(seconds // 86400)
    return "gisteren" if days == 1 else f"{days} dagen geleden"
