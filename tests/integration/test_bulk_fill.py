"""Bulk bodies are filled across objects: a backfill of many small CloudTrail files (tens of
records each, as real ones are) into the null cluster on loopback goes out in few requests of
the controller's size, not one request per file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.config import MiB
from ingest.testing import synth
from ingest.testing.faultproxy import NullCluster

from .helpers import backfill

BULK = 0.25  # MiB, also the cap: the controller cannot grow the bodies past it


@pytest.fixture
def null() -> Iterator[NullCluster]:
    server = NullCluster().start()
    try:
        yield server
    finally:
        server.stop()


class TestFilledBodies:
    def test_small_files_leave_in_full_bodies(self, tmp_path: Path, null: NullCluster) -> None:
        """300 files of 10 records: every document indexed and every object done, in about a
        twelfth as many requests as files, each at least 80 % of the bulk size but the partial
        one the end of the run sends (the linger is longer than the run)."""
        files, records = synth.write_tree(
            tmp_path / "logs", synth.generate(3000, seed=5, days=1, per_file=10)
        )
        run = backfill(
            str(tmp_path / "logs"),
            null.url,
            tmp_path,
            "--workers",
            "0",
            "--bulk-mib",
            str(BULK),
            "--max-bulk-mib",
            str(BULK),
            "--bulk-linger-ms",
            "30000",
        )
        assert 0 == run.code, run.stderr[-2000:]
        assert (files, records, 0) == (
            run.done["objects_done"],
            run.done["indexed"],
            run.done["deadlettered"],
        )
        assert records == null.docs
        sizes = sorted(body for body, _ in null.requests)
        assert len(sizes) == run.done["bulk_requests"]
        assert len(sizes) * 8 < files
        assert all(size >= 0.8 * BULK * MiB for size in sizes[1:]), sizes
        assert max(sizes) <= BULK * MiB
