"""Which cluster ct-ingest writes to, and what that changes: templates, write path, retention.

A run identifies its target once, at start (:func:`identify`), from what is declared
(``--target``), the endpoint's name (``*.aoss.amazonaws.com``, ``--aws-auth aoss``) and, where
those do not tell, the cluster's own answers:

- ``GET /`` answering 404: OpenSearch Serverless (it does not serve ``GET /``);
- ``"distribution": "opensearch"``: OpenSearch at that version (``flat_object`` since 2.7);
- version 7.10.2 with OpenSearch's tagline and no distribution: OpenSearch in the managed
  service's compatibility mode (any version: ``flat_object`` is tried, and dropped if refused);
- ``"tagline": "You Know, for Search"`` (7.10 ``build_flavor: oss``): Elasticsearch, which has
  neither ``flat_object`` nor ``flattened``, and its ISM under ``_opendistro``;
- a bulk item refused for carrying an ``_id`` (:func:`refuses_ids`): a Serverless TIMESERIES
  collection; the bulk client then writes without ``_id`` (``ingest.sink``);
- ``GET _cat/plugins`` (:func:`detect_plugins`, asked by ``setup`` before installing monitors):
  the plugins an OpenSearch cluster runs, by component (``opensearch-alerting``,
  ``opensearch-notifications``); Elasticsearch and Serverless have neither under ``_plugins``.

What each target gets is one table in ``docs/operations.md``; :meth:`Target.notes` says the
same at ``setup`` and in the run's log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
import structlog
from opensearchpy import AsyncOpenSearch

from ingest import cluster
from ingest.config import IndexConfig, SinkConfig
from ingest.errors import SinkError

__all__ = [
    "ALERTING",
    "NOTIFICATIONS",
    "Collection",
    "Kind",
    "Target",
    "detect_plugins",
    "ensure_templates",
    "from_root",
    "identify",
    "install_retention",
    "install_templates",
    "learn_collection",
    "refuses_ids",
]

T = TypeVar("T")
_log = structlog.get_logger("ingest.targets")
_OPENSEARCH_TAGLINE = "The OpenSearch Project"
_FLAT_OBJECT_SINCE = (2, 7)
ALERTING = "opensearch-alerting"  # the components _cat/plugins lists
NOTIFICATIONS = "opensearch-notifications"


class Kind(StrEnum):
    OPENSEARCH = "OpenSearch"
    ELASTICSEARCH = "Elasticsearch"
    SERVERLESS = "OpenSearch Serverless"


class Collection(StrEnum):
    """A Serverless collection's type."""

    SEARCH = "SEARCH"
    TIMESERIES = "TIMESERIES"


@dataclass(slots=True)
class Target:
    """The cluster of a run. Mutable in three places only, each when the cluster itself says so:
    ``flat_object`` (unknown in compatibility mode until a template with it is accepted or
    refused, or read back), ``collection`` (unknown on Serverless until a write with an
    ``_id`` is taken or refused) and ``plugins`` (unknown until :func:`detect_plugins` asks)."""

    kind: Kind = Kind.OPENSEARCH
    version: str = ""  # "" when the cluster does not say (Serverless, compatibility mode)
    flat_object: bool | None = True  # None: not known, tried first
    collection: Collection | None = None  # Serverless only; None: as SEARCH until refused
    compatibility_mode: bool = False
    plugins: frozenset[str] | None = None  # _cat/plugins components; None: not known

    @property
    def custom_ids(self) -> bool:
        """Whether writes carry ``_id`` = eventID (idempotent ``create``)."""
        return self.collection is not Collection.TIMESERIES

    @property
    def index_settings(self) -> bool:
        """Whether index settings can be changed (templates' settings, backfill mode)."""
        return self.kind is not Kind.SERVERLESS

    @property
    def ism_api(self) -> str | None:
        """Where the ISM plugin answers; None where retention is not ISM's (Serverless)."""
        return {
            Kind.OPENSEARCH: "/_plugins/_ism",
            Kind.ELASTICSEARCH: "/_opendistro/_ism",
            Kind.SERVERLESS: None,
        }[self.kind]

    def has_plugin(self, component: str) -> bool:
        """Whether the plugin ``component`` (as ``_cat/plugins`` names it) answers under
        ``_plugins``: never off OpenSearch; where the plugins are not known, assumed (the first
        call to it finds out)."""
        if self.kind is not Kind.OPENSEARCH:
            return False
        return self.plugins is None or component in self.plugins

    @property
    def alerting(self) -> bool:
        """Whether the Alerting plugin ct-ingest's monitors need answers."""
        return self.has_plugin(ALERTING)

    @property
    def dashboards_app(self) -> str:
        return "Kibana" if self.kind is Kind.ELASTICSEARCH else "OpenSearch Dashboards"

    @property
    def is_default(self) -> bool:
        """OpenSearch 2.7 or newer, managed or self-run: nothing differs."""
        return self.kind is Kind.OPENSEARCH and self.flat_object is True

    def describe(self) -> str:
        if self.kind is Kind.SERVERLESS:
            kind = self.collection.value if self.collection else "SEARCH or TIMESERIES"
            return f"{self.kind} ({kind} collection)"
        if self.compatibility_mode:
            return f"{self.kind} (compatibility mode: GET / answers 7.10.2)"
        flavor = " (open-source distribution)" if self.kind is Kind.ELASTICSEARCH else ""
        return f"{self.kind} {self.version or '?'}{flavor}"

    def notes(self) -> list[str]:
        """What differs from the default target, one line each."""
        out = []
        if self.flat_object is False:
            out.append(
                f"payload search: {self.describe()} has no flat_object type: requestParameters, "
                "responseElements and the other payloads stay whole in _source but are not "
                "searchable (ct.flat.* unindexed); the CloudTracker fields and ct.* stay mapped"
            )
        if self.kind is Kind.SERVERLESS and self.collection is None:
            out.append(
                "ids: a SEARCH collection takes _id = eventID (idempotent writes); a TIMESERIES "
                "collection refuses it, which the first write finds out (or pass --target "
                "serverless-timeseries): then documents are written without _id"
            )
        if not self.custom_ids:
            out.append(
                "ids: a TIMESERIES collection takes no custom _id: documents are written "
                "without one, exactly once by the checkpoint alone; a request applied but "
                "unanswered (timeout, dropped connection, 504) is sent again and can duplicate "
                "its documents (counted in the run summary)"
            )
        if not self.index_settings:
            out.append(
                "backfill mode: off (Serverless manages refresh and replicas; no settings changes)"
            )
        return out


