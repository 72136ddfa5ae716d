"""``ct-ingest sigma convert|hunt``: Sigma rules as OpenSearch queries for the index
(:mod:`ingest.sigma.convert`), and their hits in it (:mod:`ingest.sigma.hunt`)."""

from __future__ import annotations

import json
from typing import Any

import typer

from ingest.cli.common import EXIT_ABORTED, EXIT_CONFIG, EXIT_OK, PLAIN_HELP, environment, fail
from ingest.cli.options import (
    Alias,
    AwsAuth,
    AwsRegion,
    CaCerts,
    Examples,
    Insecure,
    Json,
    Opensearch,
    PasswordFile,
    Profile,
    ReportSince,
    ReportUntil,
    RuleFiles,
    SigmaFormat,
    Timeout,
    User,
)
from ingest.config import DEFAULT_ALIAS, DEFAULT_TIMEOUT, build_sink
from ingest.errors import ConfigError, IngestError

__all__ = ["sigma_app", "sigma_convert", "sigma_hunt"]

EXIT_SOME_FAILED = 1

sigma_app = typer.Typer(
    **PLAIN_HELP, help="Sigma detection rules on the index: convert, hunt.", no_args_is_help=True
)


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@sigma_app.command("convert")
def sigma_convert(rules: RuleFiles, fmt: SigmaFormat = "dsl") -> None:
    """One JSON line per rule: its OpenSearch query DSL, or why it cannot be expressed. Exit 1
    when some rule could not be converted."""
    from ingest.sigma.convert import convert_paths

    if fmt != "dsl":
        raise fail(f"--format {fmt!r}: expected dsl", EXIT_CONFIG)
    converted = convert_paths(rules)
    for rule in converted:
        typer.echo(_line(rule.to_json()))
    raise typer.Exit(EXIT_SOME_FAILED if any(c.error for c in converted) else EXIT_OK)


@sigma_app.command("hunt")
def sigma_hunt(
    ctx: typer.Context,
    rules: RuleFiles,
    opensearch: Opensearch,
    since: ReportSince = "30d",
    until: ReportUntil = None,
    examples: Examples = 3,
    as_json: Json = False,
    alias: Alias = DEFAULT_ALIAS,
    timeout: Timeout = DEFAULT_TIMEOUT,
    insecure: Insecure = False,
    ca_certs: CaCerts = None,
    user: User = None,
    password_file: PasswordFile = None,
    aws_auth: AwsAuth = None,
    aws_region: AwsRegion = None,
    profile: Profile = None,
) -> None:
    """Hits per rule in the window, with a few example events each (a table, or JSON lines).
    Exit 1 when some rule could not be converted or run."""
    from datetime import UTC, datetime

    from ingest import cluster
    from ingest.ops.report import window
    from ingest.sigma.convert import convert_paths
    from ingest.sigma.hunt import hunt

    try:
        sink = build_sink(ctx.params, environment())
        start, end = window(since, until, datetime.now(UTC))
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    converted = convert_paths(rules)
    client = cluster.open_sync_client(sink)
    try:
        found = hunt(client, converted, alias=alias, since=start, until=end, examples=examples)
    except IngestError as exc:
        raise fail(f"hunt failed: {exc}", EXIT_ABORTED) from None
    finally:
        client.close()
    if as_json:
        for one in found:
            typer.echo(_line(one.to_json()))
    else:
        from rich.console import Console

        from ingest.sigma.hunt import render_table

        Console(width=160).print(render_table(found))
    raise typer.Exit(EXIT_SOME_FAILED if any(h.error for h in found) else EXIT_OK)
