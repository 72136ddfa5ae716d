"""Every kind of cluster people run, emulated by the fault proxy in front of osmem-server (which
answers as each does by its documentation): OpenSearch before 2.7, OpenSearch in the service's
compatibility mode, Elasticsearch 7.10, and Serverless SEARCH and TIMESERIES collections. On
each, with no flag telling ct-ingest which it is: setup, backfill, a rerun, verify, a report and
a tail lose nothing, and the summary says what the target changed."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from opensearchpy import OpenSearch

from ingest.testing import synth
from ingest.testing.faultproxy import EMULATIONS, Emulation, FaultProxy, Faults

from .helpers import backfill, cli

pytestmark = pytest.mark.integration
ACCOUNT, REGION, BUCKET = "111122223333", "us-east-1", "targets-bucket"

# What each target's run summary says, and what the cluster ends up with.
EXPECTED: dict[str, dict[str, Any]] = {
    "opensearch-2.5": {
        "target": "OpenSearch 2.5.0",
        "summary": "| target: OpenSearch 2.5.0; payloads not searchable (no flat_object)",
        "ids": True,
        "flat": False,
    },
    "opensearch-1.3-compat": {
        "target": "OpenSearch (compatibility mode: GET / answers 7.10.2)",
        "summary": "; payloads not searchable (no flat_object)",
        "ids": True,
        "flat": False,
    },
    "elasticsearch-7.10": {
        "target": "Elasticsearch 7.10.2 (open-source distribution)",
        "summary": "; payloads not searchable (no flat_object)",
        "ids": True,
        "flat": False,
    },
    "serverless-search": {
        "target": "OpenSearch Serverless (SEARCH or TIMESERIES collection)",
        "summary": "| target: OpenSearch Serverless (SEARCH collection); backfill mode off",
        "ids": True,
        "flat": True,
    },
    "serverless-timeseries": {
        "target": "OpenSearch Serverless (SEARCH or TIMESERIES collection)",
        "summary": "| target: OpenSearch Serverless (TIMESERIES collection); written without "
        "_id: 0 documents sent again after an unanswered request (each may be indexed twice); "
        "backfill mode off",
        "ids": False,
        "flat": True,
    },
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """200 synthetic records in four files of one day."""
    root = tmp_path_factory.mktemp("targets")
    files = list(synth.generate(200, seed=11, days=1, accounts=(ACCOUNT,), regions=(REGION,)))
    synth.write_tree(root, iter(files))
    return root, {eid for f in files for eid in f.event_ids}


def _docs(url: str) -> list[dict[str, Any]]:
    """Every document of the cluster behind the proxy: _id and the record's eventID."""
    client = OpenSearch(hosts=[url])
    try:
        client.indices.refresh(index="cloudtrail*")
        res = client.search(
            index="cloudtrail*",
            body={"size": 10_000, "_source": ["eventID", "requestParameters"]},
            params={"ignore_unavailable": "true"},
        )
        return [{"_id": h["_id"], **h["_source"]} for h in res["hits"]["hits"]]
    finally:
        client.close()


def _run_args(state: Path) -> list[str]:
    return [
        "--state",
        str(state / "ledger.sqlite"),
        "--deadletter",
        str(state / "deadletter.jsonl"),
        "--log-format",
        "json",
    ]


