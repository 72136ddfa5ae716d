"""How a run ended (``ingest.telemetry.verdict``), what is said about it (``report_run``), and the
exit code the CLI maps it to."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.cli.common import EXIT_ABORTED, EXIT_DEADLETTER, EXIT_OK, exit_code
from ingest.engine import RunStats
from ingest.telemetry import Verdict, report_run, verdict


class TestVerdict:
    @pytest.mark.parametrize(
        ("counters", "expected"),
        [
            ({}, Verdict.DONE),
            ({"skipped": 3}, Verdict.DONE),
            ({"deadlettered": 1}, Verdict.DEADLETTERS),
            ({"objects_failed": 1}, Verdict.DEADLETTERS),
            ({"objects_failed_earlier": 1}, Verdict.DEADLETTERS),
            ({"stopped": True, "deadlettered": 1}, Verdict.STOPPED),
        ],
    )
    def test_verdict(self, counters: dict[str, int], expected: Verdict) -> None:
        """Stopped wins; dead-letters of this run or earlier ones come next; else done."""
        assert expected == verdict(RunStats(**counters))

    @pytest.mark.parametrize(
        ("status", "tail", "code"),
        [
            (Verdict.DONE, False, EXIT_OK),
            (Verdict.DEADLETTERS, False, EXIT_DEADLETTER),
            (Verdict.STOPPED, False, EXIT_ABORTED),
            (Verdict.STOPPED, True, EXIT_OK),
            (Verdict.DEADLETTERS, True, EXIT_DEADLETTER),
        ],
    )
    def test_exit_code(self, status: Verdict, tail: bool, code: int) -> None:
        """A stopped backfill exits 3 (resume it); a stopped tail ended as tails do."""
        assert code == exit_code(status, tail=tail)


def _notes(err: str) -> list[str]:
    """The lines meant for a person on stderr (the structured ``run_done`` log line aside,
    which goes to stderr too once an earlier test configured JSON logs)."""
    return [line for line in err.splitlines() if not line.startswith("{")]


class TestReportRun:
    def test_done(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A clean run: the summary line on stdout and nothing to do on stderr."""
        assert Verdict.DONE == report_run(RunStats(), deadletter=Path("dl.jsonl"))
        out = capsys.readouterr()
        assert out.out.startswith("ct-ingest done: records seen 0 = indexed 0")
        assert [] == _notes(out.err)

    def test_dead_letters_and_earlier_failures(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Where the dead-letter is, and how to retry what failed in earlier runs."""
        stats = RunStats(deadlettered=2, objects_failed_earlier=3)
        assert Verdict.DEADLETTERS == report_run(stats, deadletter=Path("dl.jsonl"))
        out = capsys.readouterr()
        assert out.out.startswith("ct-ingest finished with dead-letters:")
        assert [
            "ct-ingest: dead-letter entries are in dl.jsonl",
            "ct-ingest: 3 objects failed in earlier runs and were not retried: see "
            "`ct-ingest deadletter summary`; rerun with `--retry-failed`",
        ] == _notes(out.err)

    def test_stopped(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A stopped backfill is told to resume; a stopped tail is not."""
        assert Verdict.STOPPED == report_run(RunStats(stopped=True), deadletter=Path("d"))
        assert "Run the same command again to resume." in capsys.readouterr().err
        report_run(RunStats(stopped=True), deadletter=Path("d"), tail=True)
        assert [] == _notes(capsys.readouterr().err)
