"""The settings of ``tail``, where it starts reading, and the health it reports."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from ingest.errors import ConfigError

__all__ = ["DEFAULT_SINCE", "Health", "TailConfig", "announce", "parse_since", "stamp"]

_log = structlog.get_logger("ingest.tail")


@dataclass(frozen=True, kw_only=True)
class TailConfig:
    poll_interval: float = 60.0
    rewind: timedelta = timedelta(minutes=20)
    rediscover_seconds: float = 600.0
    sqs_queue_url: str | None = None
    sqs_endpoint_url: str | None = None
    sqs_wait_seconds: int = 20
    sqs_visibility: int = 300
    metrics_port: int | None = None
    unhealthy_after: float = 120.0
    since: datetime | None = None  # where prefixes with nothing settled start; None: a day ago
    exit_when_idle: float | None = None  # SQS: end once the queue has been empty this long


DEFAULT_SINCE = timedelta(days=1)
_RELATIVE = re.compile(r"^(\d+)([dh])$")


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since`` of ``tail``: ``YYYY-MM-DD`` (midnight UTC), an ISO timestamp (UTC unless it
    says otherwise), or ``Nd`` / ``Nh`` (N days / hours before now). Never in the future."""
    now = now or datetime.now(UTC)
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        n = int(m[1])
        since = now - (timedelta(days=n) if m[2] == "d" else timedelta(hours=n))
    else:
        try:
            since = datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(
                f"--since {text!r}: expected YYYY-MM-DD, an ISO timestamp "
                "(e.g. 2026-11-27T10:40Z) or Nd / Nh (e.g. 30d, 6h)"
            ) from None
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
    if since > now:
        raise ConfigError(f"--since {text!r}: {stamp(since)} is in the future")
    return since


def stamp(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def announce(line: str, **fields: Any) -> None:
    """A start-up line for the person at the terminal, and the same as a structured event."""
    print(f"ct-ingest tail: {line}", file=sys.stderr, flush=True)
    _log.info("tail_start", **fields)


@dataclass
class Health:
    """When S3 and OpenSearch last answered; /healthz fails when either is too long ago."""

    threshold: float
    last_ok: dict[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    def ok(self, what: str) -> None:
        self.last_ok[what] = self.clock()

    def problems(self) -> list[str]:
        now = self.clock()
        return [
            f"{what} unreachable for {now - self.last_ok.get(what, float('-inf')):.0f} s"
            for what in ("s3", "opensearch")
            if now - self.last_ok.get(what, now) > self.threshold
        ]