class TestEveryTarget:
    @pytest.mark.parametrize("profile", sorted(EMULATIONS))
    def test_setup_backfill_rerun_verify_report(
        self, profile: str, archive: tuple[Path, set[str]], opensearch_url: str, tmp_path: Path
    ) -> None:
        """No flag says what the cluster is: setup names it and what differs, the backfill
        indexes every record once (by _id, or without on TIMESERIES) and its summary says what
        the target changed, a rerun adds nothing, verify matches and a report answers."""
        root, ids = archive
        want = EXPECTED[profile]
        with FaultProxy(opensearch_url, emulation=EMULATIONS[profile]) as proxy:
            setup = cli("setup", "--opensearch", proxy.url, "--log-format", "json")
            assert 0 == setup.code, setup.stderr[-2000:]
            assert f"ct-ingest: target: {want['target']}\n" in setup.stdout
            assert ("has no flat_object type" in setup.stdout) is not want["flat"]
            if profile.startswith("serverless"):
                assert "create-lifecycle-policy" in setup.stdout

            run = backfill(str(root), proxy.url, tmp_path, "--workers", "0")
            assert (0, len(ids), 0) == (run.code, run.done["indexed"], run.done["deadlettered"])
            assert want["summary"] in run.stdout, run.stdout
            gzipped = {s.gzip for s in proxy.seen}  # gzip is auto: on but for Serverless
            assert {not profile.startswith("serverless")} == gzipped

            docs = _docs(opensearch_url)
            assert sorted(ids) == sorted(d["eventID"] for d in docs)
            assert want["ids"] == all(d["_id"] == d["eventID"] for d in docs)
            assert any(d.get("requestParameters") for d in docs)  # payloads stay in _source
            mapping = OpenSearch(hosts=[opensearch_url]).indices.get_mapping(index="cloudtrail*")
            flat = next(iter(mapping.values()))["mappings"]["properties"]["ct"]["properties"]
            request = flat["flat"]["properties"]["request"]
            assert want["flat"] == (request.get("type") == "flat_object"), request

            again = backfill(str(root), proxy.url, tmp_path, "--workers", "0")
            assert (0, 0) == (again.code, again.done["indexed"])
            assert len(ids) == len(_docs(opensearch_url))

            check = cli("verify", str(root), "--opensearch", proxy.url, *_run_args(tmp_path))
            assert 0 == check.code, check.stdout + check.stderr[-2000:]
            assert f"documents: {len(ids)} found, 0 missing, 0 unexpected" in check.stdout

            report = cli(
                "report", "clickops", "--opensearch", proxy.url, "--since", "2024-03-01",
                "--until", "2024-03-31", "--format", "json",
            )  # fmt: skip
            assert 0 == report.code, report.stderr[-2000:]
            clickops = OpenSearch(hosts=[opensearch_url]).count(
                index="cloudtrail", body={"query": {"term": {"ct.clickops": True}}}
            )["count"]
            assert clickops == json.loads(report.stdout)["summary"]["clickops_events"]

    def test_compatibility_mode_of_a_recent_opensearch_keeps_flat_object(
        self, archive: tuple[Path, set[str]], opensearch_url: str, tmp_path: Path
    ) -> None:
        """GET / answering 7.10.2 does not tell the version: flat_object is tried, and kept
        where the cluster takes it (by setup, and by a backfill reading the installed
        templates), so payloads stay searchable."""
        root, ids = archive
        compat = EMULATIONS["opensearch-1.3-compat"]
        recent = Emulation("opensearch-2.11-compat", compat.root, flat_object=True)
        with FaultProxy(opensearch_url, emulation=recent) as proxy:
            setup = cli("setup", "--opensearch", proxy.url, "--log-format", "json")
            assert 0 == setup.code, setup.stderr[-2000:]
            assert "has no flat_object type" not in setup.stdout
            run = backfill(str(root), proxy.url, tmp_path, "--workers", "0")
        assert (0, len(ids)) == (run.code, run.done["indexed"]), run.stderr[-2000:]
        assert "| target:" not in run.stdout  # nothing differs from the default
        client = OpenSearch(hosts=[opensearch_url])
        client.indices.refresh(index="cloudtrail")
        hits = client.count(index="cloudtrail", body={"query": {"exists": {"field": "ct.flat"}}})
        client.close()
        assert 0 < hits["count"]

    def test_timeseries_counts_what_a_retry_may_have_duplicated(
        self, archive: tuple[Path, set[str]], opensearch_url: str, tmp_path: Path
    ) -> None:
        """Without _id, a bulk request applied and then answered 504 is sent again: nothing is
        lost, the run summary counts the documents sent again, and verify finds exactly the
        extra copies the cluster holds."""
        root, ids = archive
        emulation = EMULATIONS["serverless-timeseries"]
        faults = Faults(seed=3, after_504=0.25)  # every request is applied, some answered 504
        with FaultProxy(opensearch_url, faults, emulation=emulation) as proxy:
            run = backfill(
                str(root), proxy.url, tmp_path, "--workers", "0", "--target",
                "serverless-timeseries", "--bulk-mib", "0.02",
            )  # fmt: skip
            assert (0, len(ids)) == (run.code, run.done["indexed"]), run.stderr[-2000:]
            resent = run.done["resent_unanswered"]
            assert resent > 0
            assert f"written without _id: {resent:,} documents sent again" in run.stdout
            assert [] == run.events("target_takes_no_ids")  # declared: no _id ever sent
            docs = _docs(opensearch_url)
            copies = len(docs) - len(ids)
            assert set(ids) == {d["eventID"] for d in docs}
            assert 0 < copies == resent  # each resend of an applied request: one copy
            proxy.set_faults(Faults())
            check = cli("verify", str(root), "--opensearch", proxy.url, *_run_args(tmp_path))
        assert 0 == check.code, check.stdout
        assert f"{copies} extra copies (sent again after an unanswered request)" in check.stdout
        assert f"documents: {len(ids)} found, 0 missing, 0 unexpected" in check.stdout

    def test_timeseries_verify_repairs_lost_documents(
        self, archive: tuple[Path, set[str]], opensearch_url: str, tmp_path: Path
    ) -> None:
        """A document deleted from a TIMESERIES collection is found missing by eventID and
        re-sent (without _id) by verify --repair; so is every document of an emptied index,
        where only the refused lookup by _id tells the collection's kind."""
        root, ids = archive
        with FaultProxy(opensearch_url, emulation=EMULATIONS["serverless-timeseries"]) as proxy:
            run = backfill(str(root), proxy.url, tmp_path, "--workers", "0")
            assert (0, len(ids)) == (run.code, run.done["indexed"]), run.stderr[-2000:]
            lost = sorted(ids)[0]
            upstream = OpenSearch(hosts=[opensearch_url])
            upstream.delete_by_query(
                index="cloudtrail", body={"query": {"term": {"eventID": lost}}}, refresh=True
            )
            upstream.close()
            check = cli(
                "verify", str(root), "--opensearch", proxy.url, "--repair", *_run_args(tmp_path)
            )
            assert 0 == check.code, check.stdout
            assert "1 re-sent by --repair" in check.stdout
            assert sorted(ids) == sorted(d["eventID"] for d in _docs(opensearch_url))
            upstream = OpenSearch(hosts=[opensearch_url])
            upstream.delete_by_query(
                index="cloudtrail", body={"query": {"match_all": {}}}, refresh=True
            )
            upstream.close()
            check = cli(
                "verify", str(root), "--opensearch", proxy.url, "--repair", *_run_args(tmp_path)
            )
        assert 0 == check.code, check.stdout
        assert f"{len(ids)} re-sent by --repair" in check.stdout
        assert sorted(ids) == sorted(d["eventID"] for d in _docs(opensearch_url))


