"""The error tree drawn in ``ingest.errors`` is the one the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ingest
from ingest import errors

PACKAGE = Path(ingest.__file__).parent
BASES = {"IngestError", "TransientError", "TerminalError"}
CLASSES = {name for name in errors.__all__ if isinstance(getattr(errors, name), type)}
LEAVES = sorted(CLASSES - BASES)


def _raised_or_subclassed(name: str) -> bool:
    pattern = re.compile(rf"raise {name}\(|return {name}\(|\({name}\):|= {name}\(")
    return any(
        pattern.search(path.read_text(encoding="utf-8"))
        for path in PACKAGE.rglob("*.py")
        if path.name != "errors.py"
    )


class TestErrorTree:
    @pytest.mark.parametrize("name", LEAVES)
    def test_every_drawn_error_is_raised(self, name: str) -> None:
        """No error in the tree is drawn but never raised (or built to be raised)."""
        assert _raised_or_subclassed(name), f"{name} is in the tree but nothing raises it"

    def test_the_docstring_draws_every_error(self) -> None:
        """The tree in the module docstring names exactly the errors the module exports."""
        drawn = set(re.findall(r"[├└]── (\w+)", errors.__doc__ or "")) | {"IngestError"}
        assert drawn == CLASSES

    @pytest.mark.parametrize("name", LEAVES)
    def test_each_error_is_transient_or_terminal(self, name: str) -> None:
        """Every leaf is marked transient or terminal by its base."""
        cls = getattr(errors, name)
        assert issubclass(cls, errors.TransientError) != issubclass(cls, errors.TerminalError)
