"""The one way minewatch stamps a time: UTC, whole seconds, ISO 8601 with a ``Z`` (``2026-12-01T06:20:00Z``)."""

from __future__ import annotations

from datetime import datetime, timezone


def now_utc() -> str:
    """Now, as every output, journal, marker and catalogue row records it."""
    return datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