TAIL_SUMMARY = {
    "elasticsearch-7.10": "| target: Elasticsearch 7.10.2 (open-source distribution); payloads "
    "not searchable (no flat_object)",
    "serverless-timeseries": "| target: OpenSearch Serverless (TIMESERIES collection); written "
    "without _id: 0 documents sent again",
}


class TestTail:
    @pytest.mark.parametrize("profile", sorted(EMULATIONS))
    def test_tail_indexes_new_files_once(
        self, profile: str, s3_url: str, opensearch_url: str, tmp_path: Path
    ) -> None:
        """A polling tail keeps the index current on the target and ends cleanly on SIGTERM,
        its summary naming the target."""
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        now = datetime.now(UTC)
        records = [
            {
                "eventID": f"tail-{profile}-{i}",
                "eventTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "eventName": "ListBuckets",
                "eventSource": "s3.amazonaws.com",
                "recipientAccountId": ACCOUNT,
                "awsRegion": REGION,
            }
            for i in range(5)
        ]
        key = (
            f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{now:%Y/%m/%d}/"
            f"{ACCOUNT}_CloudTrail_{REGION}_{now:%Y%m%dT%H%MZ}_tail.json.gz"
        )
        s3.put_object(
            Bucket=BUCKET, Key=key, Body=gzip.compress(orjson.dumps({"Records": records}))
        )
        with FaultProxy(opensearch_url, emulation=EMULATIONS[profile]) as proxy:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ingest.cli", "tail", f"s3://{BUCKET}", "--opensearch",
                 proxy.url, *_run_args(tmp_path), "--poll-interval", "1", "--workers", "0"],
                env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and len(_safe_docs(opensearch_url)) < 5:
                    time.sleep(0.3)
            finally:
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=30)
        assert 0 == proc.returncode, err.decode()[-3000:]
        assert sorted(r["eventID"] for r in records) == sorted(
            d["eventID"] for d in _docs(opensearch_url)
        )
        assert TAIL_SUMMARY.get(profile, EXPECTED[profile]["summary"]) in out.decode(), out


