"""Times as the viewer reads them: in their own time zone, which the browser says in a `tz`
cookie (an IANA name; static/js/messages.js sets it). Until it has, times are in UTC, and say so."""
from datetime import datetime, timedelta, timezone
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, g, request

COOKIE = "tz"


def viewer_zone() -> Optional[ZoneInfo]:
    """The viewer's time zone, from the cookie (None when there is none, or none such)."""
    if "viewer_zone" not in g:
        name = request.cookies.get(COOKIE, "")
        try:
            g.viewer_zone = ZoneInfo(name) if 0 < len(name) <= 64 and ".." not in name else None
        except (ZoneInfoNotFoundError, ValueError):
            g.viewer_zone = None
    return g.viewer_zone


def local_time(moment: datetime) -> str:
    """"1 Dec 2026, 14:05" in the viewer's zone, or "1 Dec 2026, 13:05 UTC". A time without a
    zone (a camera's, as written) is shown as it is."""
    if moment.tzinfo is None:
        return f"{moment.day} {moment:%b %Y, %H:%M}"
    zone = viewer_zone()
    there = moment.astimezone(zone or timezone.utc)
    return f"{there.day} {there:%b %Y, %H:%M}" + ("" if zone else " UTC")


def month_of(moment: datetime) -> str:
    """"December 2026": the month of the gallery's heading, in the viewer's zone (a time without
    a zone, as it is)."""
    if moment.tzinfo is None:
        return f"{moment:%B %Y}"
    return f"{moment.astimezone(viewer_zone() or timezone.utc):%B %Y}"


def utc_offset(minutes: Optional[int]) -> str:
    """" UTC+02:00" for an offset in minutes; nothing when it is not known."""
    if minutes is None:
        return ""
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    return f" UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def taken_iso(moment: datetime, offset: Optional[int]) -> str:
    """A date taken in ISO 8601: with its offset where known, else local time as written."""
    if offset is None:
        return moment.isoformat()
    return moment.replace(tzinfo=timezone(timedelta(minutes=offset))).isoformat()


def init_app(app: Flask) -> None:
    app.add_template_filter(local_time)
    app.add_template_filter(month_of, "month")
    app.add_template_filter(utc_offset)
    app.add_template_filter(taken_iso)
