"""The one exception tree of ct-ingest.

Every error that crosses a module boundary is one of these; errors of the libraries below
(botocore, aiohttp, opensearch-py, sqlite3, zlib, orjson) are translated where they are caught.
The marker that matters is *transient* versus *terminal*: the runner retries transient errors
(with one tenacity policy, see ``ingest.retry``) and records terminal ones in the dead-letter or
aborts the run with them.

An object or record that is not valid CloudTrail is not an exception: decoding is a pure
function that returns it as a ``Rejected`` value (``ingest.decode``), and the pipeline writes it
to the dead-letter.

::

    IngestError
    ├── TransientError            retry: the same call may succeed later
    │   ├── SourceUnavailable     S3 throttled, 5xx, connection reset, timeout
    │   └── SinkUnavailable       OpenSearch connection error, timeout, 429, 502/503/504
    └── TerminalError             do not retry: the same call fails the same way
        ├── ConfigError           bad option, unreadable file, bad source URL (exit 2)
        ├── SourceError           the object cannot be read: missing, access denied
        ├── SinkError             OpenSearch refused the request as a whole (4xx other than 429)
        └── CheckpointError       the ledger cannot be opened or written
"""

from __future__ import annotations

import asyncio

__all__ = [
    "CheckpointError",
    "ConfigError",
    "IngestError",
    "SinkError",
    "SinkUnavailable",
    "SourceError",
    "SourceUnavailable",
    "TerminalError",
    "TransientError",
    "root_cause",
]


class IngestError(Exception):
    """Base of every error ct-ingest raises on purpose."""

    transient: bool = False


class TransientError(IngestError):
    """The same call may succeed if tried again later."""

    transient = True


class TerminalError(IngestError):
    """Trying again would fail the same way."""


class SourceUnavailable(TransientError):
    """S3 (or the local disk) did not answer usefully this time."""


class SinkUnavailable(TransientError):
    """OpenSearch did not answer usefully this time."""


class ConfigError(TerminalError):
    """A setting is missing, malformed or contradictory."""


class SourceError(TerminalError):
    """An object cannot be read from the source."""


class SinkError(TerminalError):
    """OpenSearch rejected a request as a whole."""


class CheckpointError(TerminalError):
    """The checkpoint ledger cannot be used."""


def root_cause(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (inner or list(exc.exceptions))[0]
    return exc