def _safe_docs(url: str) -> list[dict[str, Any]]:
    try:
        return _docs(url)
    except Exception:  # the index does not exist yet
        return []


class TestKibana:
    def test_setup_imports_dashboards_into_kibana_on_elasticsearch(
        self, opensearch_url: str
    ) -> None:
        """On Elasticsearch 7.10 the dashboards go to Kibana: its import API with kbn-xsrf,
        and only attributes its strict saved-object mappings know; setup names the app."""
        seen: dict[str, Any] = {}

        class Kibana(BaseHTTPRequestHandler):
            """Kibana 7.10's import: 400 without kbn-xsrf; an object with an attribute its
            mappings do not declare fails (strict_dynamic_mapping_exception)."""

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                lines = [json.loads(x) for x in body.split(b"\n") if x.startswith(b"{")]
                seen.update(path=self.path, objects=lines)
                if self.headers.get("kbn-xsrf") != "true":
                    status, out = 400, {"message": "Request must contain a kbn-xsrf header."}
                else:
                    known = {"title", "description", "kibanaSavedObjectMeta", "version",
                             "visState", "uiStateJSON", "timeFieldName", "columns", "sort",
                             "optionsJSON", "panelsJSON", "timeRestore"}  # fmt: skip
                    bad = [o["id"] for o in lines if set(o["attributes"]) - known]
                    status, out = (
                        200,
                        {
                            "success": not bad,
                            "successCount": len(lines) - len(bad),
                            "errors": [{"id": i, "error": {"type": "unknown"}} for i in bad],
                        },
                    )
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return None

        server = HTTPServer(("127.0.0.1", 0), Kibana)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with FaultProxy(opensearch_url, emulation=EMULATIONS["elasticsearch-7.10"]) as proxy:
                run = cli(
                    "setup", "--opensearch", proxy.url, "--dashboards",
                    f"http://127.0.0.1:{server.server_port}", "--alerts", "--webhook",
                    "http://127.0.0.1:9/hook", "--log-format", "json",
                )  # fmt: skip
        finally:
            server.shutdown()
        assert 0 == run.code, run.stderr[-2000:]
        assert "/api/saved_objects/_import?overwrite=true" == seen["path"]
        assert 16 == len(seen["objects"])
        assert "16 saved objects imported (overwrite) into Kibana at http://127.0.0.1:" in (
            run.stdout
        )
        assert "alerts: not installed: Elasticsearch 7.10.2" in run.stdout
