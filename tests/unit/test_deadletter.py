from __future__ import annotations

from pathlib import Path

from ingest.deadletter import DeadLetter, read_entries, rewrite
from ingest.ops.replay import summarize


def _add(dl: DeadLetter, n: int, error: str = "BadJson") -> None:
    for i in range(n):
        dl.add(
            stage="decode",
            source="s3://b",
            key=f"k{i % 2}",
            error_type=error,
            reason=f"r{i}",
            record_index=i,
            record={"i": i},
        )


class TestDeadLetterFile:
    def test_rewrite_keeps_entries_written_meanwhile(self, tmp_path: Path) -> None:
        """A rewrite drops and updates by entry id and keeps entries another writer added."""
        path = tmp_path / "dl.jsonl"
        writer = DeadLetter(path)
        _add(writer, 3)
        first = read_entries(path)
        _add(writer, 1, error="Late")  # written after the replay read the file
        remaining = rewrite(
            path, {first[0]["entry_id"]}, {first[1]["entry_id"]: {**first[1], "reason": "new"}}
        )
        got = read_entries(path)
        assert 3 == remaining
        assert ["new", "r2", "r0"] == [e["reason"] for e in got]
        assert "Late" == got[-1]["error_type"]

    def test_writer_follows_a_replaced_file(self, tmp_path: Path) -> None:
        """After a rewrite replaced the file, the next entry goes into the new file."""
        path = tmp_path / "dl.jsonl"
        writer = DeadLetter(path)
        _add(writer, 2)
        rewrite(path, {read_entries(path)[0]["entry_id"]}, {})
        _add(writer, 1, error="After")
        writer.close()
        assert ["BadJson", "After"] == [e["error_type"] for e in read_entries(path)]

    def test_summary_groups_by_stage_and_reason(self, tmp_path: Path) -> None:
        """Groups count entries, distinct objects and replayable records, largest first."""
        path = tmp_path / "dl.jsonl"
        writer = DeadLetter(path)
        _add(writer, 3)
        writer.add(
            stage="fetch", source="s3://b", key="k9", error_type="SourceError", reason="denied"
        )
        groups = summarize(read_entries(path))
        assert [("decode", "BadJson", 3, 2, 3), ("fetch", "SourceError", 1, 1, 0)] == [
            (g.stage, g.error_type, g.count, len(g.objects), g.replayable) for g in groups
        ]
