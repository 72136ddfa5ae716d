"""A run's bounded resources: the decoding processes (and what happens when one of them dies),
and the budget of bytes in flight.

A :class:`~concurrent.futures.ProcessPoolExecutor` whose process is killed (SIGKILL from the
kernel's OOM killer, or anyone's) is broken for good: every call in it and every later one fails
with ``BrokenProcessPool``. :class:`WorkerPool` instead replaces the broken pool with a fresh one
and tries each call that was in it once more, alone, in a process of its own, so that a call
that merely shared the pool with the culprit succeeds, and the culprit (it dies alone too) raises
:class:`~ingest.errors.WorkerDied`: one poison object costs that object, not the run.

With ``workers=0`` calls run in a thread of this process (tests, debugging); nothing can die.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import structlog

from ingest.errors import WorkerDied

__all__ = ["EXPANSION", "ByteBudget", "WorkerPool"]

_log = structlog.get_logger("ingest.pool")
T = TypeVar("T")


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group; the parent decides how to stop, not the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Decoding allocates millions of short-lived, acyclic dicts: the default gen-0 threshold
    # (700) runs the collector constantly for nothing. Measured +11 % transform throughput
    # (docs/benchmarks.md); freezing what the worker imported keeps it out of every scan.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _executor(workers: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["ingest.decode"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)


class WorkerPool:
    """``workers`` decoding processes that outlive the death of any of them; call
    :meth:`shutdown` when done."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.deaths = 0  # pools broken by a dying process
        self._pool = _executor(workers) if workers else None
        self._generation = 0
        self._alone: ProcessPoolExecutor | None = None
        self._alone_lock = asyncio.Lock()

    async def run(self, fn: Callable[[], T], what: str) -> T:
        """``fn()`` in a worker process; raises :class:`WorkerDied` when its process dies both
        in the pool and alone (``what`` names the work in logs and the error)."""
        if self._pool is None:
            return await asyncio.to_thread(fn)
        loop = asyncio.get_running_loop()
        generation = self._generation
        try:
            return await loop.run_in_executor(self._pool, fn)
        except BrokenProcessPool:
            self._restart(generation, what)
        async with self._alone_lock:  # one suspect at a time, beside the fresh pool
            if self._alone is None:
                self._alone = _executor(1)
            try:
                return await loop.run_in_executor(self._alone, fn)
            except BrokenProcessPool:
                self._alone.shutdown(wait=False, cancel_futures=True)
                self._alone = None
                self.deaths += 1
                _log.error("worker_died", work=what, alone=True)
                raise WorkerDied(
                    f"{what}: the decoding process died on it twice, once in the pool and once"
                    " alone (killed, or out of memory)"
                ) from None

    def _restart(self, generation: int, what: str) -> None:
        if generation != self._generation:
            return  # another call saw the same death first and restarted the pool
        self.deaths += 1
        _log.warning("worker_died", work=what, alone=False, restarting=self.workers)
        broken, self._pool = self._pool, _executor(self.workers)
        self._generation += 1
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        for pool in (self._pool, self._alone):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._alone = None


# Compressed bytes of a CloudTrail file become roughly this many bytes in flight (JSON ~10x,
# parsed objects and bulk NDJSON on top), which is what the in-flight budget has to bound.
EXPANSION = 12


class ByteBudget:
    """Bounds the bytes of objects between fetch and settle, whatever the archive's size.

    An object larger than the whole budget still goes, alone; nothing ever waits forever.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._held: dict[str, int] = {}
        self._freed = asyncio.Event()

    async def acquire(self, key: str, size: int) -> None:
        want = max(1, min(size, self.limit))
        while self.used and self.used + want > self.limit:
            self._freed.clear()
            await self._freed.wait()
        self.used += want
        self._held[key] = self._held.get(key, 0) + want

    def release(self, key: str) -> None:
        self.used -= self._held.pop(key, 0)
        self._freed.set()
