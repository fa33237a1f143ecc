"""The two ways the agent writes a time, and the one way it reads one back.

- `request_stamp`: when a control request was made, as `requested-at` holds
  it (`2026-05-01T09:30:00Z`, what `date -u +%Y-%m-%dT%H:%M:%SZ` writes in
  the control script);
- `precise`: the liveness file's times and the JSON log lines'
  (`2026-05-01T09:30:00.123+00:00`).
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def request_stamp(when: datetime | None = None) -> str:
    """`when` (default: now) to the second, in UTC, with a `Z`."""
    moment = (when or utc_now()).astimezone(UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def precise(when: datetime | None) -> str:
    """`when` to the millisecond, in UTC; "" for None."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds") if when else ""


def parse_requested_at(value: str) -> datetime:
    """A `requested-at` value; now when it is missing, invalid or has no zone."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return utc_now()
    return parsed if parsed.tzinfo else utc_now()
