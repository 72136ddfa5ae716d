"""The standard variables of other tools that ct-ingest honours, read from the mapping the CLI
hands over (``os.environ``): ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_SQS`` and ``XDG_STATE_HOME``, and the state files' default places that follow
from them. Nothing here reads ``os.environ`` itself; :mod:`ingest.config` re-exports all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Environment",
    "default_deadletter_path",
    "default_ledger_path",
    "default_state_dir",
    "from_environment",
]


@dataclass(frozen=True, kw_only=True)
class Environment:
    """The standard variables of other tools that ct-ingest honours."""

    s3_endpoint_url: str | None = None
    sqs_endpoint_url: str | None = None
    state_home: Path | None = None


def from_environment(env: Mapping[str, str]) -> Environment:
    """Read the few standard variables we honour; the CLI passes ``os.environ``."""
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    sqs = env.get("AWS_ENDPOINT_URL_SQS") or env.get("AWS_ENDPOINT_URL") or None
    state_home = env.get("XDG_STATE_HOME")
    return Environment(
        s3_endpoint_url=endpoint,
        sqs_endpoint_url=sqs,
        state_home=Path(state_home) if state_home else None,
    )


def default_state_dir(environment: Environment) -> Path:
    """``$XDG_STATE_HOME/ct-ingest`` or ``~/.local/state/ct-ingest``."""
    base = environment.state_home or Path.home() / ".local" / "state"
    return base / "ct-ingest"


def default_ledger_path(env: Mapping[str, str]) -> Path:
    """The checkpoint ledger when ``--state`` is not given."""
    return default_state_dir(from_environment(env)) / "ledger.sqlite"


def default_deadletter_path(env: Mapping[str, str]) -> Path:
    """The dead-letter file of the state directory (``deadletter`` commands without ``--file``)."""
    return default_state_dir(from_environment(env)) / "deadletter.jsonl"
