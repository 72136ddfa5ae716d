"""The S3 latency model (``ingest.testing.s3model``) answers as S3 does: every request here goes
to it and to moto's server holding the same tree, through boto3 and through ct-ingest's own
aiobotocore store, and the answers are compared (keys, common prefixes, ETags, sizes, bodies,
error codes). Zero latency, a small tree: fast."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ingest.config import Filters
from ingest.listing import list_log_objects
from ingest.source import ObjectRef, Page, _read_listing
from ingest.testing import synth
from ingest.testing.s3model import Latency, S3Model, open_store
from ingest.testing.servers import MotoServer

pytestmark = pytest.mark.integration

BUCKET = "trail"
EXTRA = {
    "AWSLogs/ConfigWritabilityCheckFile": b"",
    "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/04/digest.json.gz": b"{}",
    "notes/a b+c=d.txt": b"spaces and signs",
    "top.txt": b"0123456789" * 10,
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 small log files over 3 accounts, 3 regions and 2 days, and a few keys beside them."""
    root = tmp_path_factory.mktemp("s3model")
    synth.write_tree(root, synth.generate(270, seed=11, days=2, per_file=3))
    for key, body in EXTRA.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)
    return root


@pytest.fixture(scope="module")
def model(tree: Path) -> Iterator[S3Model]:
    server = S3Model(tree, bucket=BUCKET, latency=Latency(0, 0, 0)).start()
    yield server
    server.stop()


def _client(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def clients(moto_server: MotoServer, tree: Path, model: S3Model) -> tuple[Any, Any]:
    """(moto, model), both holding ``tree`` as bucket ``trail`` (moto emptied first)."""
    moto_server.reset()
    moto = _client(moto_server.url)
    moto.create_bucket(Bucket=BUCKET)
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        moto.put_object(
            Bucket=BUCKET, Key=path.relative_to(tree).as_posix(), Body=path.read_bytes()
        )
    return moto, _client(model.url)


def _pages(client: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following the server's own continuation tokens."""
    pages = []
    token: str | None = None
    while True:
        resp = client.list_objects_v2(
            Bucket=BUCKET, **kwargs, **({"ContinuationToken": token} if token else {})
        )
        pages.append(
            {
                "keys": [(o["Key"], o["ETag"], o["Size"]) for o in resp.get("Contents", [])],
                "prefixes": [p["Prefix"] for p in resp.get("CommonPrefixes", [])],
                "count": resp["KeyCount"],
                "truncated": resp["IsTruncated"],
                "prefix": resp.get("Prefix"),
                "delimiter": resp.get("Delimiter"),
                # S3 echoes StartAfter when sent; moto only on the first page.
                "start_after": None if token else resp.get("StartAfter"),
            }
        )
        token = resp.get("NextContinuationToken")
        if not resp["IsTruncated"]:
            return pages
        assert token


def _error(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    resp = info.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


class TestListObjectsV2:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"Prefix": "AWSLogs/", "Delimiter": "/"},
            {"Delimiter": "/"},
            {"Prefix": "AWSLogs/111122223333/CloudTrail/", "Delimiter": "/"},
            {"Prefix": "AWSLogs/4", "Delimiter": "/"},
            {"Prefix": "AWSLogs/", "MaxKeys": 7},
            {"Prefix": "AWSLogs/o-exampleorg1/", "Delimiter": "/", "MaxKeys": 1},
            {"Prefix": "AWSLogs/111122223333/", "StartAfter": "AWSLogs/111122223333/CloudTrail/eu"},
            {"Delimiter": "/", "StartAfter": "AWSLogs/"},
            {"Prefix": "AWSLogs/444455556666/CloudTrail/us-west-2/2024/03/", "Delimiter": "/"},
            {"Prefix": "AWSLogs/", "Delimiter": "/2024/", "MaxKeys": 2},
            {"Prefix": "notes/"},
            {"Prefix": "nothing/here/"},
        ],
    )
    def test_pages_match_moto(self, clients: tuple[Any, Any], kwargs: dict[str, Any]) -> None:
        """Every page (keys, ETags, sizes, common prefixes, counts, truncation) is moto's."""
        moto, model = clients
        expected = _pages(moto, **kwargs)
        assert expected == _pages(model, **kwargs)

    def test_whole_bucket_is_the_tree(self, clients: tuple[Any, Any], tree: Path) -> None:
        """The listing holds every file of the tree, in S3's order, and moto agrees."""
        moto, model = clients
        keys = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
        listed = [k for page in _pages(model) for k, _, _ in page["keys"]]
        assert keys == listed
        assert 90 + len(EXTRA) == len(listed)
        assert [k for page in _pages(moto) for k, _, _ in page["keys"]] == listed

    def test_ct_ingest_walk_finds_the_same_objects(
        self, clients: tuple[Any, Any], moto_server: MotoServer, model: S3Model
    ) -> None:
        """ct-ingest's parallel walk (aiobotocore) lists the same 90 log files from both."""

        async def walk(url: str) -> list[ObjectRef]:
            store = await open_store(url, BUCKET, concurrency=8)
            found: list[ObjectRef] = []

            async def emit(ref: ObjectRef) -> None:
                found.append(ref)

            try:
                await list_log_objects(store, "", Filters(), emit, concurrency=8)
                found.sort(key=lambda r: r.key)
                found.append(await store.head(found[0].key))
                body = await store.get(found[0])
            finally:
                await store.aclose()
            assert found[0].size == len(body)
            return found

        expected = [(r.key, r.etag, r.size) for r in asyncio.run(walk(moto_server.url))]
        actual = [(r.key, r.etag, r.size) for r in asyncio.run(walk(model.url))]
        assert 91 == len(actual)
        assert expected == actual

    @pytest.mark.parametrize(("prefix", "delimiter"), [("", None), ("AWSLogs/", "/")])
    def test_store_reads_pages_as_botocore_does(
        self, clients: tuple[Any, Any], moto_server: MotoServer, prefix: str, delimiter: str | None
    ) -> None:
        """ct-ingest's own reading of a ListObjectsV2 page (keys URL-decoded, ETags, sizes,
        LastModified, common prefixes) gives what botocore's parser gives, from moto."""
        moto, _ = clients
        resp = moto.list_objects_v2(
            Bucket=BUCKET, Prefix=prefix, **({"Delimiter": "/"} if delimiter else {})
        )
        expected = (
            [p["Prefix"] for p in resp.get("CommonPrefixes", [])],
            [
                (o["Key"], o["ETag"].strip('"'), o["Size"], o["LastModified"])
                for o in resp.get("Contents", [])
            ],
        )

        async def page() -> Page:
            store = await open_store(moto_server.url, BUCKET)
            try:
                return await store.list_page(prefix, delimiter=delimiter)
            finally:
                await store.aclose()

        got = asyncio.run(page())
        actual = (got.prefixes, [(r.key, r.etag, r.size, r.last_modified) for r in got.objects])
        assert expected == actual
        assert got.next_token is None
        assert (delimiter is None) == ("notes/a b+c=d.txt" in [r.key for r in got.objects])

    @pytest.mark.parametrize(
        "body",
        [
            b'<?xml version="1.0"?><ListBucketResult><Contents><Key>a</Key>',  # cut short
            b"<Error><Code>InternalError</Code><Message>x</Message></Error>",  # an error in a 200
        ],
    )
    def test_what_is_not_a_page_is_left_to_botocore(self, body: bytes) -> None:
        """A truncated body or an error inside a 200 keeps its body for botocore's own check
        (which answers 500, retried), and no page is taken from it."""
        response = {"status_code": 200, "body": body, "headers": {}}
        custom: dict[str, Any] = {}
        _read_listing(
            operation_model=_ListObjectsV2(),
            response_dict=response,
            customized_response_dict=custom,
        )
        assert ({}, body) == (custom, response["body"])


