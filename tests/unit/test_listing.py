from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from ingest.config import Filters, LocalLocation
from ingest.listing import ListingStats, list_log_objects
from ingest.source import LocalStore, ObjectRef

ACCOUNTS = ("111122223333", "444455556666")
REGIONS = ("us-east-1", "eu-west-1")
DAYS = (date(2024, 2, 28), date(2024, 3, 1), date(2024, 3, 5))


def _tree(root: Path) -> list[str]:
    """A small bucket on disk: 2 accounts (one under an org) x 2 regions x 3 days x 2 files."""
    keys = []
    for account in ACCOUNTS:
        org = "o-exampleorg1/" if account == ACCOUNTS[1] else ""
        for region in REGIONS:
            for day in DAYS:
                for n in range(2):
                    name = f"{account}_CloudTrail_{region}_{day:%Y%m%d}T14{n}0Z_abc{n}.json.gz"
                    keys.append(f"AWSLogs/{org}{account}/CloudTrail/{region}/{day:%Y/%m/%d}/{name}")
    extra = [
        "AWSLogs/111122223333/CloudTrail/us-east-1/ConfigWritabilityCheckFile",
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/05/"
        "111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240305T141500Z.json.gz",
        "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2024/03/05/"
        "111122223333_CloudTrail-Insight_us-east-1_20240305T1430Z_fX2g.json.gz",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/05/README.txt",
    ]
    for key in keys + extra:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return keys


def _list(root: Path, filters: Filters, prefix: str = "") -> tuple[list[str], ListingStats]:
    found: list[ObjectRef] = []

    async def emit(ref: ObjectRef) -> None:
        found.append(ref)

    async def go() -> ListingStats:
        return await list_log_objects(
            LocalStore(LocalLocation(root)), prefix, filters, emit, concurrency=4
        )

    stats = asyncio.run(go())
    return sorted(r.key for r in found), stats


class TestListLogObjects:
    def test_finds_every_log_file_and_skips_the_rest(self, tmp_path: Path) -> None:
        """All log files are found; digest and insight trees and stray keys count as skipped."""
        keys = _tree(tmp_path)
        found, stats = _list(tmp_path, Filters())
        assert sorted(keys) == found
        assert (stats.skipped_keys, stats.skipped_prefixes) == (2, 2)
        assert stats.day_prefixes == 12

    def test_insight_on_request(self, tmp_path: Path) -> None:
        """With include_insight the Insight files are listed too."""
        keys = _tree(tmp_path)
        found, _ = _list(tmp_path, Filters(include_insight=True))
        assert len(keys) + 1 == len(found)
        assert any("CloudTrail-Insight_" in k for k in found)

    def test_filters_prune_the_walk(self, tmp_path: Path) -> None:
        """Account, region and day filters keep only matching files and list fewer prefixes."""
        keys = _tree(tmp_path)
        _, everything = _list(tmp_path, Filters())
        f = Filters(
            accounts=frozenset({"444455556666"}),
            regions=frozenset({"eu-west-1"}),
            since=date(2024, 3, 1),
            until=date(2024, 3, 1),
        )
        found, stats = _list(tmp_path, f)
        expected = [
            k for k in keys if "/444455556666/" in k and "/eu-west-1/" in k and "/2024/03/01/" in k
        ]
        assert sorted(expected) == found
        assert stats.day_prefixes == 1
        assert stats.list_calls < everything.list_calls / 2

    def test_month_boundaries(self, tmp_path: Path) -> None:
        """since/until are inclusive days, crossing months correctly."""
        keys = _tree(tmp_path)
        found, _ = _list(tmp_path, Filters(since=date(2024, 2, 28), until=date(2024, 3, 1)))
        expected = [k for k in keys if "/2024/02/28/" in k or "/2024/03/01/" in k]
        assert sorted(expected) == found

    def test_prefix_inside_the_tree(self, tmp_path: Path) -> None:
        """A source prefix that already points into AWSLogs starts the walk there."""
        keys = _tree(tmp_path)
        found, _ = _list(
            tmp_path, Filters(), prefix="AWSLogs/o-exampleorg1/444455556666/CloudTrail/"
        )
        assert sorted(k for k in keys if "/444455556666/" in k) == found

    def test_prefix_excluded_by_filters(self, tmp_path: Path) -> None:
        """A prefix naming an account the filters exclude lists nothing."""
        _tree(tmp_path)
        found, stats = _list(
            tmp_path,
            Filters(accounts=frozenset({"111122223333"})),
            prefix="AWSLogs/o-exampleorg1/444455556666/",
        )
        assert (found, stats.list_calls) == ([], 0)
