"""All settings in one place: frozen value objects built once at the edge (the CLI) and passed down.

Precedence is command line > environment (``CT_INGEST_<OPTION>``, read by the CLI layer) >
config file (``ingest.configfile``) > defaults here. Nothing below the CLI reads
``os.environ``: the CLI hands the environment to :func:`from_environment`, which keeps the few
standard variables other tools honour (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_SQS``, ``XDG_STATE_HOME``), and to ``configfile.resolve_path``
(``XDG_CONFIG_HOME``). The demo, which plays a user at a shell, sets the environment for the
servers it starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from ingest.errors import ConfigError
from ingest.retry import RetryPolicy

__all__ = [
    "Environment",
    "Filters",
    "IndexConfig",
    "LocalLocation",
    "MiB",
    "S3Location",
    "Settings",
    "SinkConfig",
    "SourceConfig",
    "default_state_dir",
    "parse_day",
    "parse_location",
]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class S3Location:
    """``s3://bucket/prefix``; ``prefix`` is empty or ends with ``/``."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True, slots=True)
class LocalLocation:
    """A directory laid out like the bucket (for archives synced to disk)."""

    root: Path

    def __str__(self) -> str:
        return str(self.root)


Location = S3Location | LocalLocation


def parse_location(text: str) -> Location:
    """Parse a source argument: ``s3://BUCKET[/PREFIX]`` or a local directory."""
    if text.startswith("s3://"):
        parts = urlsplit(text)
        if not parts.netloc:
            raise ConfigError(f"source {text!r}: no bucket name after s3://")
        prefix = parts.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return S3Location(bucket=parts.netloc, prefix=prefix)
    if "://" in text:
        raise ConfigError(f"source {text!r}: only s3:// URLs and local directories are supported")
    root = Path(text).expanduser()
    if not root.is_dir():
        raise ConfigError(f"source {text!r}: not a directory (and not an s3:// URL)")
    return LocalLocation(root=root.resolve())


_RELATIVE = re.compile(r"^(\d+)d$")


def parse_day(text: str, *, today: date | None = None) -> date:
    """A day from ``YYYY-MM-DD``, a full ISO timestamp, or ``Nd`` (N days before today, UTC)."""
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return (today or datetime.now(UTC).date()) - timedelta(days=int(m[1]))
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ConfigError(f"date {text!r}: expected YYYY-MM-DD or Nd (e.g. 30d)") from None


@dataclass(frozen=True, kw_only=True)
class Filters:
    """Which log files to take, decided from their keys alone (so listing can prune)."""

    since: date | None = None
    until: date | None = None
    accounts: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    include_insight: bool = False
    exclude: tuple[str, ...] = ()  # record rule: eventSource:eventName globs, skipped by rule

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise ConfigError(f"--since {self.since} is after --until {self.until}")


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """Where CloudTrail files come from and how to talk to S3."""

    location: Location
    profile: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    concurrency: int = 32
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1, got {self.concurrency}")


@dataclass(frozen=True, kw_only=True)
class SinkConfig:
    """Where documents go and how bulk requests are shaped."""

    url: str
    index_prefix: str = "cloudtrail-"
    alias: str = "cloudtrail"
    bulk_bytes: int = 5 * MiB
    max_bulk_bytes: int = 9 * MiB
    max_in_flight: int = 4
    target_seconds: float = 10.0  # the adaptive controller aims bulk requests at this duration
    timeout: float = 50.0
    verify_certs: bool = True
    ca_certs: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed, never logged
    aws_auth: str | None = None  # "es" (Amazon OpenSearch Service) or "aoss" (Serverless)
    aws_region: str | None = None
    aws_profile: str | None = None
    compress: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"--opensearch {parts.scheme}://{parts.hostname}: expected http(s)://host[:port]"
            )
        if parts.username or parts.password:
            raise ConfigError(
                "--opensearch: credentials do not belong in the URL; use --user with "
                "CT_INGEST_PASSWORD or --password-file"
            )
        if self.aws_auth not in (None, "es", "aoss"):
            raise ConfigError(f"--aws-auth {self.aws_auth!r}: expected es or aoss")
        if self.aws_auth and self.username:
            raise ConfigError("--aws-auth and --user are exclusive: SigV4 or basic auth, not both")
        if self.aws_auth and not self.aws_region:
            raise ConfigError("--aws-auth needs a region: --aws-region or AWS_REGION")
        if self.username and not self.password:
            raise ConfigError("--user needs a password: CT_INGEST_PASSWORD or --password-file")
        if self.max_bulk_bytes > 100 * MiB:
            raise ConfigError("--max-bulk-bytes may not exceed 100 MiB (OpenSearch's own limit)")
        if not 0 < self.bulk_bytes <= self.max_bulk_bytes:
            raise ConfigError(
                f"--bulk-bytes {self.bulk_bytes} must be positive and at most "
                f"--max-bulk-bytes {self.max_bulk_bytes}"
            )
        if self.max_in_flight < 1:
            raise ConfigError("--max-in-flight must be at least 1")
        if not 0 < self.target_seconds < self.timeout:
            raise ConfigError(
                f"--bulk-target-seconds {self.target_seconds} must be positive and below "
                f"--timeout {self.timeout}"
            )


