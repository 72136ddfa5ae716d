"""``source.geo.*`` and ``source.as.*`` from MaxMind-format databases the user supplies.

Off until :func:`use` names a database (``--geoip-db`` / ``--asn-db``). Decoding runs in worker
processes, so each process opens its readers lazily on its first lookup and caches answers per
address; :func:`use` with the same paths again costs nothing.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import maxminddb

__all__ = ["lookup", "use"]

_paths: tuple[str | None, str | None] = (None, None)
_readers: dict[str, Any] = {}


def use(geoip_db: str | Path | None, asn_db: str | Path | None) -> None:
    """Look addresses up in these databases from now on in this process (None: no lookup)."""
    global _paths
    paths = (str(geoip_db) if geoip_db else None, str(asn_db) if asn_db else None)
    if paths == _paths:
        return
    for reader in _readers.values():
        reader.close()
    _readers.clear()
    _paths = paths
    _lookup.cache_clear()
    for path in paths:  # open now: a missing or unreadable database fails here, not per record
        if path:
            _reader(path)


def _reader(path: str) -> Any:
    reader = _readers.get(path)
    if reader is None:
        reader = _readers[path] = maxminddb.open_database(path)
    return reader


def _name(node: Any) -> str | None:
    names = node.get("names") if isinstance(node, dict) else None
    name = names.get("en") if isinstance(names, dict) else None
    return name if isinstance(name, str) else None


def _geo(found: Any) -> dict[str, Any]:
    if not isinstance(found, dict):
        return {}
    out: dict[str, Any] = {}
    country = found.get("country") or found.get("registered_country")
    if isinstance(country, dict):
        if isinstance(country.get("iso_code"), str):
            out["country_iso_code"] = country["iso_code"]
        if name := _name(country):
            out["country_name"] = name
    if name := _name(found.get("continent")):
        out["continent_name"] = name
    if name := _name(found.get("city")):
        out["city_name"] = name
    subdivisions = found.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], dict):
        region = subdivisions[0]
        code = region.get("iso_code")
        if isinstance(code, str) and "country_iso_code" in out:
            out["region_iso_code"] = f"{out['country_iso_code']}-{code}"
        if name := _name(region):
            out["region_name"] = name
    location = found.get("location")
    if isinstance(location, dict):
        lat, lon = location.get("latitude"), location.get("longitude")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            out["location"] = {"lat": lat, "lon": lon}
    return out


def _as(found: Any) -> dict[str, Any]:
    if not isinstance(found, dict):
        return {}
    out: dict[str, Any] = {}
    number = found.get("autonomous_system_number")
    if isinstance(number, int):
        out["number"] = number
    org = found.get("autonomous_system_organization")
    if isinstance(org, str) and org:
        out["organization"] = {"name": org}
    return out


@lru_cache(maxsize=16384)
def _lookup(address: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    geoip_db, asn_db = _paths
    out = []
    if geoip_db and (geo := _geo(_reader(geoip_db).get(address))):
        out.append(("geo", geo))
    if asn_db and (asn := _as(_reader(asn_db).get(address))):
        out.append(("as", asn))
    return tuple(out)


def lookup(address: str) -> dict[str, Any]:
    """``{"geo": {...}, "as": {...}}`` for an IP address (either may be absent); ``{}`` when no
    database is in use or the address is not in it. The caller must not change the result."""
    if _paths == (None, None):
        return {}
    return dict(_lookup(address))
