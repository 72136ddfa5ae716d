"""One plan per record: the backfill (decode_object) and verify (expected_documents) agree on
every record's fate, index and _id, because both ask plan_record."""

from __future__ import annotations

import gzip
from typing import Any

import orjson

from ingest.decode import (
    Planned,
    Rejected,
    Skip,
    decode_object,
    exclusion_matcher,
    expected_documents,
    plan_record,
)

KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/x.json.gz"
EXCLUDE = ("kms.amazonaws.com:Decrypt", "Describe*")


def _record(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventTime": "2024-03-05T14:00:12Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketPolicy",
        "eventID": "3f1c2a9e-0000-4000-8000-000000000001",
    }
    rec.update(over)
    return rec


def _without(name: str, **over: Any) -> dict[str, Any]:
    rec = _record(**over)
    del rec[name]
    return rec


# Each tricky record with the fate it must meet: ("indexed", index, _id), ("rejected",
# error_type) or ("skipped",).
TRICKY: list[tuple[object, tuple[str, ...]]] = [
    (_record(), ("indexed", "cloudtrail-2024.03", "3f1c2a9e-0000-4000-8000-000000000001")),
    (
        _record(eventID="e2", eventTime="2024-12-31T23:30:00-02:00"),
        ("indexed", "cloudtrail-2024.12", "e2"),  # the month as written, not as in UTC
    ),
    (_record(eventSource="kms.amazonaws.com", eventName="Decrypt"), ("skipped",)),
    (_record(eventSource="ec2.amazonaws.com", eventName="DescribeVpcs"), ("skipped",)),
    (_without("eventTime", eventName="DescribeVpcs"), ("skipped",)),  # the rule comes first
    (_without("eventTime", eventID="e6"), ("rejected", "MissingEventTime")),
    (_record(eventID="e7", eventTime=None), ("rejected", "MissingEventTime")),
    (_record(eventID="e8", eventTime="yesterday"), ("rejected", "BadEventTime")),
    (_record(eventID="e9", eventTime="2024-03-05T14:00:12"), ("rejected", "BadEventTime")),
    (_record(eventID="e10", eventTime=1709647212), ("rejected", "BadEventTime")),
    ("not a record", ("rejected", "NotAnObject")),
    (None, ("rejected", "NotAnObject")),
    (["eventTime", "2024-03-05T14:00:12Z"], ("rejected", "NotAnObject")),
    (_record(eventID="x" * 513), ("indexed", "cloudtrail-2024.03", "sha256-")),
    (_record(eventID="é" * 257), ("indexed", "cloudtrail-2024.03", "sha256-")),  # 514 bytes
    (_record(eventID=""), ("indexed", "cloudtrail-2024.03", "sha256-")),
    (_record(eventID=42), ("indexed", "cloudtrail-2024.03", "sha256-")),
    (_without("eventID"), ("indexed", "cloudtrail-2024.03", "sha256-")),
    (_without("eventSource", eventID="e19"), ("indexed", "cloudtrail-2024.03", "e19")),
]


def _data() -> bytes:
    return gzip.compress(orjson.dumps({"Records": [rec for rec, _ in TRICKY]}))


def _fates_from_decode(data: bytes) -> dict[int, tuple[str, ...]]:
    out = decode_object(KEY, data, exclude=EXCLUDE)
    fates: dict[int, tuple[str, ...]] = dict.fromkeys(range(out.records), ("skipped",))
    for doc in out.documents:
        fates[doc.record_index] = ("indexed", doc.index_name, doc.doc_id)
    for bad in out.rejected:
        fates[bad.record_index if bad.record_index is not None else -1] = ("rejected",)
    assert out.skipped == sum(f == ("skipped",) for f in fates.values())
    return fates


def _fates_from_verify(data: bytes, records: int) -> dict[int, tuple[str, ...]]:
    exp = expected_documents(KEY, data, exclude=EXCLUDE)
    fates: dict[int, tuple[str, ...]] = dict.fromkeys(range(records), ("skipped",))
    for index, doc_id, i in exp.ids:
        fates[i] = ("indexed", index, doc_id)
    for i in exp.rejected:
        fates[i] = ("rejected",)
    assert exp.skipped == sum(f == ("skipped",) for f in fates.values())
    return fates


def _planned_fate(record: object, i: int) -> tuple[str, ...]:
    plan = plan_record(record, "cloudtrail-", exclusion_matcher(EXCLUDE), i)
    if isinstance(plan, Planned):
        return ("indexed", plan.index_name, plan.doc_id)
    if isinstance(plan, Rejected):
        return ("rejected", plan.error_type)
    assert plan is Skip.BY_RULE
    return ("skipped",)


class TestPlanRecord:
    def test_decode_and_verify_agree_on_every_record(self) -> None:
        """For every tricky record, decode and verify agree on its fate, index and _id."""
        decoded = _fates_from_decode(_data())
        assert len(TRICKY) == len(decoded)
        assert decoded == _fates_from_verify(_data(), len(TRICKY))

    def test_decode_does_what_the_plan_says(self) -> None:
        """Decode indexes each record where plan_record places it and rejects it as plan_record
        does (same error type and reason), and skips what plan_record skips."""
        out = decode_object(KEY, _data(), exclude=EXCLUDE)
        made: dict[int, tuple[object, ...]] = {
            d.record_index: ("indexed", d.index_name, d.doc_id) for d in out.documents
        }
        made.update({r.record_index or 0: ("rejected", r) for r in out.rejected})
        excluded = exclusion_matcher(EXCLUDE)
        planned: dict[int, tuple[object, ...]] = {}
        for i, (record, _) in enumerate(TRICKY):
            plan = plan_record(record, "cloudtrail-", excluded, i)
            if isinstance(plan, Planned):
                planned[i] = ("indexed", plan.index_name, plan.doc_id)
            elif isinstance(plan, Rejected):
                planned[i] = ("rejected", plan)
        assert planned == made

    def test_each_record_meets_its_fate(self) -> None:
        """Each tricky record is indexed, rejected (with its error type) or skipped as the
        table says."""
        got = [_planned_fate(record, i) for i, (record, _) in enumerate(TRICKY)]
        for fate, (_, want) in zip(got, TRICKY, strict=True):
            if want[0] == "indexed" and want[2] == "sha256-":
                fate = (*fate[:2], fate[2][:7])
            assert want == fate

    def test_a_content_id_does_not_depend_on_key_order(self) -> None:
        """A record without a usable eventID gets the same content id from decode and verify,
        whatever its key order."""
        a = {"eventTime": "2024-03-05T14:00:12Z", "eventName": "x", "eventID": "y" * 600}
        b = dict(reversed(list(a.items())))
        data = gzip.compress(orjson.dumps({"Records": [a, b]}))
        ids = {d.doc_id for d in decode_object(KEY, data).documents}
        assert ids == {doc_id for _, doc_id, _ in expected_documents(KEY, data).ids}
        assert 1 == len(ids)
