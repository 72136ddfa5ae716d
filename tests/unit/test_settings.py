"""The one way from parsed options to settings: ``build_settings`` and ``build_sink`` (and tail's
``build_tail``): the defaults, the environment they are handed (never ``os.environ``), and the
configuration errors that name the option. No servers."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.config import (
    DEFAULT_ALIAS,
    DEFAULT_BULK_BYTES,
    DEFAULT_CONCURRENCY,
    DEFAULT_INDEX_PREFIX,
    DEFAULT_MAX_BULK_BYTES,
    LocalLocation,
    MiB,
    S3Location,
    build_settings,
    build_sink,
)
from ingest.errors import ConfigError
from ingest.retry import RetryPolicy
from ingest.runner import build_tail
from ingest.tail import TailConfig

URL = "http://127.0.0.1:9200"


def _settings(tmp_path: Path, env: dict[str, str] | None = None, **options: Any) -> Any:
    return build_settings({"source": str(tmp_path), "opensearch": URL, **options}, env or {})


class TestBuildSettings:
    def test_defaults(self, tmp_path: Path) -> None:
        """With only a source and a URL, every setting is the library's default."""
        settings = _settings(tmp_path, {"XDG_STATE_HOME": str(tmp_path / "xdg")})
        state = tmp_path / "xdg" / "ct-ingest" / "ledger.sqlite"
        assert LocalLocation(tmp_path.resolve()) == settings.source.location
        assert (state, state.parent / "deadletter.jsonl") == (
            settings.state_path,
            settings.deadletter_path,
        )
        assert DEFAULT_CONCURRENCY == settings.source.concurrency
        assert (DEFAULT_INDEX_PREFIX, DEFAULT_ALIAS) == (
            settings.sink.index_prefix,
            settings.sink.alias,
        )
        assert (DEFAULT_BULK_BYTES, DEFAULT_MAX_BULK_BYTES) == (
            settings.sink.bulk_bytes,
            settings.sink.max_bulk_bytes,
        )
        assert RetryPolicy() == settings.sink.retry == settings.source.retry
        assert (os.cpu_count() or 1) == settings.workers
        assert (True, False, None) == (
            settings.backfill_mode,
            settings.retry_failed,
            settings.shard,
        )
        assert (None, None, frozenset(), ()) == (
            settings.filters.since,
            settings.filters.until,
            settings.filters.accounts,
            settings.filters.exclude,
        )
        assert (None, None, None) == (
            settings.source.endpoint_url,
            settings.sink.username,
            settings.source.credentials,
        )

    def test_none_is_the_default(self, tmp_path: Path) -> None:
        """An option that is present but None (typer's unset) takes the default."""
        settings = _settings(tmp_path, concurrency=None, workers=None, alias=None, timeout=None)
        assert (DEFAULT_CONCURRENCY, DEFAULT_ALIAS) == (
            settings.source.concurrency,
            settings.sink.alias,
        )

    def test_options_reach_their_settings(self, tmp_path: Path) -> None:
        """Options are named as on the command line; sizes in MiB become bytes."""
        settings = _settings(
            tmp_path,
            since="2024-03-01",
            until="2024-03-05",
            account=["111122223333"],
            region="eu-west-1",
            exclude=["kms.amazonaws.com:Decrypt"],
            include_insight=True,
            bulk_mib=1.5,
            inflight_mib=64,
            gzip=True,
            shard="1/4",
            workers=0,
            retry_deadline=60,
            deadletter=tmp_path / "dl.jsonl",
        )
        assert ("2024-03-01", "2024-03-05") == (
            str(settings.filters.since),
            str(settings.filters.until),
        )
        assert (frozenset({"111122223333"}), frozenset({"eu-west-1"})) == (
            settings.filters.accounts,
            settings.filters.regions,
        )
        assert ("kms.amazonaws.com:Decrypt",) == settings.filters.exclude
        assert (int(1.5 * MiB), 64 * MiB) == (settings.sink.bulk_bytes, settings.inflight_bytes)
        assert (True, True, (1, 4), 0) == (
            settings.filters.include_insight,
            settings.sink.compress,
            settings.shard,
            settings.workers,
        )
        assert RetryPolicy.within(60) == settings.sink.retry
        assert tmp_path / "dl.jsonl" == settings.deadletter_path

    def test_an_s3_source_and_its_endpoint_come_from_the_env_given(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) of the env handed in; os.environ is not
        read."""
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://from-os-environ:1")
        options = {"source": "s3://bucket/pre", "opensearch": URL, "state": tmp_path / "l"}
        assert None is build_settings(options, {}).source.endpoint_url
        env = {"AWS_ENDPOINT_URL": "http://any:2", "AWS_ENDPOINT_URL_S3": "http://s3:3"}
        settings = build_settings(options, env)
        assert (S3Location("bucket", "pre/"), "http://s3:3") == (
            settings.source.location,
            settings.source.endpoint_url,
        )
        assert (
            "http://any:2"
            == build_settings(options, {"AWS_ENDPOINT_URL": "http://any:2"}).source.endpoint_url
        )

    def test_an_empty_profile_is_none(self, tmp_path: Path) -> None:
        """An empty AWS_PROFILE (profile "") means no profile, for S3 and SigV4 alike."""
        settings = _settings(tmp_path, profile="")
        assert (None, None) == (settings.source.profile, settings.sink.aws_profile)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"retry_deadline": 0}, "--retry-deadline must be positive"),
            ({"shard": "x"}, "--shard 'x': expected I/N"),
            ({"shard": "4/4"}, "--shard 4/4: expected I/N with 0 <= I < N"),
            ({"since": "last week"}, "date 'last week'"),
            ({"since": "2024-03-05", "until": "2024-03-01"}, "is after --until"),
            ({"concurrency": "many"}, "--concurrency 'many': expected a whole number"),
            ({"concurrency": 0}, "--concurrency must be at least 1"),
            ({"include_insight": "yes"}, "--include-insight 'yes': expected true or false"),
            ({"account": [1]}, "--account [1]: expected text"),
            ({"bulk_mib": 20}, "--bulk-bytes"),
            ({"bulk_linger_ms": -1}, "--bulk-linger-ms -1: 0 to 60000"),
            ({"opensearch": "not a url"}, "--opensearch"),
            ({"opensearch": None}, "--opensearch URL is required"),
            ({"source": None}, "a source (s3://BUCKET or a directory) is required"),
            ({"source": "ftp://x/y"}, "only s3:// URLs and local directories"),
            ({"log_format": "xml"}, "--log-format 'xml'"),
            ({"workers": -1}, "--workers must be 0"),
        ],
    )
    def test_bad_values_are_configuration_errors(
        self, tmp_path: Path, options: dict[str, Any], message: str
    ) -> None:
        """A bad value raises ConfigError naming the option."""
        with pytest.raises(ConfigError) as caught:
            _settings(tmp_path, **options)
        assert message in str(caught.value)


class TestBuildSink:
    def test_defaults_and_other_options_ignored(self) -> None:
        """A command's own options (--repair, --json, ...) are not the sink's business."""
        sink = build_sink({"opensearch": URL, "repair": True, "as_json": False}, {})
        assert (URL, DEFAULT_INDEX_PREFIX, DEFAULT_ALIAS, True, None) == (
            sink.url,
            sink.index_prefix,
            sink.alias,
            sink.verify_certs,
            sink.compress,
        )

    @pytest.mark.parametrize(
        ("gzip", "plain_target", "serverless"),
        [(None, True, False), (True, True, True), (False, False, False)],
    )
    def test_gzip_is_auto_unless_given(
        self, gzip: bool | None, plain_target: bool, serverless: bool
    ) -> None:
        """Unset, --gzip gzips bulk bodies for every target but Serverless; --gzip and
        --no-gzip decide for every target."""
        sink = build_sink({"opensearch": URL, "gzip": gzip}, {})
        assert (gzip, plain_target, serverless) == (
            sink.compress,
            sink.gzips(serverless=False),
            sink.gzips(serverless=True),
        )

    def test_password_from_the_env_given(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The basic-auth password is CT_INGEST_PASSWORD of the env handed in, not os.environ."""
        monkeypatch.setenv("CT_INGEST_PASSWORD", "from-os-environ")
        sink = build_sink({"opensearch": URL, "user": "alice"}, {"CT_INGEST_PASSWORD": "pw"})
        assert ("alice", "pw") == (sink.username, sink.password)
        assert "pw" not in repr(sink)
        with pytest.raises(ConfigError, match="--user needs a password"):
            build_sink({"opensearch": URL, "user": "alice"}, {})

    def test_password_file_wins(self, tmp_path: Path) -> None:
        """--password-file's first line is the password; an empty file is an error."""
        secret = tmp_path / "pw"
        secret.write_text("s3cret\nignored\n")
        options = {"opensearch": URL, "user": "alice", "password_file": secret}
        assert "s3cret" == build_sink(options, {"CT_INGEST_PASSWORD": "pw"}).password
        secret.write_text("")
        with pytest.raises(ConfigError, match="cannot read a password"):
            build_sink(options, {})

    def test_no_password_without_a_user(self) -> None:
        """Without --user the password is not read at all."""
        assert None is build_sink({"opensearch": URL}, {"CT_INGEST_PASSWORD": "pw"}).password

    def test_linger_in_milliseconds(self) -> None:
        """--bulk-linger-ms becomes the sink's linger in seconds (default 200 ms)."""
        assert 0.2 == build_sink({"opensearch": URL}, {}).linger_seconds
        assert 0.05 == build_sink({"opensearch": URL, "bulk_linger_ms": 50}, {}).linger_seconds

    def test_sigv4_needs_a_region(self) -> None:
        """--aws-auth without a region is a configuration error."""
        with pytest.raises(ConfigError, match="--aws-auth needs a region"):
            build_sink({"opensearch": URL, "aws_auth": "es"}, {})