class _ListObjectsV2:
    name = "ListObjectsV2"


class TestObjects:
    def test_get_and_head_match_moto(self, clients: tuple[Any, Any], tree: Path) -> None:
        """GET and HEAD of every key: the same body, ETag, length and type as moto's."""
        moto, model = clients
        for path in sorted(p for p in tree.rglob("*") if p.is_file())[::9]:
            key = path.relative_to(tree).as_posix()
            answers = []
            for client in (moto, model):
                got = client.get_object(Bucket=BUCKET, Key=key)
                head = client.head_object(Bucket=BUCKET, Key=key)
                answers.append(
                    (
                        got["Body"].read(),
                        got["ETag"],
                        got["ContentLength"],
                        head["ETag"],
                        head["ContentLength"],
                        got["LastModified"].tzinfo is not None,
                    )
                )
            assert path.read_bytes() == answers[1][0]
            assert answers[0] == answers[1]

    @pytest.mark.parametrize("spec", ["bytes=0-9", "bytes=5-", "bytes=-7", "bytes=90-200"])
    def test_range_matches_moto(self, clients: tuple[Any, Any], spec: str) -> None:
        """A ranged GET answers 206 with the same bytes and Content-Range as moto."""
        moto, model = clients
        answers = []
        for client in (moto, model):
            got = client.get_object(Bucket=BUCKET, Key="top.txt", Range=spec)
            status = got["ResponseMetadata"]["HTTPStatusCode"]
            answers.append((status, got["ContentRange"], got["Body"].read()))
        assert 206 == answers[1][0]
        assert answers[0] == answers[1]

    def test_errors_match_moto(self, clients: tuple[Any, Any]) -> None:
        """A missing key, a missing bucket, and HEAD of a missing key: the same codes."""
        moto, model = clients
        for client in (moto, model):
            assert ("NoSuchKey", 404) == _error(client.get_object, Bucket=BUCKET, Key="nope")
            assert ("404", 404) == _error(client.head_object, Bucket=BUCKET, Key="nope")
            assert ("NoSuchBucket", 404) == _error(client.get_object, Bucket="nobucket", Key="k")
            assert ("NoSuchBucket", 404) == _error(client.list_objects_v2, Bucket="nobucket")


class TestLatency:
    def test_lognormal_fits_median_and_p99(self) -> None:
        """Drawn first-byte latencies have the configured median and 99th percentile."""
        latency = Latency(20, 100)
        rng = latency.sampler()
        draws = sorted(latency.first_byte(rng) for _ in range(20_000))
        assert 0.018 < draws[10_000] < 0.022
        assert 0.085 < draws[19_800] < 0.115

    def test_concurrent_requests_do_not_serialise(self, tree: Path) -> None:
        """Forty GETs at 50 ms each, forty at a time, take about one latency, not forty."""
        server = S3Model(tree, bucket=BUCKET, latency=Latency(50, 50, 0)).start()
        try:
            took, bodies = asyncio.run(_parallel_gets(server.url, 40))
        finally:
            server.stop()
        assert [EXTRA["top.txt"]] * 40 == bodies
        assert 0.05 <= took < 0.05 * 10


async def _parallel_gets(url: str, n: int) -> tuple[float, list[bytes]]:
    store = await open_store(url, BUCKET, concurrency=n)
    try:
        ref = ObjectRef("top.txt", "", 100)
        await store.get(ref)  # connections and credentials warmed up
        started = asyncio.get_running_loop().time()
        bodies = await asyncio.gather(*(store.get(ref) for _ in range(n)))
        return asyncio.get_running_loop().time() - started, list(bodies)
    finally:
        await store.aclose()
