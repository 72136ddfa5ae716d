"""Where ``tail`` starts reading: ``--since`` parsing, ``--since`` as the start of prefixes with
nothing settled, the ledger's watermark where there is one, and the start-up line. A real
directory laid out like the bucket and a real ledger; the emitted keys are what is checked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.checkpoint import Ledger, ObjectCounts, Status
from ingest.config import LocalLocation, Settings, SinkConfig, SourceConfig
from ingest.errors import ConfigError
from ingest.listing import RegionPrefix
from ingest.source import LocalStore, ObjectRef
from ingest.tail import Health, TailConfig, parse_since, poller
from ingest.tail.polling import _poll_all

ACCOUNT = "111122223333"
NOW = datetime(2026, 11, 28, 10, 40, tzinfo=UTC)


class TestParseSince:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
            ("2026-11-27T10:40Z", datetime(2026, 11, 27, 10, 40, tzinfo=UTC)),
            ("2026-11-27T10:40", datetime(2026, 11, 27, 10, 40, tzinfo=UTC)),
            ("2026-11-27T12:40+02:00", datetime(2026, 11, 27, 10, 40, tzinfo=UTC)),
            ("30d", NOW - timedelta(days=30)),
            ("6h", NOW - timedelta(hours=6)),
            (" 0d ", NOW),
        ],
    )
    def test_accepted_forms(self, text: str, expected: datetime) -> None:
        """Dates are midnight UTC, naive timestamps UTC, Nd/Nh count back from now."""
        assert expected == parse_since(text, now=NOW)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("yesterday", "--since 'yesterday': expected YYYY-MM-DD, an ISO timestamp"),
            ("30m", "--since '30m': expected"),
            ("2026-13-01", "--since '2026-13-01': expected"),
            ("2026-11-29", "--since '2026-11-29': 2026-11-29T00:00Z is in the future"),
        ],
    )
    def test_bad_input_is_a_clear_error(self, text: str, message: str) -> None:
        with pytest.raises(ConfigError) as err:
            parse_since(text, now=NOW)
        assert str(err.value).startswith(message)


def _key(region: str, at: datetime, tag: str) -> str:
    return (
        f"AWSLogs/{ACCOUNT}/CloudTrail/{region}/{at:%Y/%m/%d}/"
        f"{ACCOUNT}_CloudTrail_{region}_{at:%Y%m%dT%H%MZ}_{tag}.json.gz"
    )


def _write(root: Path, key: str) -> str:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"{}")
    return key


def _settings(root: Path) -> Settings:
    return Settings(
        source=SourceConfig(location=LocalLocation(root)),
        sink=SinkConfig(url="http://127.0.0.1:9"),
        state_path=root.parent / "ledger.sqlite",
        deadletter_path=root.parent / "deadletter.jsonl",
    )


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """us-east-1 has a watermark five days back in the ledger; eu-west-1 has nothing settled."""
    root = tmp_path / "bucket"
    keys = {
        "east-6d": _key("us-east-1", NOW - timedelta(days=6), "a"),
        "east-5d": _key("us-east-1", NOW - timedelta(days=5), "mark"),
        "east-3d": _key("us-east-1", NOW - timedelta(days=3), "b"),
        "east-1h": _key("us-east-1", NOW - timedelta(hours=1), "c"),
        "west-3d": _key("eu-west-1", NOW - timedelta(days=3), "d"),
        "west-1d": _key("eu-west-1", NOW - timedelta(days=1), "e"),
        "west-1h": _key("eu-west-1", NOW - timedelta(hours=1), "f"),
    }
    for key in keys.values():
        _write(root, key)
    return root, keys


def _regions() -> list[RegionPrefix]:
    return [
        RegionPrefix(f"AWSLogs/{ACCOUNT}/CloudTrail/{r}/", ACCOUNT, r)
        for r in ("eu-west-1", "us-east-1")
    ]


class TestStartPoint:
    def test_since_starts_fresh_prefixes_and_the_watermark_wins(
        self, archive: tuple[Path, dict[str, str]], tmp_path: Path
    ) -> None:
        """With --since two days back: the fresh region is read from there on; the region with
        a five-day-old watermark is read from the watermark (minus the rewind), gap included.
        A second poll of a prefix still without anything settled starts at the first poll minus
        the rewind, not at --since again."""
        root, keys = archive
        store = LocalStore(LocalLocation(root))
        settings = _settings(root)
        config = TailConfig(since=NOW - timedelta(days=2))
        emitted: list[str] = []

        async def emit(ref: ObjectRef) -> None:
            emitted.append(ref.key)

        with Ledger(tmp_path / "ledger.sqlite") as ledger:
            ledger.record(
                store.name, ObjectRef(keys["east-5d"], "x", 2), Status.DONE, ObjectCounts()
            )
            listed: dict[str, datetime] = {}
            since = NOW - timedelta(days=2)
            poll = _poll_all(store, _regions(), ledger, config, emit, settings, NOW, since, listed)
            asyncio.run(poll)
            assert sorted(
                keys[k] for k in ("east-5d", "east-3d", "east-1h", "west-1d", "west-1h")
            ) == sorted(emitted)

            emitted.clear()
            later = _write(root, _key("eu-west-1", NOW + timedelta(minutes=30), "g"))
            poll = _poll_all(
                store,
                _regions()[:1],
                ledger,
                config,
                emit,
                settings,
                NOW + timedelta(hours=1),
                since,
                listed,
            )
            asyncio.run(poll)
            assert [later] == emitted

    def test_start_up_line_says_where_reading_starts(
        self,
        archive: tuple[Path, dict[str, str]],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """One line on stderr names the start, and says when the ledger's watermarks apply."""
        root, keys = archive
        store = LocalStore(LocalLocation(root))
        settings = _settings(root)
        health = Health(threshold=60)

        async def run(ledger: Ledger, config: TailConfig) -> None:
            async def emit(ref: ObjectRef) -> None:
                return None

            task = asyncio.create_task(
                poller(settings, store, ledger, config, health, lambda: NOW)(emit)
            )
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        with Ledger(tmp_path / "ledger.sqlite") as ledger:
            asyncio.run(run(ledger, TailConfig(poll_interval=60)))
            assert (
                "ct-ingest tail: reading objects from 2026-11-27T10:40Z; "
                "older ones: run backfill or pass --since\n"
            ) in capsys.readouterr().err
            ledger.record(
                store.name, ObjectRef(keys["east-5d"], "x", 2), Status.DONE, ObjectCounts()
            )
            since = TailConfig(poll_interval=60, since=NOW - timedelta(days=30))
            asyncio.run(run(ledger, since))
            assert (
                "ct-ingest tail: reading objects from 2026-10-29T10:40Z (where the ledger has "
                "settled files: from 20 min before the newest); older ones: run backfill or "
                "pass --since\n"
            ) in capsys.readouterr().err
