"""The transform's caches change its speed, never its output: every document of the corpus, of a
synthetic archive and of records with odd values in the fields the enrichers read is the same,
byte for byte, with every cache of ``ingest.enrich`` and ``ingest.decode`` bypassed (each cached
function replaced by the function it wraps, the payload texts serialised at every use)."""

from __future__ import annotations

import copy
import gzip
import importlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from ingest import decode
from ingest.decode import decode_object
from ingest.testing import synth

# The modules by name: ``ingest.enrich`` exports functions named like some of them.
_MODULES: tuple[ModuleType, ...] = tuple(
    importlib.import_module(f"ingest.enrich.{name}")
    for name in ("actor", "change", "ecs", "flat", "geo", "guard", "resource", "tool")
)

# Where the enrichers look, and values a record may hold there (CloudTrail's own, and the odd
# ones a hand-written or damaged record brings: wrong types, empties, equal-but-not-identical
# keys such as 1 and True).
_FIELDS = (
    ("eventSource",),
    ("eventName",),
    ("eventType",),
    ("readOnly",),
    ("userAgent",),
    ("sourceIPAddress",),
    ("sessionCredentialFromConsole",),
    ("recipientAccountId",),
    ("errorCode",),
    ("resources",),
    ("userIdentity",),
    ("userIdentity", "type"),
    ("userIdentity", "principalId"),
    ("userIdentity", "userName"),
    ("userIdentity", "arn"),
    ("userIdentity", "accountId"),
    ("userIdentity", "invokedBy"),
    ("userIdentity", "sessionContext"),
    ("userIdentity", "sessionContext", "sessionIssuer", "userName"),
    ("tlsDetails", "tlsVersion"),
    ("tlsDetails", "cipherSuite"),
    ("tlsDetails", "clientProvidedHostHeader"),
    ("requestParameters",),
    ("requestParameters", "roleArn"),
    ("requestParameters", "bucketName"),
    ("requestParameters", "userName"),
    ("requestParameters", "groupName"),
    ("requestParameters", "instancesSet"),
    ("responseElements",),
    ("responseElements", "credentials"),
    ("additionalEventData",),
)
_VALUES = (
    None,
    "",
    0,
    1,
    1.0,
    True,
    False,
    "true",
    [],
    ["x"],
    {},
    {"a": 1},
    {"": "empty key", "a.": {"b..c": "x" * 5000}},
    "AssumedRole",
    "IAMUser",
    "AWSService",
    "AROAEXAMPLE:jane@example.com",
    "x:",
    "AWS Internal",
    "ec2.amazonaws.com",
    "192.0.2.1",
    "::1",
    "arn:aws:iam::111122223333:role/r",
    "signin.amazonaws.com",
    "iam.amazonaws.com",
    "ConsoleLogin",
    "GetObject",
    "DeleteUser",
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
    "aws-cli/2.15.0 Python/3.11",
    "TLSv1.2",
    "AwsCloudTrailInsight",
)


def _set(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    holder: Any = record
    for step in path[:-1]:
        if not isinstance(holder.get(step), dict):
            holder[step] = {}
        holder = holder[step]
    holder[path[-1]] = value


def odd_records(base: list[dict[str, Any]], n: int, seed: int = 16) -> Iterator[dict[str, Any]]:
    """``n`` copies of records of ``base``, each with one to three fields set to an odd value."""
    rng = random.Random(seed)
    for _ in range(n):
        record = copy.deepcopy(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            _set(record, rng.choice(_FIELDS), copy.deepcopy(rng.choice(_VALUES)))
        yield record


def _documents(objects: list[tuple[str, bytes]]) -> list[Any]:
    out = []
    for key, data in objects:
        got = decode_object(key, data)
        out.append(
            (
                [(d.doc_id, d.index_name, d.record_index, d.ndjson) for d in got.documents],
                [(r.record_index, r.error_type, r.reason) for r in got.rejected],
                got.enrich_failed,
            )
        )
    return out


def _bypass_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cached function of the transform replaced by the function it wraps (the rules,
    loaded once from rules.toml, stay loaded once)."""
    for module in (*_MODULES, decode):
        for name, value in list(vars(module).items()):
            if hasattr(value, "cache_clear") and name != "load_rules":
                monkeypatch.setattr(module, name, value.__wrapped__)
        if hasattr(module, "payload_text"):
            monkeypatch.setattr(module, "payload_text", orjson.dumps)


@pytest.fixture(scope="module")
def objects(corpus: Path) -> list[tuple[str, bytes]]:
    """The corpus (one record an object), a synthetic archive, chaotic payloads and odd values,
    each record set twice so that the second meets warm caches."""
    corpus_records = [
        orjson.loads(p.read_bytes()) for p in sorted((corpus / "events").glob("*.json"))
    ]
    out = [(p.name, p.read_bytes()) for p in sorted((corpus / "events").glob("*.json"))]
    files = list(synth.generate(1500, seed=16, days=1, per_file=300))
    out += [(f.key, f.body) for f in files]
    rng = random.Random(16)
    when = datetime(2024, 5, 1, tzinfo=UTC)
    chaotic = [synth.chaotic_record(rng, when, "111122223333", "us-east-1") for _ in range(300)]
    base = corpus_records + [
        r for f in files[:2] for r in orjson.loads(gzip.decompress(f.body))["Records"]
    ]
    odd = list(odd_records(base, 2000))
    for i, records in enumerate((chaotic, odd)):
        out.append((f"odd-{i}", gzip.compress(orjson.dumps({"Records": records * 2}))))
    return out


class TestCaches:
    def test_documents_equal_without_caches(
        self, objects: list[tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every document, rejection and enrichment failure is the same with the caches as with
        the plain functions they wrap, byte for byte."""
        cached = _documents(objects)
        _bypass_caches(monkeypatch)
        plain = _documents(objects)
        assert len(cached) == len(objects)
        assert sum(len(docs) for docs, _, _ in cached) > 6000
        assert plain == cached

    def test_odd_values_reach_the_enrichers(self, objects: list[tuple[str, bytes]]) -> None:
        """The odd records make enrichers fail and documents still come out: the comparison
        above covers the error paths too."""
        docs, rejected, failed = _documents(objects[-1:])[0]
        assert failed > 0
        assert len(docs) + len(rejected) == 4000
