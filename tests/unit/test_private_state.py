"""The ledger, the dead-letter and their lock files are readable by their owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.checkpoint import Ledger, ObjectCounts, Status
from ingest.deadletter import DeadLetter, rewrite
from ingest.source import ObjectRef


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, under which files come out world-readable
    yield
    os.umask(old)


class TestPrivateState:
    def test_ledger_and_its_directories(self, tmp_path: Path) -> None:
        """A new ledger is 0600, with its -wal and -shm files, in new 0700 directories."""
        path = tmp_path / "state" / "ct-ingest" / "ledger.sqlite"
        with Ledger(path) as ledger:
            ledger.record("s3://b", ObjectRef("k", "e", 1), Status.DONE, ObjectCounts(records=1))
            files = sorted(p.name for p in path.parent.iterdir())
            assert ["ledger.sqlite", "ledger.sqlite-shm", "ledger.sqlite-wal"] == files
            assert [0o600, 0o600, 0o600] == [_mode(path.parent / f) for f in files]
        assert (0o700, 0o700) == (_mode(path.parent), _mode(path.parent.parent))

    def test_deadletter_lock_and_rewrite(self, tmp_path: Path) -> None:
        """The dead-letter and its lock file are 0600, and stay so after a replay's rewrite."""
        path = tmp_path / "dl" / "deadletter.jsonl"
        dl = DeadLetter(path)
        dl.add(stage="decode", source="s3://b", key="k", error_type="BadJson", reason="x")
        dl.add(stage="decode", source="s3://b", key="k2", error_type="BadJson", reason="y")
        dl.close()
        lock = path.with_name(path.name + ".lock")
        assert (0o600, 0o600, 0o700) == (_mode(path), _mode(lock), _mode(path.parent))
        assert 2 == rewrite(path, set(), {})
        assert 0o600 == _mode(path)

    def test_existing_directories_are_left_alone(self, tmp_path: Path) -> None:
        """A directory the user made (say a shared mount) keeps its mode."""
        mount = tmp_path / "team-mount"
        mount.mkdir(mode=0o755)
        os.chmod(mount, 0o755)  # noqa: S103 (the point of the test)
        with Ledger(mount / "ledger.sqlite"):
            pass
        assert (0o755, 0o600) == (_mode(mount), _mode(mount / "ledger.sqlite"))
