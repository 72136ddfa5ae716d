"""The SQS message shapes tail understands, as pure functions."""

from __future__ import annotations

import json

from ingest.ops.report import iam_action
from ingest.tail import parse_notification

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