def from_root(info: dict[str, Any]) -> Target:
    """The target a cluster's answer to ``GET /`` describes (``{}``: it answered 404)."""
    if not info:
        return Target(Kind.SERVERLESS)
    version = info.get("version") or {}
    number = str(version.get("number", ""))
    tagline = str(info.get("tagline", ""))
    distribution = version.get("distribution")
    if distribution == "opensearch":
        return Target(Kind.OPENSEARCH, number, flat_object=_at_least(number, _FLAT_OBJECT_SINCE))
    if distribution is None and _OPENSEARCH_TAGLINE in tagline:
        return Target(Kind.OPENSEARCH, "", flat_object=None, compatibility_mode=True)
    if distribution is None and ("build_flavor" in version or "for Search" in tagline):
        return Target(Kind.ELASTICSEARCH, number, flat_object=False)
    # another OpenSearch-compatible server: trust its version number, try flat_object
    return Target(Kind.OPENSEARCH, number, flat_object=None)


def _at_least(number: str, least: tuple[int, int]) -> bool | None:
    try:
        major, minor = (int(part) for part in number.split(".")[:2])
    except ValueError:
        return None
    return (major, minor) >= least


def _declared(config: SinkConfig) -> Target | None:
    """What the configuration alone tells: ``--target``, or a Serverless endpoint."""
    declared = config.target
    if declared == "serverless-search":
        return Target(Kind.SERVERLESS, collection=Collection.SEARCH)
    if declared == "serverless-timeseries":
        return Target(Kind.SERVERLESS, collection=Collection.TIMESERIES)
    host = urlsplit(config.url).hostname or ""
    if declared == "auto" and (host.endswith(".aoss.amazonaws.com") or config.aws_auth == "aoss"):
        return Target(Kind.SERVERLESS)
    return None


async def identify(client: AsyncOpenSearch, config: SinkConfig) -> Target:
    """The target of ``config`` (``GET /`` retried under the sink's policy where asked)."""
    target = _declared(config)
    if target is None:
        target = from_root(await cluster.root_info(client, config.retry))
        if config.target == "opensearch" and target.kind is not Kind.OPENSEARCH:
            target = Target(Kind.OPENSEARCH, target.version, flat_object=None)
        elif config.target == "elasticsearch":
            target = Target(Kind.ELASTICSEARCH, target.version, flat_object=False)
    _log.info(
        "target_identified",
        url=config.url,
        target=target.describe(),
        version=target.version or None,
        notes=target.notes() or None,
    )
    return target


