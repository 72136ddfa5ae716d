"""The one retry policy: exponential backoff with full jitter, bounded, on transient errors only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from ingest.errors import IngestError

__all__ = ["RetryPolicy", "call_with_retry", "is_transient", "retrying"]

T = TypeVar("T")
_log = structlog.get_logger("ingest.retry")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard to try a transient failure again before giving up."""

    attempts: int = 100  # the deadline is the bound that matters; this only caps pathologies
    initial: float = 0.2
    maximum: float = 20.0
    deadline: float = 300.0

    @classmethod
    def within(cls, deadline: float) -> RetryPolicy:
        """Keep trying for ``deadline`` seconds, never sleeping more than a quarter of it."""
        return cls(deadline=deadline, maximum=min(20.0, deadline / 4))


def is_transient(exc: BaseException) -> bool:
    """True for errors that our tree marks as worth another try."""
    return isinstance(exc, IngestError) and exc.transient


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    _log.warning(
        "retrying",
        attempt=state.attempt_number,
        error=type(exc).__name__ if exc else None,
        reason=str(exc) if exc else None,
        sleep_s=round(state.next_action.sleep, 2) if state.next_action else None,
    )


def retrying(policy: RetryPolicy) -> AsyncRetrying:
    """An async tenacity controller for ``policy``; re-raises the last error when it gives up."""
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_random_exponential(multiplier=policy.initial, max=policy.maximum),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.deadline),
        before_sleep=_log_retry,
        reraise=True,
    )


async def call_with_retry(policy: RetryPolicy, fn: Callable[[], Awaitable[T]]) -> T:
    """Await ``fn()`` under ``policy``."""
    async for attempt in retrying(policy):
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises when it stops")  # pragma: no cover
