"""OpenSearch Dashboards saved objects (``mappings/dashboards/``) and their import, whose errors
(urllib's, or an answer that is not what Dashboards says) come out as
:class:`~ingest.errors.SinkUnavailable` or :class:`~ingest.errors.SinkError`.

Kibana 7.10 (the dashboards app of Elasticsearch 7.10 domains) shares the saved-object format
and the import API (OpenSearch Dashboards forked from it): the request carries both apps' XSRF
headers (``osd-xsrf``, ``kbn-xsrf``), and for Kibana the objects keep only the attributes its
7.10 mappings know (its saved-objects index is strict: an unknown attribute fails the import)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from importlib import resources
from typing import Any

from ingest.config import DEFAULT_ALIAS
from ingest.errors import IngestError, SinkError, SinkUnavailable
from ingest.errors import boundary as error_boundary

__all__ = ["import_saved_objects", "saved_objects"]


# The attributes Kibana 7.10's saved-object mappings declare, by type.
_KIBANA_7_10 = {
    "index-pattern": {
        "fieldFormatMap", "fields", "intervalName", "notExpandable", "sourceFilters",
        "timeFieldName", "title", "type", "typeMeta",
    },
    "visualization": {
        "description", "kibanaSavedObjectMeta", "savedSearchRefName", "title", "uiStateJSON",
        "version", "visState",
    },
    "search": {
        "columns", "description", "hits", "kibanaSavedObjectMeta", "sort", "title", "version",
    },
    "dashboard": {
        "description", "hits", "kibanaSavedObjectMeta", "optionsJSON", "panelsJSON",
        "refreshInterval", "timeFrom", "timeRestore", "timeTo", "title", "version",
    },
}  # fmt: skip


def saved_objects(
    alias: str = DEFAULT_ALIAS, *, app: str = "OpenSearch Dashboards"
) -> list[dict[str, Any]]:
    """The saved objects, with the index pattern pointed at ``alias``; for ``app`` "Kibana",
    only the attributes Kibana 7.10 knows."""
    text = (
        resources.files("ingest.mappings").joinpath("dashboards", "cloudtrail.ndjson").read_text()
    )
    objects = [json.loads(line) for line in text.splitlines() if line.strip()]
    for o in objects:
        if o["type"] == "index-pattern":
            o["attributes"]["title"] = alias
        if app == "Kibana":
            known = _KIBANA_7_10.get(o["type"], set())
            o["attributes"] = {k: v for k, v in o["attributes"].items() if k in known}
    return objects


def import_saved_objects(
    url: str,
    objects: list[dict[str, Any]],
    *,
    username: str | None = None,
    password: str | None = None,
    verify: bool = True,
    timeout: float = 60.0,
) -> int:
    """POST the objects to ``{url}/api/saved_objects/_import?overwrite=true``; returns how many
    were imported."""
    boundary = uuid.uuid4().hex
    ndjson = "".join(json.dumps(o) + "\n" for o in objects).encode()
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="ct-ingest.ndjson"\r\n'
            f"Content-Type: application/ndjson\r\n\r\n"
        ).encode()
        + ndjson
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "osd-xsrf": "true",  # OpenSearch Dashboards
        "kbn-xsrf": "true",  # Kibana
    }
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    context = None
    if not verify:
        import ssl

        context = ssl._create_unverified_context()  # noqa: S323 (--insecure asked)  # nosec B323
    with error_boundary("Dashboards import", _translate, SinkError):
        req = urllib.request.Request(  # noqa: S310 (the user's own Dashboards URL)
            url.rstrip("/") + "/api/saved_objects/_import?overwrite=true",
            data=body,
            method="POST",
            headers=headers,
        )
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:  # noqa: S310  # nosec B310
            answer = json.loads(resp.read() or b"{}")
        if not answer.get("success", False):
            raise SinkError(f"Dashboards import failed: {str(answer.get('errors'))[:300]}")
        return int(answer.get("successCount", len(objects)))


def _translate(exc: Exception, what: str) -> IngestError | None:
    if isinstance(exc, urllib.error.HTTPError):
        return SinkError(f"{what}: HTTP {exc.code}: {exc.read()[:300]!r}")
    if isinstance(exc, urllib.error.URLError | OSError):
        return SinkUnavailable(f"{what}: {exc}")
    return None
