"""The house's shape: no import cycles, no import that runs back up a layer, small modules.
The graph comes from ``scripts/import_graph.py`` (read from the code with ``ast``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "import_graph", ROOT / "scripts" / "import_graph.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GRAPH = _script()
EDGES = GRAPH.graph(ROOT / "ingest")


class TestLayers:
    def test_no_import_cycles(self) -> None:
        """No two modules of the package import each other, directly or around a loop."""
        assert [] == GRAPH.cycles(EDGES)

    def test_no_import_runs_back_up_a_layer(self) -> None:
        """Each module imports only its own layer or lower ones (layers in the script)."""
        assert [] == GRAPH.upward(EDGES)

    def test_every_module_has_a_layer(self) -> None:
        """A new module is placed in a layer on purpose, not by accident."""
        assert [] == [m for m in EDGES if GRAPH.layer(m) < 0]

    def test_modules_stay_readable_in_one_sitting(self) -> None:
        """No module of the package is over ~500 lines."""
        sizes = {
            name: len(path.read_text(encoding="utf-8").splitlines())
            for name, path in GRAPH.modules(ROOT / "ingest").items()
        }
        assert {} == {name: n for name, n in sizes.items() if n > 520}
