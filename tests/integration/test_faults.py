"""The bulk sink against a cluster that misbehaves: a fault-injecting proxy between ct-ingest
and osmem-server. For every mix of faults, every document lands exactly once, the dead-letter
holds exactly the documents OpenSearch refuses for good, and no request outlives the timeout."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from ingest.deadletter import read_entries
from ingest.testing import synth
from ingest.testing.faultproxy import FaultProxy, Faults

from .helpers import all_docs, backfill

pytestmark = pytest.mark.integration

REFUSED = {"refused-1", "refused-2", "refused-3"}
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """1,000 good records and three OpenSearch refuses (readOnly is mapped boolean)."""
    root = tmp_path_factory.mktemp("faults")
    files = list(
        synth.generate(
            1000, seed=5, days=1, accounts=("111122223333",), regions=("us-east-1", "eu-west-1")
        )
    )
    good = {eid for f in files for eid in f.event_ids}
    bad = [
        {"eventID": eid, "eventTime": "2024-03-04T12:00:00Z", "readOnly": {"x": 1}}
        for eid in sorted(REFUSED)
    ]
    key = (
        "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/04/"
        "111122223333_CloudTrail_us-east-1_20240304T1200Z_Refused.json.gz"
    )
    files.append(
        synth.SynthFile(key, gzip.compress(orjson.dumps({"Records": bad})), 3, tuple(REFUSED))
    )
    synth.write_tree(root, iter(files))
    return root, good


@pytest.fixture
def proxy(opensearch_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(opensearch_url) as p:
        yield p


MIXES = {
    "429-whole-and-per-item": Faults(seed=1, whole_429=0.3, item_429=0.2),
    "502-503-before-504-after": Faults(seed=2, before_5xx=0.25, after_504=0.25),
    "connection-resets": Faults(seed=3, reset_before=0.2, reset_after=0.2),
    "413-above-40kb": Faults(seed=4, max_body=40_000),
    "stalls-past-the-timeout": Faults(seed=5, stall=0.25, stall_seconds=TIMEOUT * 1.6),
    "everything-at-once": Faults(
        seed=6,
        whole_429=0.1,
        item_429=0.1,
        before_5xx=0.1,
        after_504=0.1,
        reset_before=0.05,
        reset_after=0.05,
        max_body=60_000,
        stall=0.05,
        stall_seconds=TIMEOUT * 1.6,
    ),
}


class TestFaultMixes:
    @pytest.mark.parametrize("mix", sorted(MIXES))
    def test_exactly_once_under_faults(
        self,
        mix: str,
        archive: tuple[Path, set[str]],
        proxy: FaultProxy,
        opensearch_url: str,
        tmp_path: Path,
    ) -> None:
        """Every good document lands once, exactly the refused ones are dead-lettered, the books
        balance, and no request took longer than the client timeout."""
        root, good = archive
        proxy.set_faults(MIXES[mix])
        run = backfill(
            str(root),
            proxy.url,
            tmp_path,
            "--timeout",
            str(TIMEOUT),
            "--bulk-target-seconds",
            "0.5",
            "--bulk-mib",
            "0.05",
            "--max-bulk-mib",
            "0.1",
            "--retry-deadline",
            "30",
            "--max-in-flight",
            "3",
        )
        assert 1 == run.code, run.stderr[-3000:]
        faults = {s.fault for s in proxy.seen}
        assert faults - {"ok"}, f"no fault was injected: {faults}"
        assert good == set(all_docs(opensearch_url))
        entries = read_entries(tmp_path / "deadletter.jsonl")
        assert REFUSED == {e["id"] for e in entries}
        assert 3 == len(entries)
        assert {("index", "mapper_parsing_exception")} == {
            (e["stage"], e["error_type"]) for e in entries
        }
        d = run.done
        assert (len(good) + 3, len(good), 3) == (d["records_seen"], d["indexed"], d["deadlettered"])
        assert d["bulk_latency_max"] <= TIMEOUT + 0.5


class TestAuthNeverLeaks:
    def test_basic_auth_is_sent_and_never_logged(
        self,
        archive: tuple[Path, set[str]],
        proxy: FaultProxy,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Basic auth from CT_INGEST_PASSWORD reaches the server on every request and appears in
        no log line, summary or dead-letter entry, even with faults and retries."""
        root, _ = archive
        secret = "s3cr3t-Pa55-word"
        token = base64.b64encode(f"ingester:{secret}".encode()).decode()
        monkeypatch.setenv("CT_INGEST_PASSWORD", secret)
        proxy.set_faults(Faults(seed=9, whole_429=0.2, before_5xx=0.1))
        run = backfill(
            str(root),
            proxy.url,
            tmp_path,
            "--user",
            "ingester",
            "--gzip",
            "-v",
            "--timeout",
            str(TIMEOUT),
            "--retry-deadline",
            "30",
            "--bulk-target-seconds",
            "0.5",
        )
        assert 1 == run.code, run.stderr[-2000:]
        assert proxy.seen
        assert all(s.headers.get("Authorization") == f"Basic {token}" for s in proxy.seen)
        assert all(s.gzip for s in proxy.seen)
        written = run.stdout + run.stderr + (tmp_path / "deadletter.jsonl").read_text()
        assert secret not in written
        assert token not in written

    def test_sigv4_signs_every_request(
        self,
        archive: tuple[Path, set[str]],
        proxy: FaultProxy,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """--aws-auth es signs with the AWS credential chain for the region; the secret key and
        the signature appear in no output."""
        root, _ = archive
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE12345")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        proxy.set_faults(Faults())
        run = backfill(
            str(root), proxy.url, tmp_path, "--aws-auth", "es", "--aws-region", "eu-west-1", "-v"
        )
        assert 1 == run.code, run.stderr[-2000:]
        auth = {s.headers.get("Authorization", "") for s in proxy.seen}
        assert all(a.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE12345/") for a in auth)
        assert all("/eu-west-1/es/aws4_request" in a for a in auth)
        written = run.stdout + run.stderr + (tmp_path / "deadletter.jsonl").read_text()
        assert "wJalrXUtnFEMI" not in written
        assert not any(a.split("Signature=")[-1] in written for a in auth)

    def test_credentials_in_the_url_are_refused(self, tmp_path: Path) -> None:
        """A password in the URL is a configuration error whose message does not repeat it."""
        from .helpers import cli

        run = cli("backfill", str(tmp_path), "--opensearch", "https://admin:hunter2@127.0.0.1:9200")
        assert 2 == run.code
        assert "hunter2" not in run.stdout + run.stderr
