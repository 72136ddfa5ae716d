"""Large objects in bounded memory: inflation with a limit, the record splitter, and a large
object decoded in batches exactly as it would be whole."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.decode import Decoded, decode_object, decode_span
from ingest.inflate import Spill, Unreadable, inflate, spans

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/111122223333_CloudTrail_x.json.gz"
KiB = 1024


def _record(i: int) -> Any:
    """Records whose strings hold what fools a naive splitter, in several shapes."""
    if i % 97 == 13:
        return ["not", "an", {"object": "}, {"}]  # NotAnObject, with a fake boundary inside
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventID": f"id-{i}",
        "eventTime": f"2024-03-05T14:{i % 60:02d}:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutObject",
        "requestParameters": {
            "bucketName": "b",
            "note": 'a "quoted" },{"eventVersion": "x" } string \\ with \\"escapes\\"',
            "items": [{"a": j, "b": [{"c": "}"}, {"d": "{"}]} for j in range(i % 5)],
        },
        "resources": [{"ARN": f"arn:aws:s3:::b/{i}"}, {"ARN": "arn:aws:s3:::b"}],
    }
    if i % 50 == 7:
        rec.pop("eventTime")  # MissingEventTime
    if i % 11 == 3:  # a record whose first key is not eventVersion
        rec = {"zz": 1, **rec}
    return rec


def _body(n: int, *, pretty: bool = False) -> bytes:
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps({"Records": [_record(i) for i in range(n)]}, option=option)


def _whole_and_batched(
    data: bytes, tmp_path: Path, batch: int = 16 * KiB
) -> tuple[Decoded, list[Decoded]]:
    whole = decode_object(KEY, data)
    head = decode_object(
        KEY, data, stream_above=32 * KiB, batch_bytes=batch, spill_dir=str(tmp_path)
    )
    assert not head.failed, head.rejected
    assert head.stream is not None
    batches = [decode_span(KEY, head.stream.path, s) for s in head.stream.spans]
    os.unlink(head.stream.path)
    return whole, batches


class TestBatches:
    @pytest.mark.parametrize("pretty", [False, True])
    def test_batches_decode_exactly_as_the_whole_object(self, tmp_path: Path, pretty: bool) -> None:
        """Every document, rejection and count of a large object read in batches equals what
        decoding it whole gives, whatever braces, quotes and escapes its strings hold."""
        data = gzip.compress(_body(600, pretty=pretty), mtime=0)
        whole, batches = _whole_and_batched(data, tmp_path)
        assert len(batches) > 5
        assert whole.documents == [d for b in batches for d in b.documents]
        assert whole.rejected == [r for b in batches for r in b.rejected]
        assert (whole.records, whole.skipped) == (
            sum(b.records for b in batches),
            sum(b.skipped for b in batches),
        )

    def test_a_record_larger_than_a_batch(self, tmp_path: Path) -> None:
        """A record larger than the batch size is one batch of its own, not an error."""
        records = [_record(0), {**_record(1), "big": "x" * 100 * KiB}, _record(2)]
        data = orjson.dumps({"Records": records})
        whole, batches = _whole_and_batched(data, tmp_path, batch=8 * KiB)
        assert [d.doc_id for d in whole.documents] == ["id-0", "id-1", "id-2"]
        assert whole.documents == [d for b in batches for d in b.documents]

    def test_invalid_json_fails_the_object_before_any_batch(self, tmp_path: Path) -> None:
        """A large object with broken JSON in its middle is refused as a whole (BadJson), as a
        small one is, and its spill file is gone."""
        body = _body(600)
        broken = body[: len(body) // 2] + b'{"eventVersion": oops' + body[len(body) // 2 :]
        out = decode_object(KEY, broken, stream_above=32 * KiB, spill_dir=str(tmp_path))
        assert (True, "BadJson") == (out.failed, out.rejected[0].error_type)
        assert [] == list(tmp_path.iterdir())

    def test_a_large_object_without_records_first(self, tmp_path: Path) -> None:
        """A large document that does not begin with its Records array is refused with a reason
        that says so."""
        data = orjson.dumps({"Other": "x" * 64 * KiB, "Records": []})
        out = decode_object(KEY, data, stream_above=32 * KiB, spill_dir=str(tmp_path))
        assert (True, "NoRecords") == (out.failed, out.rejected[0].error_type)
        assert "cannot be read in batches" in out.rejected[0].reason

    def test_empty_records(self, tmp_path: Path) -> None:
        """A large object whose Records array is empty (but padded) has no spans."""
        data = b'{"Records": [' + b" " * 64 * KiB + b"]}"
        spill = tmp_path / "s.json"
        spill.write_bytes(data)
        assert [] == spans(Spill(str(spill), len(data)), 16 * KiB)


class TestInflate:
    def test_a_gzip_bomb_stops_at_the_limit(self) -> None:
        """64 MiB of zeros in 64 KiB of gzip is refused as TooLarge at a 1 MiB limit, naming
        the option."""
        bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
        data = bomb.compress(bytes(64 * 1024 * KiB)) + bomb.flush()
        assert len(data) < 100 * KiB
        with pytest.raises(Unreadable) as info:
            inflate(data, limit=1024 * KiB, spill_above=1024 * KiB, spill_dir=None)
        assert "TooLarge" == info.value.error_type
        assert "--max-object-mib" in info.value.reason

    def test_gzip_members_and_their_faults(self) -> None:
        """Concatenated members inflate as one document; a truncated stream and trailing bytes
        that are not gzip are BadGzip."""
        one, two = gzip.compress(b'{"Records":', mtime=0), gzip.compress(b"[]}", mtime=0)
        assert b'{"Records":[]}' == inflate(one + two, limit=KiB, spill_above=KiB, spill_dir=None)
        for bad in (one[:-5], one + b"garbage"):
            with pytest.raises(Unreadable) as info:
                inflate(bad, limit=KiB, spill_above=KiB, spill_dir=None)
            assert "BadGzip" == info.value.error_type

    def test_an_uncompressed_object_over_the_limit(self) -> None:
        """JSON stored uncompressed obeys the same limit."""
        with pytest.raises(Unreadable) as info:
            inflate(b'{"Records": []}' + b" " * KiB, limit=KiB, spill_above=KiB, spill_dir=None)
        assert "TooLarge" == info.value.error_type
