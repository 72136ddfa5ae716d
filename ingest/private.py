"""Private state on disk: the ledger, the dead-letter and their lock files hold raw CloudTrail
records (addresses, ARNs, request parameters), so they are created readable by their owner
only, as log shippers keep their registries: files 0600, new directories 0700."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

__all__ = ["DIR_MODE", "FILE_MODE", "make_private_dirs", "open_private", "touch_private"]

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents, each new one 0700 (existing ones are
    left as they are)."""
    missing = []
    for parent in (directory, *directory.parents):
        if parent.exists():
            break
        missing.append(parent)
    for new in reversed(missing):
        try:
            new.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(new, DIR_MODE)  # mkdir's mode is filtered by the umask; this is not


def touch_private(path: Path) -> None:
    """Create ``path`` (0600, in private directories) if it does not exist yet."""
    make_private_dirs(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))


def open_private(path: Path, *, truncate: bool = False) -> IO[bytes]:
    """``path`` opened for appending (or rewriting), created 0600 if new."""
    make_private_dirs(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else os.O_APPEND)
    return os.fdopen(os.open(path, flags, FILE_MODE), "wb")
