"""The one translation boundary of each connection (S3, SQS, OpenSearch): ours pass through,
known library errors keep their transient or terminal meaning, anything else comes out terminal
with the original as its cause; and the connections retry their own calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager, AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from ingest import cluster
from ingest.config import LocalLocation, S3Location, SinkConfig
from ingest.errors import (
    IngestError,
    SinkError,
    SinkUnavailable,
    SourceError,
    SourceUnavailable,
    TerminalError,
)
from ingest.ops import alerts, dashboards, report
from ingest.queue import SqsQueue
from ingest.retry import RetryPolicy
from ingest.sink import OpenSearchBulkClient, TooLarge
from ingest.source import LocalStore, ObjectRef, S3Store, s3_errors, sqs_errors

FAST = RetryPolicy(initial=0.001, maximum=0.01, deadline=2)
BOUNDARIES: dict[str, tuple[Callable[[str], AbstractContextManager[None]], type[IngestError]]] = {
    "s3": (s3_errors, SourceError),
    "sqs": (sqs_errors, SourceError),
    "opensearch": (cluster.opensearch_errors, SinkError),
}


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Operation",
    )


def _raised(boundary: Callable[[str], AbstractContextManager[None]], exc: Exception) -> Exception:
    """What comes out of ``boundary`` when ``exc`` is raised inside it."""
    try:
        with boundary("GET thing"):
            raise exc
    except Exception as out:
        return out
    raise AssertionError("the boundary swallowed the error")


class _Script:
    """An async callable that raises the given errors in turn, then returns ``answer``."""

    def __init__(self, answer: Any, *errors: Exception) -> None:
        self.answer = answer
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.answer


class _Namespace:
    def __init__(self, **calls: Any) -> None:
        self.__dict__.update(calls)


class TestBoundaries:
    @pytest.mark.parametrize("name", sorted(BOUNDARIES))
    def test_unknown_errors_come_out_terminal_with_their_cause(self, name: str) -> None:
        """An exception the boundary does not know becomes the connection's terminal error,
        named, with the original as ``__cause__``."""
        boundary, terminal = BOUNDARIES[name]
        original = TypeError("'NoneType' object is not subscriptable")
        out = _raised(boundary, original)
        assert terminal is type(out)
        assert isinstance(out, TerminalError)
        assert original is out.__cause__
        assert "GET thing: unexpected TypeError: 'NoneType' object is not subscriptable" == str(out)

    @pytest.mark.parametrize("name", sorted(BOUNDARIES))
    def test_our_errors_pass_through_unchanged(self, name: str) -> None:
        """An error of the tree raised inside a boundary is the one that comes out."""
        boundary, _ = BOUNDARIES[name]
        ours = SinkUnavailable("bulk: HTTP 503")
        assert ours is _raised(boundary, ours)

    @pytest.mark.parametrize("name", sorted(BOUNDARIES))
    def test_cancellation_is_not_translated(self, name: str) -> None:
        """Cancelling a task inside a boundary cancels it."""
        boundary, _ = BOUNDARIES[name]

        async def call() -> None:
            with boundary("GET thing"):
                await asyncio.sleep(10)

        async def go() -> None:
            task = asyncio.create_task(call())
            await asyncio.sleep(0)
            task.cancel()
            await task

        with pytest.raises(asyncio.CancelledError):
            asyncio.run(go())

    @pytest.mark.parametrize(
        ("boundary", "exc", "expected"),
        [
            (s3_errors, _client_error("SlowDown", 503), SourceUnavailable),
            (s3_errors, _client_error("InternalError", 500), SourceUnavailable),
            (s3_errors, EndpointConnectionError(endpoint_url="http://s3"), SourceUnavailable),
            (s3_errors, TimeoutError(), SourceUnavailable),
            (s3_errors, ConnectionResetError(), SourceUnavailable),
            (s3_errors, _client_error("NoSuchKey", 404), SourceError),
            (s3_errors, _client_error("AccessDenied", 403), SourceError),
            (
                sqs_errors,
                _client_error("AWS.SimpleQueueService.RequestThrottled", 403),
                SourceUnavailable,
            ),
            (sqs_errors, _client_error("KmsThrottled", 400), SourceUnavailable),
            (
                sqs_errors,
                _client_error("AWS.SimpleQueueService.NonExistentQueue", 400),
                SourceError,
            ),
            (cluster.opensearch_errors, OSConnectionError("N/A", "refused", None), SinkUnavailable),
            (cluster.opensearch_errors, TransportError(429, "too many", {}), SinkUnavailable),
            (cluster.opensearch_errors, TransportError(503, "unavailable", {}), SinkUnavailable),
            (cluster.opensearch_errors, TimeoutError(), SinkUnavailable),
            (cluster.opensearch_errors, TransportError(400, "bad request", {}), SinkError),
            (cluster.opensearch_errors, TransportError(403, "forbidden", {}), SinkError),
        ],
    )
    def test_known_errors_keep_their_meaning(
        self,
        boundary: Callable[[str], AbstractContextManager[None]],
        exc: Exception,
        expected: type[IngestError],
    ) -> None:
        """Throttling, 5xx and connection trouble stay transient; refusals stay terminal."""
        out = _raised(boundary, exc)
        assert expected is type(out)
        assert exc is out.__cause__
        assert str(out).startswith("GET thing: ")

    def test_sqs_throttling_answered_403_is_transient_only_for_sqs(self) -> None:
        """SQS's own throttling code is transient although answered 403; S3 calls a 403
        terminal."""
        exc = _client_error("AWS.SimpleQueueService.RequestThrottled", 403)
        assert "GET thing: RequestThrottled no" == str(_raised(sqs_errors, exc))
        assert isinstance(_raised(s3_errors, exc), SourceError)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return self.data


def _s3(**calls: Any) -> S3Store:
    return S3Store(S3Location("bucket", ""), _Namespace(**calls), AsyncExitStack(), FAST)


class TestS3Store:
    def test_list_page_retries_throttling(self) -> None:
        """SlowDown twice, then the page: the store retried its own call."""
        listing = _Script(
            {"Contents": [{"Key": "k", "ETag": '"e"', "Size": 1}]},
            _client_error("SlowDown", 503),
            _client_error("SlowDown", 503),
        )
        page = asyncio.run(_s3(list_objects_v2=listing).list_page("", delimiter=None))
        assert (["k"], 3) == ([r.key for r in page.objects], listing.calls)

    def test_get_retries_a_short_read(self) -> None:
        """A body shorter than the listing said is transient: read again."""
        bodies = iter([b"ab", b"abc"])

        async def get_object(**kwargs: Any) -> dict[str, Any]:
            return {"Body": _Body(next(bodies))}

        data = asyncio.run(_s3(get_object=get_object).get(ObjectRef("k", "e", 3)))
        assert b"abc" == data

    def test_an_unknown_error_is_terminal_and_not_retried(self) -> None:
        """A malformed answer (a KeyError in botocore's hands) is a SourceError, tried once."""
        head = _Script(None, KeyError("ETag"))
        with pytest.raises(SourceError) as info:
            asyncio.run(_s3(head_object=head).head("k"))
        assert "head s3://bucket/k: unexpected KeyError: 'ETag'" == str(info.value)
        assert isinstance(info.value.__cause__, KeyError)
        assert 1 == head.calls

    def test_access_denied_is_terminal(self) -> None:
        """A 403 comes out as SourceError at once."""
        get = _Script(None, _client_error("AccessDenied", 403))
        with pytest.raises(SourceError, match="get s3://bucket/k: AccessDenied no"):
            asyncio.run(_s3(get_object=get).get(ObjectRef("k", "e", 1)))
        assert 1 == get.calls


class TestLocalStore:
    def test_a_vanished_file_is_terminal(self, tmp_path: Path) -> None:
        """A listed file gone before it is read is a SourceError naming it."""
        store = LocalStore(LocalLocation(tmp_path), FAST)
        with pytest.raises(SourceError, match="file vanished"):
            asyncio.run(store.get(ObjectRef("gone.json.gz", "e", 1)))


class TestSqsQueue:
    def test_throttling_is_retried(self) -> None:
        """RequestThrottled (403) once, then the messages."""
        receive = _Script(
            {"Messages": [{"MessageId": "m"}]},
            _client_error("AWS.SimpleQueueService.RequestThrottled", 403),
        )
        queue = SqsQueue(_Namespace(receive_message=receive), "https://sqs/q", FAST)
        assert [{"MessageId": "m"}] == asyncio.run(queue.receive(1, 30))
        assert 2 == receive.calls

    def test_an_unknown_error_is_terminal(self) -> None:
        """Anything the boundary does not know is a SourceError naming the call and queue."""
        delete = _Script(None, AttributeError("no receipt"))
        queue = SqsQueue(_Namespace(delete_message_batch=delete), "https://sqs/q", FAST)
        with pytest.raises(SourceError) as info:
            asyncio.run(queue.delete(["r"]))
        assert str(info.value).startswith("delete_message_batch https://sqs/q: unexpected")
        assert 1 == delete.calls


class TestOpenSearchBulkClient:
    @pytest.mark.parametrize(
        ("exc", "expected"),
        [
            (TransportError(413, "too large", {}), TooLarge),
            (TransportError(503, "unavailable", {}), SinkUnavailable),
            (TimeoutError(), SinkUnavailable),
            (ValueError("not JSON"), SinkError),
        ],
    )
    def test_errors_come_out_of_the_boundary(
        self, exc: Exception, expected: type[IngestError]
    ) -> None:
        """413 is TooLarge, the transient ones stay transient, the unknown is terminal."""
        client = OpenSearchBulkClient(_Namespace(bulk=_Script({}, exc)))
        with pytest.raises(IngestError) as info:
            asyncio.run(client.bulk(b"{}\n{}\n"))
        assert expected is type(info.value)
        assert exc is info.value.__cause__


def _sink(policy: RetryPolicy = FAST) -> SinkConfig:
    return SinkConfig(url="http://127.0.0.1:9200", retry=policy)


class TestClusterOperations:
    def test_ping_retries_under_the_policy(self) -> None:
        """Unreachable twice, then the version."""
        info = _Script(
            {"version": {"number": "2.19.0"}},
            OSConnectionError("N/A", "refused", None),
            TransportError(503, "unavailable", {}),
        )
        assert "2.19.0" == asyncio.run(cluster.ping(_Namespace(info=info), FAST))  # type: ignore[arg-type]
        assert 3 == info.calls

    def test_ping_without_a_policy_tries_once(self) -> None:
        """The health pinger's ping is one try."""
        info = _Script({}, TransportError(503, "unavailable", {}))
        with pytest.raises(SinkUnavailable, match="GET /: HTTP 503"):
            asyncio.run(cluster.ping(_Namespace(info=info)))  # type: ignore[arg-type]
        assert 1 == info.calls

    def test_ensure_template_is_retried(self) -> None:
        """A 503 on the existence check and on a component template: both tried again, and the
        templates are installed."""
        puts = _Script({}, TransportError(502, "bad gateway", {}))
        client = _Namespace(
            indices=_Namespace(
                exists_index_template=_Script(False, TransportError(503, "unavailable", {})),
                put_index_template=_Script({}),
            ),
            cluster=_Namespace(put_component_template=puts),
        )
        assert asyncio.run(cluster.ensure_template(client, _sink()))  # type: ignore[arg-type]
        assert 4 == puts.calls  # three components, one of them twice

    def test_backfill_mode_is_retried_and_translated(self) -> None:
        """prepare retries a 429; restore turns an unknown error into a SinkError."""
        client = _Namespace(
            indices=_Namespace(
                exists=_Script(True, TransportError(429, "too many", {})),
                put_settings=_Script({}),
            ),
            transport=_Namespace(perform_request=_Script(None)),
        )
        mode = cluster.BackfillMode(client, FAST)  # type: ignore[arg-type]
        asyncio.run(mode.prepare("cloudtrail-2024.03"))
        assert ["cloudtrail-2024.03"] == mode.touched
        with pytest.raises(SinkError) as info:
            asyncio.run(mode.restore())  # the simulate answer is None: .get fails
        assert isinstance(info.value.__cause__, AttributeError)

    def test_a_cluster_down_for_good_ends_at_the_deadline(self) -> None:
        """ensure_template on a cluster that never answers raises SinkUnavailable once the
        deadline has passed."""
        refused = OSConnectionError("N/A", "refused", None)
        client = _Namespace(
            indices=_Namespace(exists_index_template=_Script(False, *[refused] * 10_000))
        )
        policy = RetryPolicy(initial=0.01, maximum=0.05, deadline=0.3)
        with pytest.raises(SinkUnavailable, match="cannot reach OpenSearch"):
            asyncio.run(cluster.ensure_template(client, _sink(policy)))  # type: ignore[arg-type]


class _SyncClient:
    """A blocking client whose every call raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.transport = self

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    search = count = perform_request = _fail


class TestOperations:
    @pytest.mark.parametrize(
        ("exc", "expected"),
        [
            (OSConnectionError("N/A", "refused", None), SinkUnavailable),
            (TransportError(400, "bad query", {}), SinkError),
            (KeyError("aggregations"), SinkError),
        ],
    )
    def test_reports_raise_only_the_tree(self, exc: Exception, expected: type[IngestError]) -> None:
        """A report's searches go through the OpenSearch boundary."""
        with pytest.raises(IngestError) as info:
            next(report.composite(_SyncClient(exc), "cloudtrail", {}, ["eventName"]))
        assert expected is type(info.value)

    @pytest.mark.parametrize(
        "exc",
        [TransportError(400, "bad", {}), TransportError(404, "no handler", {}), TypeError("?")],
    )
    def test_alerts_errors_are_ours_and_never_a_missing_plugin(self, exc: Exception) -> None:
        """No refusal is read as a cluster without the plugins (setup asks _cat/plugins for
        that): each is a SinkError naming the call, with the original as its cause."""
        with pytest.raises(SinkError) as info:
            alerts.install_alerts(
                _SyncClient(exc),
                channel="ct-ingest-cloudtrail-webhook",
                alias="cloudtrail",
                threshold=20,
                resource_pattern="*",
            )
        assert str(info.value).startswith("alerts: search the monitors: ")
        assert exc is info.value.__cause__

    def test_dashboards_with_a_bad_url_is_ours(self) -> None:
        """A URL urllib cannot use comes out as a SinkError, not a ValueError."""
        with pytest.raises(SinkError) as info:
            dashboards.import_saved_objects("dashboards", [])
        assert isinstance(info.value.__cause__, ValueError)
