"""The bulk controller: how big each bulk body is and how many are in flight, adapted (AIMD) to
what the cluster says.

Pure and synchronous: the sink reports each request's outcome and reads :attr:`bytes` and
:attr:`in_flight` back. The aim is requests near ``target_seconds`` (default 10 s), far below the
~60 s at which a managed cluster's load balancer gives up:

- a request slower than the target shrinks the body in proportion (at most by half);
- a full-size request faster than half the target grows the body by one step, and once the body
  is at its cap, allows one more request in flight;
- 429, 502/503/504, timeouts and connection errors halve both (at most once per cool-down, so a
  burst of failures from requests already in flight counts once);
- a 413 sets a ceiling below the refused size that is never exceeded again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

__all__ = ["BulkController", "ControllerConfig"]

_log = structlog.get_logger("ingest.adaptive")
KiB = 1024


@dataclass(frozen=True, kw_only=True)
class ControllerConfig:
    start_bytes: int
    max_bytes: int
    max_in_flight: int
    start_in_flight: int = 2
    min_bytes: int = 256 * KiB
    step_bytes: int = 1024 * KiB
    target_seconds: float = 10.0
    cooldown_seconds: float = 2.0


class BulkController:
    def __init__(
        self, config: ControllerConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._clock = clock
        self.ceiling = config.max_bytes
        self.min_bytes = min(config.min_bytes, config.start_bytes)
        self.bytes = max(self.min_bytes, min(config.start_bytes, config.max_bytes))
        self.in_flight = max(1, min(config.start_in_flight, config.max_in_flight))
        self._last_decrease = float("-inf")
        self.decisions = 0

    def _decide(self, reason: str, **facts: object) -> None:
        self.decisions += 1
        _log.debug(
            "bulk_controller", reason=reason, bytes=self.bytes, in_flight=self.in_flight, **facts
        )

    def on_success(self, body_bytes: int, seconds: float) -> None:
        target = self.config.target_seconds
        if seconds > target:
            self.bytes = max(self.min_bytes, int(self.bytes * max(0.5, target / seconds)))
            self._decide("slow", seconds=round(seconds, 2), body=body_bytes)
        elif seconds < target / 2 and body_bytes >= 0.8 * self.bytes:
            if self.bytes < self.ceiling:
                self.bytes = min(self.ceiling, self.bytes + self.config.step_bytes)
                self._decide("fast-grow-bytes", seconds=round(seconds, 2), body=body_bytes)
            elif self.in_flight < self.config.max_in_flight:
                self.in_flight += 1
                self._decide("fast-grow-in-flight", seconds=round(seconds, 2), body=body_bytes)

    def on_pushback(self, reason: str) -> None:
        """429, 5xx, a timeout or a connection error: back off multiplicatively."""
        now = self._clock()
        if now - self._last_decrease < self.config.cooldown_seconds:
            return
        self._last_decrease = now
        self.bytes = max(self.min_bytes, self.bytes // 2)
        self.in_flight = max(1, self.in_flight // 2)
        self._decide("pushback", cause=reason)

    def on_too_large(self, body_bytes: int) -> None:
        """The cluster refused ``body_bytes`` with 413: never send that much again."""
        self.ceiling = max(16 * KiB, min(self.ceiling, int(body_bytes * 0.8)))
        self.min_bytes = min(self.min_bytes, self.ceiling)
        self.bytes = min(self.bytes, self.ceiling)
        self._decide("too-large", body=body_bytes, ceiling=self.ceiling)
