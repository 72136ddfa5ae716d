"""Every module of the package declares its public names in ``__all__``, and they exist."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import ingest

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(ingest.__path__, "ingest.")
    if not m.name.endswith("__main__")
)


class TestPublicApi:
    @pytest.mark.parametrize("name", MODULES)
    def test_all_is_declared_and_resolves(self, name: str) -> None:
        """Each name in the module's __all__ is defined in it."""
        module = importlib.import_module(name)
        if name == "ingest.mappings":
            return  # a data package: templates, no code
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        assert [] == [n for n in exported if not hasattr(module, n)]

    def test_version_is_the_distribution_version(self) -> None:
        """The version lives in one place and is what --version prints."""
        from typer.testing import CliRunner

        from ingest.cli import app

        assert (
            f"ct-ingest {ingest.__version__}"
            == CliRunner().invoke(app, ["--version"]).stdout.strip()
        )
