"""The one retry policy, and the deadline an operation's calls share."""

from __future__ import annotations

import asyncio
import time

import pytest

from ingest.errors import SinkUnavailable, SourceError, SourceUnavailable
from ingest.retry import Deadline, RetryPolicy, call_with_retry, retrying

FAST = RetryPolicy(initial=0.01, maximum=0.05, deadline=0.3)


class _Flaky:
    """Fails with ``error`` ``times`` times (for ever with ``None``), then answers "ok"."""

    def __init__(self, error: Exception, times: int | None = None) -> None:
        self.error = error
        self.times = times
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.times is None or self.calls <= self.times:
            raise self.error
        return "ok"


class TestDeadline:
    def test_remaining_counts_down_and_never_goes_negative(self) -> None:
        """A deadline knows how long is left, and says when it has passed."""
        deadline = Deadline.after(0.05)
        assert 0 < deadline.remaining() <= 0.05
        assert not deadline.passed
        time.sleep(0.06)
        assert (0.0, True) == (deadline.remaining(), deadline.passed)

    def test_a_policy_starts_a_deadline_of_its_length(self) -> None:
        """``policy.start()`` is the deadline of an operation that starts now."""
        assert 9.9 < RetryPolicy(deadline=10).start().remaining() <= 10


class TestCallWithRetry:
    def test_transient_errors_are_retried_until_success(self) -> None:
        """Two transient failures, then the answer."""
        fn = _Flaky(SourceUnavailable("503"), times=2)
        assert "ok" == asyncio.run(call_with_retry(FAST, fn))
        assert 3 == fn.calls

    def test_terminal_errors_are_not_retried(self) -> None:
        """A terminal error comes out of the first attempt."""
        fn = _Flaky(SourceError("403"))
        with pytest.raises(SourceError):
            asyncio.run(call_with_retry(FAST, fn))
        assert 1 == fn.calls

    def test_it_never_sleeps_past_the_deadline(self) -> None:
        """Backoffs of many seconds are cut to what is left: a failure that lasts ends the
        call at the deadline, not after the next sleep."""
        slow = RetryPolicy(initial=5, maximum=20, deadline=0.3)
        fn = _Flaky(SinkUnavailable("503"))
        started = time.monotonic()
        with pytest.raises(SinkUnavailable):
            asyncio.run(call_with_retry(slow, fn))
        assert time.monotonic() - started < 1
        assert fn.calls >= 2

    def test_calls_sharing_a_deadline_share_its_time(self) -> None:
        """The second call of an operation whose deadline the first used up is tried once."""

        async def operation() -> tuple[_Flaky, _Flaky]:
            deadline = FAST.start()
            first, second = _Flaky(SinkUnavailable("503")), _Flaky(SinkUnavailable("503"))
            for fn in (first, second):
                with pytest.raises(SinkUnavailable):
                    await call_with_retry(FAST, fn, deadline=deadline)
            return first, second

        started = time.monotonic()
        first, second = asyncio.run(operation())
        assert time.monotonic() - started < 1
        assert (True, 1) == (first.calls > 1, second.calls)

    def test_the_first_attempt_is_always_made(self) -> None:
        """Under a deadline already passed, the call is still tried once."""
        fn = _Flaky(SinkUnavailable("503"), times=0)
        assert "ok" == asyncio.run(call_with_retry(FAST, fn, deadline=Deadline.after(0)))


class TestRetrying:
    def test_retry_on_narrows_what_is_retried(self) -> None:
        """A transient error that ``retry_on`` turns down comes out at once."""

        async def go(fn: _Flaky) -> None:
            async for attempt in retrying(FAST, retry_on=lambda exc: False):
                with attempt:
                    await fn()

        fn = _Flaky(SinkUnavailable("503"))
        with pytest.raises(SinkUnavailable):
            asyncio.run(go(fn))
        assert 1 == fn.calls

    def test_the_sleep_can_be_replaced(self) -> None:
        """The controller waits through the given ``sleep`` (the sink frees its request slot
        there), with waits no longer than the policy's maximum."""
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        async def go(fn: _Flaky) -> None:
            async for attempt in retrying(FAST, sleep=sleep):
                with attempt:
                    await fn()

        asyncio.run(go(_Flaky(SinkUnavailable("503"), times=3)))
        assert 3 == len(slept)
        assert all(0 <= s <= FAST.maximum for s in slept)
