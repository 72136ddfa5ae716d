"""CloudTrail's S3 key layout, as pure functions.

CloudTrail delivers to::

    [PREFIX/]AWSLogs/[o-ORGID/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/
        ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_UNIQUE.json.gz

beside ``CloudTrail-Digest/`` (signed digests, no records), ``CloudTrail-Insight/`` (Insights
events) and ``ConfigWritabilityCheckFile`` objects that the service writes to test access.
Listing walks this tree level by level (see ``ingest.listing``); the functions here tell which
level a path segment belongs to and whether a key is a log file worth fetching.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import Enum, StrEnum

__all__ = [
    "AWSLOGS",
    "Level",
    "LogKey",
    "TrailKind",
    "is_account",
    "is_log_name",
    "is_org",
    "is_region",
    "parse_log_key",
]

AWSLOGS = "AWSLogs/"

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")
_LOG_FILE = re.compile(
    r"^(?P<account>\d{12})_(?P<kind>CloudTrail|CloudTrail-Insight)_(?P<region>[a-z0-9-]+)_"
    r"(?P<stamp>\d{8}T\d{4}Z)_(?P<unique>[A-Za-z0-9]+)\.json(?:\.gz)?$"
)


class TrailKind(StrEnum):
    """The folders CloudTrail writes under an account."""

    LOGS = "CloudTrail"
    INSIGHT = "CloudTrail-Insight"
    DIGEST = "CloudTrail-Digest"


class Level(int, Enum):
    """The levels of the key tree below ``AWSLogs/``, in order."""

    ACCOUNT = 0  # an account id, or an organization id whose children are accounts
    KIND = 1  # CloudTrail / CloudTrail-Insight / CloudTrail-Digest
    REGION = 2
    YEAR = 3
    MONTH = 4
    DAY = 5
    FILE = 6


def is_account(segment: str) -> bool:
    return bool(_ACCOUNT.match(segment))


def is_org(segment: str) -> bool:
    return bool(_ORG.match(segment))


def is_region(segment: str) -> bool:
    return bool(_REGION.match(segment))


@dataclass(frozen=True, slots=True)
class LogKey:
    """What a log file's key says about its contents."""

    key: str
    account: str
    region: str
    day: date
    kind: TrailKind
    org: str | None


def is_log_name(name: str, account: str, kind: str, region: str) -> bool:
    """Whether ``name``, a key's last segment below a day folder of ``account``, ``kind`` and
    ``region`` (folders already checked), is a log file: :func:`parse_log_key`'s test of the
    name, at a fraction of its cost, for a walk that has checked the folders on the way down."""
    m = _LOG_FILE.match(name)
    return m is not None and m["account"] == account and m["kind"] == kind and m["region"] == region


def parse_log_key(key: str) -> LogKey | None:
    """The parts of a CloudTrail log-file key, or ``None`` when the key is not a log file.

    Digest files, ``ConfigWritabilityCheckFile`` and anything else that does not follow the
    documented layout return ``None``.
    """
    at = key.rfind(AWSLOGS)
    if at < 0:
        return None
    parts = key[at + len(AWSLOGS) :].split("/")
    org = None
    if parts and is_org(parts[0]):
        org, parts = parts[0], parts[1:]
    if len(parts) != 7:
        return None
    account, kind_s, region, yyyy, mm, dd, name = parts
    if not is_account(account) or not is_log_name(name, account, kind_s, region):
        return None  # the name's kind is CloudTrail or CloudTrail-Insight, never a digest
    try:
        day = date(int(yyyy), int(mm), int(dd))
    except ValueError:
        return None
    return LogKey(key=key, account=account, region=region, day=day, kind=TrailKind(kind_s), org=org)