@dataclass(frozen=True, kw_only=True)
class IndexConfig:
    """Settings of the indices the template creates, and their lifecycle."""

    shards: int = 1
    replicas: int = 1
    refresh_interval: str = "5s"
    codec: str = "default"  # or best_compression
    retention_days: int = 365  # 0 keeps indices forever (no ISM policy)

    def __post_init__(self) -> None:
        if self.shards < 1 or self.replicas < 0:
            raise ConfigError("--shards must be at least 1 and --replicas at least 0")
        if self.codec not in ("default", "best_compression"):
            raise ConfigError(f"--codec {self.codec!r}: expected default or best_compression")
        if self.retention_days < 0:
            raise ConfigError("--retention-days must be 0 (keep forever) or more")
        if not re.fullmatch(r"\d+(ms|s|m|h)|-1", self.refresh_interval):
            raise ConfigError(
                f"--refresh-interval {self.refresh_interval!r}: expected e.g. 5s or 1m"
            )


@dataclass(frozen=True, kw_only=True)
class Settings:
    """One backfill run."""

    source: SourceConfig
    sink: SinkConfig
    filters: Filters = field(default_factory=Filters)
    state_path: Path
    deadletter_path: Path
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    log_format: str = "auto"
    index: IndexConfig = field(default_factory=IndexConfig)
    backfill_mode: bool = True  # refresh off and no replicas while loading, restored after
    retry_failed: bool = False  # fetch objects that failed as a whole in an earlier run again
    drain_seconds: float = 30.0  # on SIGINT/SIGTERM, how long to finish what is in flight
    shard: tuple[int, int] | None = None  # (I, N): this process takes shard I of N
    inflight_bytes: int = 384 * MiB  # bound on the estimated bytes of objects being processed

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError("--workers must be 0 (decode in-process) or more")
        if self.shard is not None and not 0 <= self.shard[0] < self.shard[1]:
            raise ConfigError(
                f"--shard {self.shard[0]}/{self.shard[1]}: expected I/N with 0 <= I < N"
            )
        if self.drain_seconds < 0:
            raise ConfigError("--drain-seconds must be 0 or more")
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigError(f"--log-format {self.log_format!r}: expected auto, json or console")


@dataclass(frozen=True, kw_only=True)
class Environment:
    """The standard variables of other tools that ct-ingest honours."""

    s3_endpoint_url: str | None = None
    sqs_endpoint_url: str | None = None
    state_home: Path | None = None


def from_environment(env: Mapping[str, str]) -> Environment:
    """Read the few standard variables we honour; the CLI passes ``os.environ``."""
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    sqs = env.get("AWS_ENDPOINT_URL_SQS") or env.get("AWS_ENDPOINT_URL") or None
    state_home = env.get("XDG_STATE_HOME")
    return Environment(
        s3_endpoint_url=endpoint,
        sqs_endpoint_url=sqs,
        state_home=Path(state_home) if state_home else None,
    )


def default_state_dir(environment: Environment) -> Path:
    """``$XDG_STATE_HOME/ct-ingest`` or ``~/.local/state/ct-ingest``."""
    base = environment.state_home or Path.home() / ".local" / "state"
    return base / "ct-ingest"
