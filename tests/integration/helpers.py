"""Helpers for integration tests: run the real CLI in-process and read what it did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from opensearchpy import OpenSearch
from typer.testing import CliRunner

from ingest.cli import app


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    done: dict[str, Any]  # the run_done log event (empty when the run aborted)

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                ev = orjson.loads(line)
                if ev.get("event") == name:
                    out.append(ev)
        return out


def cli(*args: str) -> CliRun:
    """Run ``ct-ingest ARGS`` in this process with JSON logs; return code, output and run_done."""
    result = CliRunner().invoke(app, [*args], catch_exceptions=False)
    run = CliRun(result.exit_code, result.stdout, result.stderr, {})
    found = run.events("run_done")
    run.done = found[-1] if found else {}
    return run


def backfill(source: str, opensearch: str, state_dir: Any, *extra: str) -> CliRun:
    return cli(
        "backfill",
        source,
        "--opensearch",
        opensearch,
        "--state",
        str(state_dir / "ledger.sqlite"),
        "--deadletter",
        str(state_dir / "deadletter.jsonl"),
        "--log-format",
        "json",
        "--workers",
        "1",
        "--concurrency",
        "8",
        *extra,
    )


def search(url: str) -> OpenSearch:
    client = OpenSearch(hosts=[url])
    client.indices.refresh(index="_all")
    return client


def all_docs(url: str, alias: str = "cloudtrail") -> dict[str, dict[str, Any]]:
    """Every document behind ``alias`` by _id (tests keep to a few thousand)."""
    client = search(url)
    try:
        res = client.search(index=alias, body={"size": 10_000, "query": {"match_all": {}}})
        return {h["_id"]: h["_source"] for h in res["hits"]["hits"]}
    finally:
        client.close()


def count(url: str, alias: str = "cloudtrail", query: dict[str, Any] | None = None) -> int:
    client = search(url)
    try:
        body = {"query": query} if query else None
        return int(client.count(index=alias, body=body)["count"])
    finally:
        client.close()
