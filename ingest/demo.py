"""``ct-ingest demo``: the whole path on embedded servers, in one command.

Starts moto's S3 server and osmem-server on loopback, writes a generated archive into a bucket,
runs the very backfill a user runs against AWS, then answers questions from the index.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ingest.config import DEFAULT_ALIAS, S3Location, Settings, SinkConfig, SourceConfig
from ingest.telemetry import Verdict

__all__ = ["BUCKET", "QUESTIONS", "ask", "run_demo", "upload"]

BUCKET = "demo-cloudtrail-logs"
REGION = "us-east-1"
_FAKE_KEYS = ("demo", "demo")  # moto accepts any keys

# Questions people bring to this index: (title, column, query, terms field).
QUESTIONS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "Who changes things by hand in the console? (ClickOps by user)",
        "user",
        {"term": {"ct.clickops": True}},
        "ct.actor.name",
    ),
    (
        "Which resources are changed by hand most? (ClickOps by resource)",
        "resource",
        {"term": {"ct.clickops": True}},
        "ct.resource.id",
    ),
    ("How are changes made? (writes by tool)", "tool", {"term": {"ct.is_write": True}}, "ct.tool"),
    ("Events per service", "eventSource", {"match_all": {}}, "eventSource"),
    (
        "Failed calls by principal",
        "principal",
        {"term": {"event.outcome": "failure"}},
        "ct.actor.name",
    ),
]


def upload(s3_url: str, files: list[Any], *, bucket: str = BUCKET) -> None:
    """Put generated files into a bucket of the S3 server at ``s3_url`` (boto3, threads)."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name=REGION,
        aws_access_key_id=_FAKE_KEYS[0],
        aws_secret_access_key=_FAKE_KEYS[1],
        config=Config(max_pool_connections=16),
    )
    s3.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda f: s3.put_object(Bucket=bucket, Key=f.key, Body=f.body), files))


def ask(
    opensearch_url: str, alias: str = DEFAULT_ALIAS
) -> list[tuple[str, str, list[tuple[str, int]]]]:
    """Answer :data:`QUESTIONS` from the index (top five each)."""
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[opensearch_url])
    try:
        client.indices.refresh(index=alias)
        answers = []
        for title, column, query, field in QUESTIONS:
            res = client.search(
                index=alias,
                body={
                    "size": 0,
                    "query": query,
                    "aggs": {"top": {"terms": {"field": field, "size": 5}}},
                },
            )
            rows = [
                (str(b["key"]), int(b["doc_count"])) for b in res["aggregations"]["top"]["buckets"]
            ]
            answers.append((title, column, rows))
        return answers
    finally:
        client.close()


def run_demo(*, events: int, keep_running: bool, seed: int, log_format: str) -> Verdict | None:
    """Start the servers, load a generated archive through :func:`ingest.runner.run_backfill`,
    print the summary and the answers; the backfill's verdict, or None when the embedded
    servers cannot start (said on stderr). A failed backfill raises, after the servers stop."""
    from ingest.runner import run_backfill
    from ingest.telemetry import configure_logging, report_run
    from ingest.testing import synth
    from ingest.testing.servers import MotoServer, start_osmem

    out = Console(stderr=False)
    console = configure_logging(log_format)
    try:
        moto, osmem = MotoServer.start(), start_osmem()
    except (ImportError, RuntimeError) as exc:
        typer.echo(
            f"ct-ingest demo: cannot start the embedded servers ({exc}); "
            "install them with: pip install 'ct-ingest[demo]'",
            err=True,
        )
        return None
    try:
        out.print(
            f"S3 (moto) at {moto.url}, OpenSearch (osmem-server) at {osmem.url}", soft_wrap=True
        )
        t0 = time.monotonic()
        files = list(synth.generate(events, seed=seed))
        upload(moto.url, files)
        out.print(
            f"wrote {sum(f.records for f in files):,} events in {len(files):,} log files to "
            f"s3://{BUCKET}/AWSLogs/ in {time.monotonic() - t0:.1f} s",
            soft_wrap=True,
        )
        with tempfile.TemporaryDirectory(prefix="ct-ingest-demo-") as tmp:
            settings = _settings(moto.url, osmem.url, Path(tmp), log_format)
            out.print(
                f"$ ct-ingest backfill s3://{BUCKET} --opensearch {osmem.url}", soft_wrap=True
            )
            stats = asyncio.run(run_backfill(settings, console=console))
            verdict = report_run(stats, deadletter=settings.deadletter_path)
        if verdict is Verdict.STOPPED:
            return verdict
        for title, column, rows in ask(osmem.url):
            table = Table(title=title, title_justify="left")
            table.add_column(column)
            table.add_column("events", justify="right")
            for key, count in rows:
                table.add_row(key, f"{count:,}")
            out.print(table)
        if keep_running:
            out.print(
                f"servers left running: S3 {moto.url}  OpenSearch {osmem.url}  (Ctrl-C stops them)",
                soft_wrap=True,
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return verdict
    finally:
        osmem.stop()
        moto.stop()


def _settings(s3_url: str, opensearch_url: str, state_dir: Path, log_format: str) -> Settings:
    """The backfill a user would run, against the embedded servers, with moto's fake keys
    (never the user's own credentials, whatever the environment holds)."""
    return Settings(
        source=SourceConfig(
            location=S3Location(bucket=BUCKET, prefix=""),
            endpoint_url=s3_url,
            region=REGION,
            concurrency=16,
            credentials=_FAKE_KEYS,
        ),
        sink=SinkConfig(url=opensearch_url, max_in_flight=2, aws_region=REGION),
        state_path=state_dir / "ledger.sqlite",
        deadletter_path=state_dir / "deadletter.jsonl",
        log_format=log_format,
    )
