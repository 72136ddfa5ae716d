"""The SQS message shapes tail understands and enqueue writes, as pure functions; and the shard
an orchestrator's index variables give."""

from __future__ import annotations

import json

import pytest

from ingest.config import build_settings, orchestrator_shard
from ingest.errors import ConfigError
from ingest.ops.report import iam_action
from ingest.source import ObjectRef
from ingest.tail import notification_bodies, parse_notification
from ingest.tail.sqs import MESSAGE_BYTES, _records

KEY = (
    "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/"
    "111122223333_CloudTrail_us-east-1_20240305T1410Z_a b+c.json.gz"
)
ENCODED = KEY.replace(" ", "+").replace("+c", "%2Bc").replace("/", "%2F")


def _s3_event(
    bucket: str = "trail", key: str = ENCODED, name: str = "ObjectCreated:Put"
) -> dict[str, object]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": name,
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}},
            }
        ]
    }


class TestParseNotification:
    def test_direct_s3_event_with_url_encoded_key(self) -> None:
        """S3 notifications URL-encode keys (spaces as +); the real key comes back."""
        assert [KEY] == parse_notification(json.dumps(_s3_event()), "trail")

    def test_sns_wrapped(self) -> None:
        """An SNS envelope around an S3 event is unwrapped."""
        body = json.dumps({"Type": "Notification", "Message": json.dumps(_s3_event())})
        assert [KEY] == parse_notification(body, "trail")

    def test_eventbridge_object_created(self) -> None:
        """EventBridge carries the key unencoded in detail.object.key."""
        body = json.dumps(
            {
                "detail-type": "Object Created",
                "source": "aws.s3",
                "detail": {"bucket": {"name": "trail"}, "object": {"key": KEY}},
            }
        )
        assert [KEY] == parse_notification(body, "trail")

    def test_cloudtrail_sns_delivery_notice(self) -> None:
        """CloudTrail's own SNS notice lists the delivered keys."""
        body = json.dumps(
            {
                "Type": "Notification",
                "Message": json.dumps(
                    {"s3Bucket": "trail", "s3ObjectKey": [KEY, KEY.replace("a b", "zz")]}
                ),
            }
        )
        assert [KEY, KEY.replace("a b", "zz")] == parse_notification(body, "trail")

    def test_ignored_shapes(self) -> None:
        """Test events, other buckets and deletions name nothing to do."""
        assert [] == parse_notification(
            json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}), "trail"
        )
        assert [] == parse_notification(json.dumps(_s3_event(bucket="other")), "trail")
        assert [] == parse_notification(json.dumps(_s3_event(name="ObjectRemoved:Delete")), "trail")

    def test_poison(self) -> None:
        """Unparseable or unknown bodies are None: left for the redrive policy."""
        for body in (
            "not json",
            "[1, 2]",
            json.dumps({"hello": "world"}),
            json.dumps({"Records": [{"no": "s3"}]}),
        ):
            assert None is parse_notification(body, "trail")


class TestIamAction:
    def test_names(self) -> None:
        """Event source and name become an IAM action; dated Lambda names lose the date."""
        assert "s3:PutBucketPolicy" == iam_action("s3.amazonaws.com", "PutBucketPolicy")
        assert "lambda:UpdateFunctionConfiguration" == iam_action(
            "lambda.amazonaws.com", "UpdateFunctionConfiguration20150331v2"
        )
        assert "cloudwatch:GetMetricData" == iam_action("monitoring.amazonaws.com", "GetMetricData")


class TestEnqueuedBodies:
    """The bodies `ct-ingest enqueue` writes: S3 event notifications that tail reads back."""

    REFS = tuple(
        ObjectRef(KEY.replace("1410Z", f"{i:04d}Z"), f"etag{i}", 1000 + i) for i in range(1000)
    )

    def test_they_read_back_as_the_same_keys(self) -> None:
        """Every key comes back from parse_notification, in order, once."""
        bodies = list(notification_bodies("trail", self.REFS, per_message=100))
        keys = [k for body, _ in bodies for k in parse_notification(body.decode(), "trail") or []]
        assert [r.key for r in self.REFS] == keys
        assert [r.key for _, refs in bodies for r in refs] == keys

    def test_ten_always_fit_one_batch(self) -> None:
        """No body carries more than per_message keys, and ten bodies stay under 256 KiB."""
        bodies = list(notification_bodies("trail", self.REFS, per_message=500))
        assert all(len(body) <= MESSAGE_BYTES for body, _ in bodies)
        assert 10 * MESSAGE_BYTES <= 256 * 1024
        assert 3 == max(len(r) for _, r in notification_bodies("trail", self.REFS, per_message=3))

    def test_they_carry_size_and_etag(self) -> None:
        """The consumer takes an enqueued object as listed (no HEAD): its size and ETag."""
        (body, _), *_ = notification_bodies("trail", self.REFS[:1])
        found = _records(body.decode(), "trail")
        assert found is not None
        assert {self.REFS[0].key: ObjectRef(self.REFS[0].key, "etag0", 1000)} == found[1]

    def test_plain_s3_notifications_carry_no_listing(self) -> None:
        """S3's own notifications are checked with HEAD as before (no configurationId of ours)."""
        assert ([KEY], {}) == _records(json.dumps(_s3_event()), "trail")


class TestOrchestratorShard:
    """--shard from the orchestrators' index variables, when not given."""

    def test_indexed_job_and_array_job(self) -> None:
        """Kubernetes Indexed Jobs (index + the count the manifest passes), AWS Batch arrays."""
        assert "3/8" == orchestrator_shard({"JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "8"})
        assert "0/4" == orchestrator_shard(
            {"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "4"}
        )
        assert None is orchestrator_shard({"HOME": "/root"})

    def test_an_index_without_a_count_is_an_error(self) -> None:
        """Half a partition would silently take the wrong objects: a ConfigError instead."""
        with pytest.raises(ConfigError, match="JOB_COMPLETIONS is not"):
            orchestrator_shard({"JOB_COMPLETION_INDEX": "1"})

    def test_only_commands_that_shard_take_it(self) -> None:
        """backfill (which has --shard) takes the variables; tail (which has not) ignores them,
        so an SQS worker in an Indexed Job never leaves another shard's messages behind."""
        env = {"JOB_COMPLETION_INDEX": "1", "JOB_COMPLETIONS": "3"}
        base = {"source": "s3://b", "opensearch": "http://127.0.0.1:9200"}
        assert (1, 3) == build_settings({**base, "shard": None}, env).shard
        assert (0, 2) == build_settings({**base, "shard": "0/2"}, env).shard
        assert None is build_settings(base, env).shard
