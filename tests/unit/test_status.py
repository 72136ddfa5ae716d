"""``ct-ingest status``'s figures from a real ledger file: totals, the failed keys, the last run's
rate and ETA (``ingest.ops.status``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingest.checkpoint import Ledger, ObjectCounts, Status
from ingest.errors import ConfigError
from ingest.ops.status import ledger_status
from ingest.source import ObjectRef

SRC = "s3://bucket"


def _ledger(path: Path, *, listing_done: int) -> float:
    """A ledger with 4 objects done, 1 failed, 5 pending and a running run; its start time."""
    with Ledger(path) as ledger:
        ledger.record_many(
            SRC,
            [
                (ObjectRef(f"d{i}", "e", 100), Status.DONE, ObjectCounts(records=10, indexed=10))
                for i in range(4)
            ]
            + [(ObjectRef("bad", "e", 1), Status.FAILED, ObjectCounts())],
        )
        ledger.mark(SRC, [ObjectRef(f"p{i}", "e", 1) for i in range(5)], Status.PENDING)
        run_id = ledger.start_run(SRC)
        ledger.update_run(
            run_id, listed=10, listing_done=listing_done, objects_done=5, records=40, bytes=400
        )
        run = ledger.last_run()
        assert run is not None
        return run.started_at


class TestLedgerStatus:
    def test_figures_of_a_running_run(self, tmp_path: Path) -> None:
        """Totals, failed keys, the rate and an ETA from the object rate once listing is done."""
        started = _ledger(tmp_path / "l.sqlite", listing_done=1)
        info = ledger_status(tmp_path / "l.sqlite", now=started + 10)
        assert (4, 1, 5, 40) == tuple(
            info.objects[k] for k in ("done", "failed", "pending", "indexed")
        )
        assert ["bad"] == info.failed
        assert info.run is not None
        assert ("running", 10.0, 4.0, 10) == (
            info.run.status,
            info.run.seconds,
            info.run.events_per_second,
            info.run.eta_seconds,  # 5 left at 0.5 objects/s
        )

    def test_no_eta_while_listing(self, tmp_path: Path) -> None:
        """Before the listing is done the remaining work is unknown: no ETA."""
        started = _ledger(tmp_path / "l.sqlite", listing_done=0)
        info = ledger_status(tmp_path / "l.sqlite", now=started + 10)
        assert info.run is not None
        assert (False, None) == (info.run.listing_done, info.run.eta_seconds)

    def test_json_shape(self, tmp_path: Path) -> None:
        """as_dict is what `status --json` prints: ledger, objects, failed, and run if any."""
        _ledger(tmp_path / "l.sqlite", listing_done=1)
        info = ledger_status(tmp_path / "l.sqlite", now=time.time()).as_dict()
        assert ["ledger", "objects", "failed", "run"] == list(info)
        assert str(tmp_path / "l.sqlite") == info["ledger"]
        assert {"id", "status", "started", "eta_seconds", "events_per_second"} <= set(info["run"])

    def test_an_empty_ledger_has_no_run(self, tmp_path: Path) -> None:
        """A ledger without runs has totals and no run."""
        Ledger(tmp_path / "l.sqlite").close()
        info = ledger_status(tmp_path / "l.sqlite")
        assert (None, [], 0) == (info.run, info.failed, info.objects["objects"])
        assert "run" not in info.as_dict()

    def test_no_ledger_is_a_configuration_error(self, tmp_path: Path) -> None:
        """A missing ledger is named, and not created."""
        with pytest.raises(ConfigError, match="no checkpoint ledger at"):
            ledger_status(tmp_path / "missing.sqlite")
        assert not (tmp_path / "missing.sqlite").exists()
