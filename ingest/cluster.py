"""The edge to the OpenSearch cluster for everything but bulk writes: client, templates, checks."""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import orjson
import structlog
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from ingest.config import SinkConfig
from ingest.errors import SinkError, SinkUnavailable

__all__ = [
    "ensure_template",
    "install_template",
    "open_client",
    "ping",
    "render_template",
    "template_name",
]

_log = structlog.get_logger("ingest.cluster")
TEMPLATE_FILE = "cloudtrail-template.json"


def open_client(config: SinkConfig) -> AsyncOpenSearch:
    """An async client for ``config.url``; it never retries by itself (our policy does)."""
    return AsyncOpenSearch(
        hosts=[config.url],
        timeout=config.timeout,
        max_retries=0,
        retry_on_timeout=False,
        verify_certs=config.verify_certs,
        ca_certs=config.ca_certs,
        ssl_show_warn=config.verify_certs,
        maxsize=max(config.max_in_flight * 2, 4),
    )


def template_name(config: SinkConfig) -> str:
    return f"ct-ingest-{config.alias}"


def render_template(config: SinkConfig) -> dict[str, Any]:
    """The index template from ``mappings/``, bound to the configured prefix and alias."""
    raw = resources.files("ingest.mappings").joinpath(TEMPLATE_FILE).read_bytes()
    body: dict[str, Any] = copy.deepcopy(orjson.loads(raw))
    body["index_patterns"] = [f"{config.index_prefix}*"]
    body["template"].setdefault("aliases", {})[config.alias] = {}
    return body


def _translate(exc: Exception, what: str) -> Exception:
    if isinstance(exc, OSConnectionError):
        return SinkUnavailable(f"{what}: cannot reach OpenSearch: {exc.info or exc.error}")
    if isinstance(exc, TransportError):
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        if status in (429, 502, 503, 504):
            return SinkUnavailable(f"{what}: HTTP {status}")
        return SinkError(f"{what}: HTTP {status}: {str(exc.info)[:300]}")
    return exc


async def ping(client: AsyncOpenSearch) -> str:
    """The cluster's version string; raises SinkUnavailable when it cannot be reached."""
    try:
        info = await client.info()
    except Exception as exc:
        raise _translate(exc, "GET /") from exc
    return str(info.get("version", {}).get("number", "?"))


async def install_template(client: AsyncOpenSearch, config: SinkConfig) -> str:
    """Create or replace the index template; returns its name."""
    name = template_name(config)
    try:
        await client.indices.put_index_template(name=name, body=render_template(config))
    except Exception as exc:
        raise _translate(exc, f"PUT _index_template/{name}") from exc
    _log.info(
        "template_installed", name=name, patterns=f"{config.index_prefix}*", alias=config.alias
    )
    return name


async def ensure_template(client: AsyncOpenSearch, config: SinkConfig) -> bool:
    """Install the template unless one of that name exists; True when it was installed now."""
    name = template_name(config)
    try:
        exists = await client.indices.exists_index_template(name=name)
    except Exception as exc:
        raise _translate(exc, f"HEAD _index_template/{name}") from exc
    if exists:
        return False
    await install_template(client, config)
    return True
