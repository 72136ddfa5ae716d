from __future__ import annotations

from ingest.adaptive import BulkController, ControllerConfig

MiB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _controller(**over: object) -> tuple[BulkController, Clock]:
    clock = Clock()
    cfg = {
        "start_bytes": 5 * MiB,
        "max_bytes": 9 * MiB,
        "max_in_flight": 4,
        "target_seconds": 10.0,
        "step_bytes": 1 * MiB,
        "min_bytes": 256 * 1024,
        "cooldown_seconds": 2.0,
    }
    cfg.update(over)
    return BulkController(ControllerConfig(**cfg), clock=clock), clock  # type: ignore[arg-type]


class TestBulkController:
    def test_slow_requests_shrink_the_body_in_proportion(self) -> None:
        """A 20 s request against a 10 s target halves the body; 12.5 s shrinks it by a fifth."""
        ctl, _ = _controller()
        ctl.on_success(5 * MiB, 12.5)
        assert 4 * MiB == ctl.bytes
        ctl.on_success(4 * MiB, 40.0)
        assert 2 * MiB == ctl.bytes

    def test_fast_full_requests_grow_bytes_then_concurrency(self) -> None:
        """Fast full-size requests add a step up to the cap, then one more request in flight."""
        ctl, _ = _controller()
        assert (5 * MiB, 2) == (ctl.bytes, ctl.in_flight)
        for _ in range(4):
            ctl.on_success(ctl.bytes, 1.0)
        assert (9 * MiB, 2) == (ctl.bytes, ctl.in_flight)
        for _ in range(5):
            ctl.on_success(ctl.bytes, 1.0)
        assert (9 * MiB, 4) == (ctl.bytes, ctl.in_flight)

    def test_small_fast_requests_teach_nothing(self) -> None:
        """A fast request with a small body (the tail of a run) does not grow the target."""
        ctl, _ = _controller()
        ctl.on_success(100_000, 0.1)
        assert 5 * MiB == ctl.bytes

    def test_pushback_halves_once_per_cooldown(self) -> None:
        """429/5xx/timeouts halve size and concurrency; a burst within the cool-down counts once."""
        ctl, clock = _controller(start_in_flight=4)
        ctl.on_pushback("HTTP 429")
        ctl.on_pushback("HTTP 429")
        assert (int(2.5 * MiB), 2) == (ctl.bytes, ctl.in_flight)
        clock.now = 3.0
        ctl.on_pushback("timeout")
        assert (int(1.25 * MiB), 1) == (ctl.bytes, ctl.in_flight)
        for _ in range(10):
            clock.now += 3.0
            ctl.on_pushback("HTTP 503")
        assert (256 * 1024, 1) == (ctl.bytes, ctl.in_flight)

    def test_413_sets_a_ceiling_that_holds(self) -> None:
        """After a 413 for 8 MiB the body never grows past 80 % of that again."""
        ctl, _ = _controller(start_bytes=8 * MiB)
        ctl.on_too_large(8 * MiB)
        assert int(6.4 * MiB) == ctl.bytes
        for _ in range(20):
            ctl.on_success(ctl.bytes, 0.5)
        assert int(6.4 * MiB) == ctl.bytes

    def test_converges_on_the_target_duration(self) -> None:
        """Against a cluster that takes 1 s per MiB, requests settle between half the target and
        the target (4 s target: 2-5 MiB bodies), whatever the start."""
        for start in (256 * 1024, 30 * MiB):
            ctl, _ = _controller(start_bytes=start, max_bytes=64 * MiB, target_seconds=4.0)
            for _ in range(50):
                ctl.on_success(ctl.bytes, ctl.bytes / MiB)
            assert 2 * MiB <= ctl.bytes <= 5 * MiB, start
