"""All settings in one place: frozen value objects built once at the edge (the CLI) and passed down.

Precedence is command line > environment (``CT_INGEST_<OPTION>``, read by the CLI layer) >
config file (``ingest.configfile``) > defaults here (the ``DEFAULT_*`` constants, which the
dataclasses and the CLI's options share). :func:`build_settings` and :func:`build_sink` turn a
command's parsed options (a mapping keyed by option name, ``index_prefix`` for
``--index-prefix``) into these objects, for every command alike.

Nothing below the CLI reads ``os.environ``: the CLI hands the environment to the builders, to
:func:`from_environment`, which keeps the few standard variables other tools honour
(``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_SQS``, ``XDG_STATE_HOME``),
to :func:`read_password` (``CT_INGEST_PASSWORD``) and to ``configfile.resolve_path``
(``XDG_CONFIG_HOME``). The demo builds its settings directly, with its servers' endpoint and
fake credentials in them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ingest.environment import (
    Environment,
    default_deadletter_path,
    default_ledger_path,
    default_state_dir,
    from_environment,
)
from ingest.errors import ConfigError
from ingest.retry import RetryPolicy

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_BULK_BYTES",
    "DEFAULT_BULK_LINGER_SECONDS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DRAIN_SECONDS",
    "DEFAULT_GZIP_LEVEL",
    "DEFAULT_INDEX_PREFIX",
    "DEFAULT_INFLIGHT_BYTES",
    "DEFAULT_LOG_FORMAT",
    "DEFAULT_MAX_BULK_BYTES",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_OBJECT_BYTES",
    "DEFAULT_RETRY_DEADLINE",
    "DEFAULT_TARGET_SECONDS",
    "DEFAULT_TIMEOUT",
    "GZIP_MIN_BYTES",
    "TARGETS",
    "Environment",
    "Filters",
    "IndexConfig",
    "LocalLocation",
    "MiB",
    "S3Location",
    "Settings",
    "SinkConfig",
    "SourceConfig",
    "build_settings",
    "build_sink",
    "default_deadletter_path",
    "default_ledger_path",
    "default_state_dir",
    "from_environment",
    "orchestrator_shard",
    "parse_day",
    "parse_location",
    "parse_shard",
    "read_password",
]

MiB = 1024 * 1024

# The defaults, here once: the dataclasses below, the builders and the CLI's options use them.
DEFAULT_INDEX_PREFIX = "cloudtrail-"  # monthly indices cloudtrail-YYYY.MM
DEFAULT_ALIAS = "cloudtrail"  # the alias over all of them, which readers query
DEFAULT_CONCURRENCY = 32  # parallel S3 requests; why 32: docs/benchmarks.md, "Fetch concurrency"
DEFAULT_BULK_BYTES = 5 * MiB
DEFAULT_MAX_BULK_BYTES = 9 * MiB
DEFAULT_MAX_IN_FLIGHT = 4
DEFAULT_BULK_LINGER_SECONDS = 0.2  # a partial body waits this long for more documents
DEFAULT_TARGET_SECONDS = 10.0
DEFAULT_TIMEOUT = 50.0
DEFAULT_RETRY_DEADLINE = 300.0
DEFAULT_DRAIN_SECONDS = 30.0
DEFAULT_GZIP_LEVEL = 2  # --gzip: zlib level, from scripts/bench_bulk.py fill (SinkConfig.compress)
GZIP_MIN_BYTES = 1024  # --gzip leaves smaller bodies (settings, templates) as they are
DEFAULT_INFLIGHT_BYTES = 384 * MiB
DEFAULT_MAX_OBJECT_BYTES = 2048 * MiB  # one object's JSON: refused past it (a gzip bomb stops)
DEFAULT_STREAM_ABOVE, DEFAULT_BATCH_BYTES = 8 * MiB, 4 * MiB  # larger ones: read in batches
DEFAULT_LOG_FORMAT = "auto"
# The kinds of cluster --target may declare (auto: identified at start, ingest.targets).
TARGETS = ("auto", "opensearch", "elasticsearch", "serverless-search", "serverless-timeseries")


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
    concurrency: int = DEFAULT_CONCURRENCY
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # (access key id, secret key) instead of the AWS credential chain, e.g. a local S3 server's
    # fake keys; never printed, never logged.
    credentials: tuple[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1, got {self.concurrency}")


@dataclass(frozen=True, kw_only=True)
class SinkConfig:
    """Where documents go and how bulk requests are shaped."""

    url: str
    index_prefix: str = DEFAULT_INDEX_PREFIX
    alias: str = DEFAULT_ALIAS
    bulk_bytes: int = DEFAULT_BULK_BYTES
    max_bulk_bytes: int = DEFAULT_MAX_BULK_BYTES
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    # the adaptive controller aims bulk requests at this duration
    target_seconds: float = DEFAULT_TARGET_SECONDS
    linger_seconds: float = DEFAULT_BULK_LINGER_SECONDS
    timeout: float = DEFAULT_TIMEOUT
    verify_certs: bool = True
    ca_certs: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed, never logged
    aws_auth: str | None = None  # "es" (Amazon OpenSearch Service) or "aoss" (Serverless)
    aws_region: str | None = None
    aws_profile: str | None = None
    # --gzip: None = auto, on except for Serverless (gzips). Level 2 in a thread (ingest.cluster):
    # the wire carries 0.26x the records' JSON against 2.15x plain, for 0.94x the process tree's
    # CPU and 1.06x the records/s (scripts/bench_bulk.py fill, 60k records). OpenSearch's and
    # Elasticsearch's HTTP layers always inflate gzip requests (http.compression is for answers);
    # Serverless documents none, so it gets plain bodies. True/False: --gzip/--no-gzip.
    compress: bool | None = None
    gzip_level: int = DEFAULT_GZIP_LEVEL
    # auto (identified from the endpoint and the cluster's answers, ingest.targets), opensearch,
    # elasticsearch, serverless-search or serverless-timeseries
    target: str = "auto"

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
        if self.target not in TARGETS:
            raise ConfigError(f"--target {self.target!r}: expected one of {', '.join(TARGETS)}")
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
        if not 1 <= self.gzip_level <= 9:
            raise ConfigError(f"gzip level {self.gzip_level}: 1 to 9")
        if not 0 <= self.linger_seconds <= 60:
            raise ConfigError(f"--bulk-linger-ms {self.linger_seconds * 1000:g}: 0 to 60000")
        if not 0 < self.target_seconds < self.timeout:
            raise ConfigError(
                f"--bulk-target-seconds {self.target_seconds} must be positive and below "
                f"--timeout {self.timeout}"
            )

    def gzips(self, *, serverless: bool) -> bool:
        """Whether bulk bodies go gzipped to a target that is (or is not) Serverless."""
        return not serverless if self.compress is None else self.compress


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
    log_format: str = DEFAULT_LOG_FORMAT
    index: IndexConfig = field(default_factory=IndexConfig)
    backfill_mode: bool = True  # refresh off and no replicas while loading, restored after
    retry_failed: bool = False  # fetch objects that failed as a whole in an earlier run again
    drain_seconds: float = DEFAULT_DRAIN_SECONDS  # on SIGINT/SIGTERM, time to finish in flight
    shard: tuple[int, int] | None = None  # (I, N): this process takes shard I of N
    # bound on the estimated bytes of objects being processed
    inflight_bytes: int = DEFAULT_INFLIGHT_BYTES
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES  # inflated JSON of one object, at most
    stream_above: int = DEFAULT_STREAM_ABOVE  # larger objects: in batches of batch_bytes
    batch_bytes: int = DEFAULT_BATCH_BYTES
    geoip: tuple[Path | None, Path | None] = (None, None)  # --geoip-db, --asn-db (MaxMind)

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


def read_password(
    user: str | None, password_file: Path | None, env: Mapping[str, str]
) -> str | None:
    """The basic-auth password: ``CT_INGEST_PASSWORD`` in ``env`` or the first line of
    ``--password-file`` (never a command-line argument, where it would show in process lists
    and shell history). None without a user."""
    if not user:
        return None
    if password_file is not None:
        try:
            return password_file.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError) as exc:
            raise ConfigError(f"--password-file {password_file}: cannot read a password") from exc
    return env.get("CT_INGEST_PASSWORD") or None


# The orchestrators' own index variables: (index, count) of Kubernetes Indexed Jobs (the
# manifest passes the completion count, which Kubernetes does not) and AWS Batch array jobs.
_ORCHESTRATOR_SHARDS = (
    ("JOB_COMPLETION_INDEX", "JOB_COMPLETIONS"),
    ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"),
)


def orchestrator_shard(env: Mapping[str, str]) -> str | None:
    """``I/N`` from an Indexed Job's or an array job's variables in ``env``, or ``None``."""
    for index, count in _ORCHESTRATOR_SHARDS:
        if env.get(index):
            if not env.get(count):
                raise ConfigError(f"{index} is set but {count} is not: pass --shard I/N")
            return f"{env[index]}/{env[count]}"
    return None


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` → (I, N)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    return index, count


T = TypeVar("T")
_KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _get(options: Mapping[str, Any], key: str, kind: type[T], default: T) -> T:
    """``options[key]`` if present and not None, else ``default``; a value of another kind is a
    :class:`ConfigError` that names the option (an int passes for a float)."""
    value = options.get(key)
    if value is None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _bad(key, value, _KINDS.get(kind, kind.__name__))
    return value


def _bad(key: str, value: object, expected: str) -> ConfigError:
    return ConfigError(f"--{key.replace('_', '-')} {value!r}: expected {expected}")


def _text(options: Mapping[str, Any], key: str) -> str | None:
    return _get(options, key, str, "") or None


def _path(options: Mapping[str, Any], key: str) -> Path | None:
    value = options.get(key)
    if value is not None and not isinstance(value, (str, Path)):
        raise _bad(key, value, "a path")
    return None if value is None else Path(value)


def _strings(options: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = options.get(key) or ()
    items = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(v, str) for v in items):
        raise _bad(key, value, "text or a list of text")
    return items


def _mib(options: Mapping[str, Any], key: str, default_bytes: int) -> int:
    return int(_get(options, key, float, default_bytes / MiB) * MiB)


def _required(options: Mapping[str, Any], key: str, what: str) -> str:
    value = _text(options, key)
    if value is None:
        raise ConfigError(f"{what} is required")
    return value


def _retry(options: Mapping[str, Any]) -> RetryPolicy:
    deadline = _get(options, "retry_deadline", float, DEFAULT_RETRY_DEADLINE)
    if deadline <= 0:
        raise ConfigError(f"--retry-deadline must be positive, got {deadline}")
    return RetryPolicy.within(deadline)


def build_sink(options: Mapping[str, Any], env: Mapping[str, str]) -> SinkConfig:
    """The OpenSearch side from a command's parsed options: ``opensearch`` (required),
    ``index_prefix``, ``alias``, ``bulk_mib``, ``max_bulk_mib``, ``max_in_flight``,
    ``bulk_target_seconds``, ``bulk_linger_ms``, ``timeout``, ``retry_deadline``, ``insecure``,
    ``ca_certs``, ``user`` with ``password_file`` (else ``CT_INGEST_PASSWORD`` in ``env``),
    ``aws_auth``, ``aws_region``, ``profile``, ``gzip``, ``target``. A missing (or None) option
    takes the default (gzip: auto); other keys are ignored (a command's own options). Raises
    :class:`ConfigError` for bad values."""
    user = _text(options, "user")
    ca_certs = _path(options, "ca_certs")
    return SinkConfig(
        url=_required(options, "opensearch", "--opensearch URL"),
        index_prefix=_get(options, "index_prefix", str, DEFAULT_INDEX_PREFIX),
        alias=_get(options, "alias", str, DEFAULT_ALIAS),
        bulk_bytes=_mib(options, "bulk_mib", DEFAULT_BULK_BYTES),
        max_bulk_bytes=_mib(options, "max_bulk_mib", DEFAULT_MAX_BULK_BYTES),
        max_in_flight=_get(options, "max_in_flight", int, DEFAULT_MAX_IN_FLIGHT),
        target_seconds=_get(options, "bulk_target_seconds", float, DEFAULT_TARGET_SECONDS),
        linger_seconds=_get(options, "bulk_linger_ms", float, DEFAULT_BULK_LINGER_SECONDS * 1000)
        / 1000,
        timeout=_get(options, "timeout", float, DEFAULT_TIMEOUT),
        verify_certs=not _get(options, "insecure", bool, False),
        ca_certs=str(ca_certs) if ca_certs else None,
        retry=_retry(options),
        username=user,
        password=read_password(user, _path(options, "password_file"), env),
        aws_auth=_text(options, "aws_auth"),
        aws_region=_text(options, "aws_region"),
        aws_profile=_text(options, "profile"),  # an empty AWS_PROFILE means none
        compress=None if options.get("gzip") is None else _get(options, "gzip", bool, False),
        target=_get(options, "target", str, "auto"),
    )


def build_settings(options: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """A run's settings from a command's parsed options: ``source`` (required), the options of
    :func:`build_sink`, and ``state``, ``deadletter``, ``since``, ``until``, ``account``,
    ``region``, ``include_insight``, ``exclude``, ``concurrency``, ``workers``, ``log_format``,
    ``backfill_mode``, ``retry_failed``, ``drain_seconds``, ``shard`` (``I/N``; when the
    command has the option but it is not given, from :func:`orchestrator_shard`),
    ``inflight_mib``, ``max_object_mib``, ``geoip_db``, ``asn_db``. ``env`` is the process
    environment (``AWS_ENDPOINT_URL_S3``, ``XDG_STATE_HOME``, ``CT_INGEST_PASSWORD``); nothing
    here reads ``os.environ``."""
    environment = from_environment(env)
    retry = _retry(options)
    location = parse_location(_required(options, "source", "a source (s3://BUCKET or a directory)"))
    state = _path(options, "state") or default_state_dir(environment) / "ledger.sqlite"
    since, until, shard = (_text(options, k) for k in ("since", "until", "shard"))
    if shard is None and "shard" in options:  # a command that shards, without --shard
        shard = orchestrator_shard(env)
    cpus = os.cpu_count() or 1
    return Settings(
        source=SourceConfig(
            location=location,
            profile=_text(options, "profile"),
            endpoint_url=environment.s3_endpoint_url,
            region=_text(options, "aws_region"),
            concurrency=_get(options, "concurrency", int, DEFAULT_CONCURRENCY),
            retry=retry,
        ),
        sink=build_sink(options, env),
        filters=Filters(
            since=parse_day(since) if since else None,
            until=parse_day(until) if until else None,
            accounts=frozenset(_strings(options, "account")),
            regions=frozenset(_strings(options, "region")),
            include_insight=_get(options, "include_insight", bool, False),
            exclude=_strings(options, "exclude"),
        ),
        state_path=state,
        deadletter_path=_path(options, "deadletter") or state.parent / "deadletter.jsonl",
        workers=_get(options, "workers", int, cpus),
        log_format=_get(options, "log_format", str, DEFAULT_LOG_FORMAT),
        backfill_mode=_get(options, "backfill_mode", bool, True),
        retry_failed=_get(options, "retry_failed", bool, False),
        drain_seconds=_get(options, "drain_seconds", float, DEFAULT_DRAIN_SECONDS),
        shard=parse_shard(shard) if shard else None,
        inflight_bytes=_mib(options, "inflight_mib", DEFAULT_INFLIGHT_BYTES),
        max_object_bytes=_mib(options, "max_object_mib", DEFAULT_MAX_OBJECT_BYTES),
        geoip=(_path(options, "geoip_db"), _path(options, "asn_db")),
    )
