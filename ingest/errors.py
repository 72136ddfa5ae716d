"""The one exception tree of ct-ingest.

Every error that crosses a module boundary is one of these. Errors of the libraries below are
translated where they enter: sqlite3's in the ledger, and those of the three connections
(botocore and aiohttp for S3 and SQS, opensearch-py for OpenSearch) at one boundary per
connection, a context manager built on :func:`boundary` (as httpx's ``map_exceptions``):
:func:`ingest.source.s3_errors`, :func:`ingest.source.sqs_errors` and
:func:`ingest.cluster.opensearch_errors`. Inside a boundary, our own errors pass
through unchanged, the library errors it knows become the leaf below, and any other exception
becomes the connection's terminal error ("unexpected TypeName: message"), with the original as
``__cause__``; nothing is handed back raw. So the public operations raise only this tree, and
a caller (the CLI) catches :class:`IngestError` and nothing wider.

The marker that matters is *transient* versus *terminal*: transient errors are retried (with
the one tenacity policy, under one deadline per operation, see ``ingest.retry``, which says
where); terminal ones are recorded in the dead-letter or abort the run.

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
        ├── SourceError           the object cannot be read: missing, access denied;
        │                         S3 or SQS failed in a way the boundary does not know
        ├── SinkError             OpenSearch refused the request as a whole (4xx other than
        │                         429), or failed in a way the boundary does not know
        ├── CheckpointError       the ledger cannot be opened or written
        └── WorkerDied            a decoding process died on an object twice, once among the
                                  others and once alone (``ingest.pool``): a poison object
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
    "WorkerDied",
    "boundary",
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


class WorkerDied(TerminalError):
    """A decoding process died on an object (killed, out of memory) even when tried alone."""


def root_cause(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (inner or list(exc.exceptions))[0]
    return exc


@contextmanager
def boundary(
    what: str,
    translate: Callable[[Exception, str], IngestError | None],
    unexpected: type[TerminalError],
) -> Iterator[None]:
    """Translate what the block raises into the tree: our errors pass through unchanged,
    ``translate`` names the library errors it knows (``None`` for the others), and any other
    exception becomes ``unexpected`` (terminal). ``what`` says which call failed."""
    try:
        yield
    except IngestError:
        raise
    except Exception as exc:
        known = translate(exc, what)
        raise (
            known
            if known is not None
            else unexpected(f"{what}: unexpected {type(exc).__name__}: {exc}")
        ) from exc