class TestBuildTail:
    def test_defaults(self) -> None:
        """With no tail options the config is TailConfig's defaults, SQS endpoint from env."""
        config = build_tail({"source": "s3://b"}, {"AWS_ENDPOINT_URL_SQS": "http://sqs:1"})
        expected = TailConfig(sqs_endpoint_url="http://sqs:1")
        assert expected == config

    def test_options_in_their_units(self) -> None:
        """Minutes become a timedelta and seconds; --since is a start point."""
        config = build_tail(
            {"source": "s3://b", "rewind_minutes": 5, "rediscover_minutes": 2, "since": "2h"},
            {},
        )
        assert (timedelta(minutes=5), 120) == (config.rewind, config.rediscover_seconds)
        assert config.since is not None
        assert timedelta(hours=2) - (datetime.now(UTC) - config.since) < timedelta(minutes=1)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"source": "/tmp/x", "sqs_queue_url": "http://q"}, "needs an s3:// source"),
            ({"source": "s3://b", "poll_interval": 0}, "--poll-interval must be positive"),
            ({"source": "s3://b", "rewind_minutes": -1}, "--rewind-minutes not negative"),
            (
                {"source": "s3://b", "sqs_queue_url": "http://q", "since": "1d"},
                "applies to polling",
            ),
            ({"source": "s3://b", "since": "soon"}, "--since 'soon'"),
        ],
    )
    def test_bad_values_are_configuration_errors(
        self, options: dict[str, Any], message: str
    ) -> None:
        """Inconsistent tail options raise ConfigError naming the option."""
        with pytest.raises(ConfigError) as caught:
            build_tail(options, {})
        assert message in str(caught.value)