async def learn_collection(client: AsyncOpenSearch, config: SinkConfig, target: Target) -> None:
    """On Serverless with the collection's type not known, read it from the documents: one
    whose ``_id`` is not its ``eventID`` was written without ``_id``, into a TIMESERIES
    collection (for ``verify``, which must not write to find out)."""
    if target.kind is not Kind.SERVERLESS or target.collection is not None:
        return
    res = await cluster.call(
        f"search {config.alias} (collection type)",
        lambda: client.search(
            index=config.alias,
            body={"size": 1, "_source": ["eventID"], "query": {"exists": {"field": "eventID"}}},
            params={"ignore_unavailable": "true"},
        ),
        config.retry,
    )
    for hit in res["hits"]["hits"]:
        ids = hit.get("_id") == (hit.get("_source") or {}).get("eventID")
        target.collection = Collection.SEARCH if ids else Collection.TIMESERIES
        _log.info("target_collection", target=target.describe())


async def detect_plugins(client: AsyncOpenSearch, config: SinkConfig, target: Target) -> None:
    """Ask an OpenSearch cluster which plugins it runs (``GET _cat/plugins?format=json``, one
    row per node and component), once. A cluster that will not say (a user without the cluster
    monitor permission is refused) leaves them unknown, logged as ``plugins_unknown``."""
    if target.kind is not Kind.OPENSEARCH or target.plugins is not None:
        return
    try:
        rows = await cluster.call(
            "GET _cat/plugins", lambda: client.cat.plugins(format="json"), config.retry
        )
    except SinkError as exc:
        _log.warning("plugins_unknown", target=target.describe(), reason=str(exc))
        return
    found = (row.get("component") for row in rows if isinstance(row, dict))
    target.plugins = frozenset(str(c) for c in found if c)
    _log.info("target_plugins", target=target.describe(), plugins=sorted(target.plugins))


def refuses_ids(error: Any) -> bool:
    """Whether a bulk item's error is a TIMESERIES collection refusing a custom ``_id``
    ("Document ID is not supported in create/index operation request")."""
    reason = str(error.get("reason", "") if isinstance(error, dict) else error).lower()
    return "document id is not supported" in reason


def _flat_object_refused(exc: SinkError) -> bool:
    text = str(exc)
    return "flat_object" in text and ("No handler for type" in text or "mapper_parsing" in text)


async def install_templates(
    client: AsyncOpenSearch, config: SinkConfig, index: IndexConfig, target: Target
) -> str:
    """Install the templates shaped for ``target``; where it is not known whether the cluster
    has ``flat_object``, try it, and install without it when the cluster refuses the type."""
    return await _trying_flat_object(
        target, lambda: cluster.install_template(client, config, index, **_shape(target))
    )


async def ensure_templates(client: AsyncOpenSearch, config: SinkConfig, target: Target) -> bool:
    """:func:`ingest.cluster.ensure_template` shaped for ``target`` (see
    :func:`install_templates`); True when installed now. Where templates exist and it is not
    known whether the cluster has ``flat_object``, the installed ones tell."""
    installed = await _trying_flat_object(
        target, lambda: cluster.ensure_template(client, config, **_shape(target))
    )
    if not installed and target.flat_object is None:
        name = cluster.component_names(config)["enrichment"]
        body = await cluster.call(
            f"GET _component_template/{name}",
            lambda: client.cluster.get_component_template(name=name),
            config.retry,
        )
        target.flat_object = b'"flat_object"' in orjson.dumps(body)
    return installed


async def _trying_flat_object(target: Target, install: Callable[[], Awaitable[T]]) -> T:
    """``install()`` as ``target`` is shaped; where it is not known whether the cluster has
    ``flat_object`` and the cluster refuses the type, mark it missing and install again."""
    try:
        done = await install()
    except SinkError as exc:
        if target.flat_object is not None or not _flat_object_refused(exc):
            raise
        target.flat_object = False
        _log.warning("flat_object_missing", target=target.describe(), notes=target.notes())
        return await install()
    if target.flat_object is None and done:  # installed with flat_object: the cluster has it
        target.flat_object = True
    return done


def _shape(target: Target) -> dict[str, bool]:
    return {"flat_object": target.flat_object is not False, "index_settings": target.index_settings}


async def install_retention(
    client: AsyncOpenSearch, config: SinkConfig, index: IndexConfig, target: Target
) -> str:
    """The retention policy where the target has ISM; on Serverless, what to create instead
    (a data lifecycle policy of the collection, an AWS API call, not a cluster one)."""
    if target.ism_api is not None:
        return await cluster.install_ism_policy(client, config, index, target.ism_api)
    if index.retention_days == 0:
        return "retention: none (indices are kept until you delete them)"
    rule = (
        '{"Rules":[{"ResourceType":"index","Resource":["index/COLLECTION/'
        f'{config.index_prefix}*"],"MinIndexRetention":"{index.retention_days}d"}}]}}'
    )
    return (
        "retention: Serverless has no ISM; retention is a data lifecycle policy of the "
        "collection. Create it once (COLLECTION = the collection's name): aws "
        f"opensearchserverless create-lifecycle-policy --type retention --name "
        f"ct-ingest-{config.alias} --policy '{rule}'"
    )
