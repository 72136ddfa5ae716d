from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from ingest.decode import decode_object, document_id

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/x.json.gz"


def _record(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventVersion": "1.09",
        "eventTime": "2024-03-05T14:00:12Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketPolicy",
        "eventID": "3f1c2a9e-0000-4000-8000-000000000001",
        "recipientAccountId": "111122223333",
    }
    rec.update(over)
    return rec


def _gz(obj: Any) -> bytes:
    return gzip.compress(orjson.dumps(obj))


def _lines(ndjson: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    action, source, rest = ndjson.split(b"\n")
    assert rest == b""
    return orjson.loads(action), orjson.loads(source)


class TestDecodeObject:
    def test_records_become_create_actions_in_monthly_indices(self) -> None:
        """Each record becomes a create action with _id = eventID into PREFIX-YYYY.MM."""
        out = decode_object(
            KEY,
            _gz({"Records": [_record(), _record(eventID="b", eventTime="2024-12-31T23:59:59Z")]}),
        )
        assert (out.records, len(out.documents), out.rejected, out.failed) == (2, 2, [], False)
        action, source = _lines(out.documents[0].ndjson)
        assert action == {
            "create": {
                "_index": "cloudtrail-2024.03",
                "_id": "3f1c2a9e-0000-4000-8000-000000000001",
            }
        }
        assert source["@timestamp"] == "2024-03-05T14:00:12Z"
        assert source["eventName"] == "PutBucketPolicy"
        assert out.documents[1].index_name == "cloudtrail-2024.12"

    def test_index_prefix_is_configurable(self) -> None:
        """The index prefix comes from the caller."""
        out = decode_object(KEY, _gz({"Records": [_record()]}), index_prefix="ct-")
        assert out.documents[0].index_name == "ct-2024.03"

    def test_plain_json_is_accepted(self) -> None:
        """An uncompressed file (an archive gunzipped on disk) decodes the same way."""
        out = decode_object(KEY, orjson.dumps({"Records": [_record()]}))
        assert len(out.documents) == 1

    def test_object_level_failures(self) -> None:
        """Each kind of unreadable object fails as a whole with its own error type."""
        whole = _gz({"Records": [_record()] * 50})
        cases = {
            "EmptyObject": b"",
            "BadGzip": whole[: len(whole) // 2],
            "NotGzip": b"PK\x03\x04 this is a zip",
            "BadJson": gzip.compress(b'{"Records": [{"eventTime": '),
            "NoRecords": _gz({"digestStartTime": "2024-03-05T13:15:00Z"}),
        }
        for error_type, data in cases.items():
            out = decode_object(KEY, data)
            assert (out.failed, out.records, out.documents) == (True, 0, []), error_type
            assert [(None, error_type)] == [(r.record_index, r.error_type) for r in out.rejected]

    def test_records_not_an_array(self) -> None:
        """Records must be an array."""
        out = decode_object(KEY, _gz({"Records": {"a": 1}}))
        assert (out.failed, out.rejected[0].error_type) == (True, "NoRecords")

    def test_bad_records_are_rejected_one_by_one(self) -> None:
        """Bad records are rejected with their index and raw value; good ones still index."""
        no_time = _record(eventID="n")
        del no_time["eventTime"]
        records = [
            _record(),
            "not a record",
            no_time,
            _record(eventID="t", eventTime="yesterday"),
            _record(eventID="z", eventTime=1709647212),
        ]
        out = decode_object(KEY, _gz({"Records": records}))
        assert out.records == 5
        assert len(out.documents) == 1
        got = [(r.record_index, r.error_type, r.record) for r in out.rejected]
        assert [
            (1, "NotAnObject", "not a record"),
            (2, "MissingEventTime", no_time),
            (3, "BadEventTime", records[3]),
            (4, "BadEventTime", records[4]),
        ] == got

    def test_exclusion_rule_counts_skipped(self) -> None:
        """Records matching an exclude glob are skipped by rule and not turned into documents."""
        records = [
            _record(eventSource="kms.amazonaws.com", eventName="Decrypt", eventID="1"),
            _record(eventSource="ec2.amazonaws.com", eventName="DescribeInstances", eventID="2"),
            _record(eventID="3"),
        ]
        out = decode_object(
            KEY, _gz({"Records": records}), exclude=("kms.amazonaws.com:Decrypt", "Describe*")
        )
        assert (out.records, out.skipped, [d.doc_id for d in out.documents]) == (3, 2, ["3"])

    def test_empty_records_array(self) -> None:
        """An empty Records array is a valid file with nothing in it."""
        out = decode_object(KEY, _gz({"Records": []}))
        assert (out.failed, out.records, out.documents) == (False, 0, [])


class TestDocumentId:
    def test_event_id_is_the_id(self) -> None:
        """The eventID is the document id."""
        assert document_id({"eventID": "abc"}) == "abc"

    def test_missing_event_id_gives_a_stable_content_id(self) -> None:
        """Without an eventID the id is derived from the content, independent of key order."""
        a = document_id({"eventTime": "t", "eventName": "x"})
        b = document_id({"eventName": "x", "eventTime": "t"})
        c = document_id({"eventName": "y", "eventTime": "t"})
        assert a == b
        assert a != c
        assert a.startswith("sha256-")


class TestShapeGuards:
    def test_mapped_payload_fields_are_coerced_not_rejected(self) -> None:
        """roleArn as an object and credentials as a string are coerced; the path is noted."""
        rec = _record(
            requestParameters={"roleArn": {"odd": 1}, "other": [1]},
            responseElements={"credentials": "opaque"},
        )
        out = decode_object(KEY, _gz({"Records": [rec]}))
        _, doc = _lines(out.documents[0].ndjson)
        assert '{"odd":1}' == doc["requestParameters"]["roleArn"]
        assert {"value": "opaque"} == doc["responseElements"]["credentials"]
        assert ["requestParameters.roleArn", "responseElements.credentials"] == doc["ct"]["coerced"]
        assert {"odd": 1} == rec["requestParameters"]["roleArn"]  # the record itself is untouched

    def test_field_names_opensearch_refuses_are_renamed(self) -> None:
        """Empty, blank and dot-edged keys inside payloads are renamed; good keys stay."""
        rec = _record(
            requestParameters={
                "": 1,
                " ": 2,
                ".a": 3,
                "b.": 4,
                "c..d": 5,
                "ok.key": 6,
                "nested": [{"": {"x": 1}}],
            }
        )
        out = decode_object(KEY, _gz({"Records": [rec]}))
        _, doc = _lines(out.documents[0].ndjson)
        assert {
            "_empty_": 1,
            "_empty__": 2,
            "__a": 3,
            "_b_": 4,
            "_c__d": 5,
            "ok.key": 6,
            "nested": [{"_empty_": {"x": 1}}],
        } == doc["requestParameters"]
        assert ["requestParameters:keys"] == doc["ct"]["coerced"]


class TestEnrichmentFailure:
    def test_record_is_indexed_with_original_fields_and_counted(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When an enricher raises, the document still carries every original field, the error
        is in ct.enrich_errors, and the object counts one enrichment failure."""
        from ingest import enrich as enrich_pkg

        def broken(record: Any, ct: Any) -> Any:
            raise ValueError("bad rule")

        monkeypatch.setattr(enrich_pkg, "ENRICHERS", (*enrich_pkg.ENRICHERS, ("broken", broken)))
        rec = _record(userIdentity={"type": "IAMUser", "userName": "alice"})
        out = decode_object(KEY, _gz({"Records": [rec]}))
        _, doc = _lines(out.documents[0].ndjson)
        assert 1 == out.enrich_failed
        assert {k: doc[k] for k in rec} == rec
        assert ["broken: ValueError: bad rule"] == doc["ct"]["enrich_errors"]
        assert "alice" == doc["ct"]["actor"]["name"]
