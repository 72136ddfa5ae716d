"""Every option and argument of ``ct-ingest``, declared once.

Each is an ``Annotated`` alias carrying the flag, the help and the environment variable
(``CT_INGEST_<OPTION>``); every command that takes the option uses the same alias, and gives
the default as its parameter's default (from ``ingest.config``'s ``DEFAULT_*`` where the
library has one), so tail's ``--concurrency`` can default to 16 and the backfill's to 32.

A flag declared more than once means different things in different commands; each such
declaration says so here, and ``tests/unit/test_options.py`` lists them with the reason:
``--since``/``--until`` (days to take, tail's start point, a report's window) and ``--user``
(basic auth, or the IAM user ``report principal`` is about).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ingest import __version__

__all__ = [
    "Account",
    "Alerts",
    "Alias",
    "AsnDb",
    "AuthUser",
    "AwsAuth",
    "AwsRegion",
    "BackfillMode",
    "BulkLingerMs",
    "BulkMib",
    "BulkTargetSeconds",
    "CaCerts",
    "ClickopsThreshold",
    "Codec",
    "Concurrency",
    "ConfigFile",
    "Dashboards",
    "Deadletter",
    "DeadletterFile",
    "DemoEvents",
    "DemoSeed",
    "DrainSeconds",
    "Examples",
    "Exclude",
    "ExitWhenIdle",
    "Format",
    "Fresh",
    "GeoipDb",
    "Gzip",
    "IamDetails",
    "IamUser",
    "IncludeInsight",
    "IndexPrefix",
    "InflightMib",
    "Insecure",
    "Json",
    "KeepRunning",
    "KeysPerMessage",
    "LogFormat",
    "MaxBulkMib",
    "MaxInFlight",
    "MaxObjectMib",
    "MetricsPort",
    "Opensearch",
    "Output",
    "PasswordFile",
    "PollInterval",
    "Profile",
    "RediscoverMinutes",
    "RefreshInterval",
    "Region",
    "Repair",
    "Replicas",
    "ReportSince",
    "ReportUntil",
    "ResourcePattern",
    "RetentionDays",
    "RetryDeadline",
    "RetryFailed",
    "RewindMinutes",
    "Role",
    "RuleFiles",
    "Shard",
    "Shards",
    "ShowArgs",
    "ShowCommand",
    "SigmaFormat",
    "SigmaRules",
    "Since",
    "Source",
    "SqsQueueUrl",
    "SqsVisibility",
    "SqsWaitSeconds",
    "State",
    "TailSince",
    "Target",
    "Timeout",
    "Top",
    "UnhealthyAfter",
    "Until",
    "User",
    "Verbose",
    "Version",
    "Webhook",
    "Workers",
]

_AUTO = "auto"


def _option(*flags: str, help: str, env: str | list[str] | None = _AUTO, **kw: Any) -> Any:
    """``typer.Option`` with the environment variable named after the first flag unless given
    (``--index-prefix`` -> ``CT_INGEST_INDEX_PREFIX``); ``env=None`` for none."""
    if env == _AUTO:
        name = flags[0].split("/")[0].removeprefix("--")
        env = "CT_INGEST_" + name.upper().replace("-", "_")
    return typer.Option(*flags, envvar=env, help=help, **kw)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ct-ingest {__version__}")
        raise typer.Exit()


# -- the program ---------------------------------------------------------------------------------
Version = Annotated[
    bool,
    _option(
        "--version", help="Print the version.", env=None, callback=_print_version, is_eager=True
    ),
]
ConfigFile = Annotated[
    Path | None,
    _option(
        "--config", help="TOML file of option defaults (default: ~/.config/ct-ingest/config.toml)."
    ),
]
LogFormat = Annotated[str, _option("--log-format", help="auto, json or console.")]
Verbose = Annotated[bool, _option("--verbose", "-v", help="Debug logs.")]
Json = Annotated[bool, _option("--json", help="JSON instead of a table or text.", env=None)]

# -- the source ------------------------------------------------------------------------------------
Source = Annotated[
    str, typer.Argument(help="s3://BUCKET[/PREFIX] or a local directory laid out like it.")
]
Profile = Annotated[
    str | None, _option("--profile", help="AWS profile.", env=["CT_INGEST_PROFILE", "AWS_PROFILE"])
]
AwsRegion = Annotated[
    str | None,
    _option(
        "--aws-region",
        help="AWS region (S3 client, SigV4 signing).",
        env=["CT_INGEST_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"],
    ),
]
Concurrency = Annotated[int, _option("--concurrency", help="Parallel S3 requests.")]
RetryDeadline = Annotated[
    float,
    _option(
        "--retry-deadline",
        help="Seconds to keep retrying an unreachable S3 or OpenSearch before aborting.",
    ),
]

# -- what to take --------------------------------------------------------------------------------
Since = Annotated[str | None, _option("--since", help="First day (YYYY-MM-DD or Nd).")]
Until = Annotated[str | None, _option("--until", help="Last day, inclusive.")]
TailSince = Annotated[  # tail's own --since: a start point, not a filter (same variable)
    str | None,
    _option(
        "--since",
        help="Where accounts/regions with nothing in the ledger start (polling): "
        "YYYY-MM-DD, an ISO timestamp, Nd or Nh. Default: a day before start-up.",
    ),
]
Account = Annotated[list[str] | None, _option("--account", help="Only this account (repeat).")]
Region = Annotated[list[str] | None, _option("--region", help="Only this region (repeat).")]
IncludeInsight = Annotated[bool, _option("--include-insight", help="Also CloudTrail-Insight/.")]
Exclude = Annotated[
    list[str] | None,
    _option(
        "--exclude",
        help="Skip records by eventSource:eventName glob, e.g. kms.amazonaws.com:Decrypt (repeat).",
    ),
]
Shard = Annotated[
    str | None,
    _option("--shard", help="I/N: take only shard I of N of the objects (one process per shard)."),
]

# -- enrichment ------------------------------------------------------------------------------------
GeoipDb = Annotated[
    Path | None,
    _option(
        "--geoip-db",
        help="MaxMind-format city or country database (GeoLite2-City.mmdb) for source.geo.*.",
        exists=True,
        dir_okay=False,
    ),
]
AsnDb = Annotated[
    Path | None,
    _option(
        "--asn-db",
        help="MaxMind-format ASN database (GeoLite2-ASN.mmdb) for source.as.*.",
        exists=True,
        dir_okay=False,
    ),
]

# -- state -----------------------------------------------------------------------------------------
State = Annotated[Path | None, _option("--state", help="Checkpoint ledger (SQLite file).")]
Deadletter = Annotated[Path | None, _option("--deadletter", help="Dead-letter file (JSON lines).")]
DeadletterFile = Annotated[  # the deadletter commands' own name for --deadletter (same variable)
    Path | None,
    _option(
        "--file",
        help="Dead-letter file (default: deadletter.jsonl in the state directory).",
        env="CT_INGEST_DEADLETTER",
    ),
]

# -- the run ---------------------------------------------------------------------------------------
Workers = Annotated[int | None, _option("--workers", help="Decoding processes (0 = in-process).")]
DrainSeconds = Annotated[
    float,
    _option(
        "--drain-seconds",
        help="On Ctrl-C/SIGTERM, time to finish the objects in flight before stopping.",
    ),
]
InflightMib = Annotated[
    float,
    _option("--inflight-mib", help="Memory budget for objects being processed (estimated), MiB."),
]
MaxObjectMib = Annotated[
    float,
    _option(
        "--max-object-mib",
        help="Largest object, inflated JSON in MiB; a larger one is dead-lettered as TooLarge.",
    ),
]
RetryFailed = Annotated[
    bool,
    _option("--retry-failed", help="Fetch again the objects an earlier run could not read at all."),
]
BackfillMode = Annotated[
    bool,
    _option(
        "--backfill-mode/--no-backfill-mode",
        help="Turn refresh off and replicas to 0 on the indices written, restored at the end.",
    ),
]

# -- OpenSearch ------------------------------------------------------------------------------------
Opensearch = Annotated[str, _option("--opensearch", help="OpenSearch URL, http(s)://host:port.")]
IndexPrefix = Annotated[str, _option("--index-prefix", help="Prefix of the monthly indices.")]
Alias = Annotated[str, _option("--alias", help="Alias over all the indices.")]
Timeout = Annotated[float, _option("--timeout", help="Per-request timeout to OpenSearch, seconds.")]
Insecure = Annotated[bool, _option("--insecure", help="Do not verify TLS certificates.")]
CaCerts = Annotated[Path | None, _option("--ca-certs", help="CA bundle for TLS.")]
_USER_HELP = "Basic-auth user (password: CT_INGEST_PASSWORD or --password-file)."
User = Annotated[str | None, _option("--user", help=_USER_HELP)]
AuthUser = Annotated[  # --user under another flag, where --user names an IAM user
    str | None,
    _option(
        "--auth-user",
        help=_USER_HELP + " Called --auth-user here because --user is the IAM user reported on.",
        env="CT_INGEST_USER",
    ),
]
PasswordFile = Annotated[Path | None, _option("--password-file", help="File holding the password.")]
AwsAuth = Annotated[
    str | None,
    _option(
        "--aws-auth", help="Sign requests with SigV4: es (OpenSearch Service) or aoss (Serverless)."
    ),
]
Gzip = Annotated[
    bool | None,
    _option(
        "--gzip/--no-gzip",
        help="Gzip bulk bodies. Default: auto, on except for OpenSearch Serverless.",
        show_default=False,
    ),
]
Target = Annotated[
    str,
    _option(
        "--target",
        help="auto (from the endpoint and the cluster's answers), opensearch, elasticsearch, "
        "serverless-search or serverless-timeseries.",
    ),
]
BulkMib = Annotated[float, _option("--bulk-mib", help="Target bulk body size, MiB.")]
MaxBulkMib = Annotated[float, _option("--max-bulk-mib", help="Hard cap per bulk body, MiB.")]
MaxInFlight = Annotated[int, _option("--max-in-flight", help="Concurrent bulk requests.")]
BulkLingerMs = Annotated[
    float,
    _option(
        "--bulk-linger-ms",
        help="A bulk body not yet full is sent after waiting this long for more documents, ms.",
    ),
]
BulkTargetSeconds = Annotated[
    float,
    _option(
        "--bulk-target-seconds",
        help="Bulk size and concurrency adapt to keep requests near this duration.",
    ),
]

# -- tail ------------------------------------------------------------------------------------------
PollInterval = Annotated[float, _option("--poll-interval", help="Seconds between polls.")]
RediscoverMinutes = Annotated[
    float,
    _option("--rediscover-minutes", help="How often to look for new accounts and regions."),
]
RewindMinutes = Annotated[
    float,
    _option(
        "--rewind-minutes",
        help="Re-list this far behind the newest settled file (late deliveries).",
    ),
]
SqsQueueUrl = Annotated[
    str | None,
    _option(
        "--sqs-queue-url",
        help="SQS queue of S3 event notifications: tail consumes it instead of polling, "
        "enqueue fills it, status reports its depth.",
    ),
]
ExitWhenIdle = Annotated[
    float | None,
    _option(
        "--exit-when-idle",
        help="With --sqs-queue-url: exit 0 once the queue has been empty (nothing waiting or in "
        "flight) this many seconds, e.g. as a Job.",
    ),
]
SqsWaitSeconds = Annotated[
    int, _option("--sqs-wait-seconds", help="Long-poll wait of each SQS receive, seconds.")
]
SqsVisibility = Annotated[
    int,
    _option("--sqs-visibility", help="Visibility timeout, extended while an object is processed."),
]
MetricsPort = Annotated[
    int | None,
    _option("--metrics-port", help="Serve /metrics (Prometheus) and /healthz on this port."),
]
UnhealthyAfter = Annotated[
    float,
    _option(
        "--unhealthy-after",
        help="/healthz fails when S3 or OpenSearch are unreachable this long.",
    ),
]

# -- enqueue ---------------------------------------------------------------------------------------
KeysPerMessage = Annotated[
    int,
    _option(
        "--keys-per-message",
        help="Object keys per SQS message, at most 500 (a message also stays under 25 KiB, so "
        "ten fit one send_message_batch).",
    ),
]
Fresh = Annotated[
    bool,
    _option(
        "--fresh",
        help="Forget which days earlier runs sent to this queue and send every key again.",
        env=None,
    ),
]

# -- setup -----------------------------------------------------------------------------------------
Shards = Annotated[int, _option("--shards", help="Primary shards per index.")]
Replicas = Annotated[int, _option("--replicas", help="Replicas per index.")]
RefreshInterval = Annotated[str, _option("--refresh-interval", help="e.g. 5s, 30s.")]
Codec = Annotated[str, _option("--codec", help="default or best_compression.")]
RetentionDays = Annotated[
    int,
    _option(
        "--retention-days",
        help="ISM policy: delete indices this many days after creation (0 = keep forever).",
    ),
]
Dashboards = Annotated[
    str | None,
    _option(
        "--dashboards",
        help="OpenSearch Dashboards URL: import the ClickOps and Activity dashboards.",
    ),
]
Alerts = Annotated[
    bool, _option("--alerts", help="Install the Alerting monitors (needs --webhook).")
]
Webhook = Annotated[str | None, _option("--webhook", help="Where alerts post.")]
ClickopsThreshold = Annotated[
    int, _option("--clickops-threshold", help="Alert above this many ClickOps events in 24 h.")
]
ResourcePattern = Annotated[
    str, _option("--resource-pattern", help="Alert on console writes to matching resources.")
]
SigmaRules = Annotated[
    Path | None,
    _option(
        "--sigma",
        help="A directory (or file) of Sigma rules: one Alerting monitor per rule (by rule id).",
    ),
]

# -- verify ----------------------------------------------------------------------------------------
Repair = Annotated[
    bool,
    _option(
        "--repair",
        help="Re-send missing documents from their objects (idempotent), then verify again.",
        env=None,
    ),
]

# -- reports (per invocation: no environment variables) ------------------------------------------
ReportSince = Annotated[  # a report's window starts at an instant, by default 30 or 90 days ago
    str, _option("--since", help="Start of the window: Nd or YYYY-MM-DD.", env=None)
]
ReportUntil = Annotated[  # ... and ends before an instant, by default now
    str | None, _option("--until", help="End of the window (exclusive); default now.", env=None)
]
IamUser = Annotated[  # the IAM user reported on, not the basic-auth --user
    str | None, _option("--user", help="IAM user name (not the basic-auth user).", env=None)
]
Role = Annotated[str | None, _option("--role", help="IAM role name.", env=None)]
IamDetails = Annotated[
    Path | None,
    _option(
        "--iam-authorization-details",
        help="JSON of `aws iam get-account-authorization-details`: adds granted-but-unused.",
        env=None,
    ),
]
Top = Annotated[int, _option("--top", help="Rows per ranking.", env=None)]
Format = Annotated[str, _option("--format", help="md, csv or json.", env=None)]
Output = Annotated[
    Path | None, _option("--output", "-o", help="Write here instead of stdout.", env=None)
]

# -- sigma -----------------------------------------------------------------------------------------
RuleFiles = Annotated[
    list[Path], typer.Argument(help="Sigma rule files or directories (searched for *.yml, *.yaml).")
]
SigmaFormat = Annotated[  # what convert prints, not a report's md/csv/json
    str, _option("--format", help="dsl: one JSON line per rule with its query DSL.", env=None)
]
Examples = Annotated[int, _option("--examples", help="Example events shown per rule.", env=None)]

# -- config show -----------------------------------------------------------------------------------
ShowCommand = Annotated[str, typer.Argument(help="backfill, tail, setup, report.clickops, ...")]
ShowArgs = Annotated[
    list[str] | None,
    typer.Argument(help="The command's own options after --, as you would run it."),
]

# -- demo ------------------------------------------------------------------------------------------
DemoEvents = Annotated[int, _option("--events", help="Events in the generated archive.", env=None)]
KeepRunning = Annotated[
    bool,
    _option("--keep-running", help="Leave the servers up and print their URLs.", env=None),
]
DemoSeed = Annotated[int, _option("--seed", help="Seed of the generated archive.", env=None)]
