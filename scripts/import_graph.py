"""The package's import graph, read from the code (``ast``, nothing is imported or run).

    python scripts/import_graph.py              # modules, lines, what each imports; cycles
    python scripts/import_graph.py --dot > g.dot  # Graphviz, e.g. ``dot -Tsvg g.dot``
    python scripts/import_graph.py --root OTHER/ingest  # another checkout (before/after)

Every import counts, also those inside functions (a lazy import still ties two modules).
Modules are files; a sub-package's ``__init__`` is the sub-package itself. The layers of
``LAYERS`` run from the bottom up: a module may import its own layer or lower ones, never a
higher one; ``--check`` exits 1 on a cycle or an import that runs back up a layer.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

# Bottom to top. A module not listed belongs to the layer of its longest listed prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("ingest", "ingest.errors", "ingest.private", "ingest.layout", "ingest.adaptive"),
    ("ingest.retry", "ingest.config", "ingest.configfile", "ingest.enrich"),
    ("ingest.inflate", "ingest.pool"),
    ("ingest.decode", "ingest.source", "ingest.cluster", "ingest.checkpoint", "ingest.deadletter"),
    ("ingest.queue",),
    ("ingest.listing", "ingest.targets", "ingest.sink"),
    ("ingest.engine",),
    ("ingest.telemetry", "ingest.metrics", "ingest.tail", "ingest.enqueue"),
    ("ingest.sigma",),
    ("ingest.runner", "ingest.ops"),
    ("ingest.testing",),
    ("ingest.demo",),
    ("ingest.cli", "ingest.__main__"),
)


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` below ``root`` (the ``ingest`` folder)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _targets(node: ast.AST, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        yield node.module
        for alias in node.names:  # from ingest import cluster -> ingest.cluster
            yield f"{node.module}.{alias.name}"


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in the file)."""
    mods = modules(root)
    known = set(mods)
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(node, known):
                while target and target not in known:  # ingest.x.y -> ingest.x
                    target = target.rpartition(".")[0]
                if target and target != name and target != root.name:
                    found.add(target)
        edges[name] = found
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer(name: str) -> int:
    """The layer of a module: that of its longest listed prefix."""
    best, depth = -1, -1
    for i, names in enumerate(LAYERS):
        for listed in names:
            if (name == listed or name.startswith(listed + ".")) and len(listed) > depth:
                best, depth = i, len(listed)
    return best


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower layer to a higher one."""
    return sorted((a, b) for a, bs in edges.items() for b in bs if layer(b) > layer(a))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).parents[1] / "ingest")
    parser.add_argument("--dot", action="store_true", help="print Graphviz instead of text")
    parser.add_argument("--check", action="store_true", help="exit 1 on a cycle or upward import")
    args = parser.parse_args()
    mods = modules(args.root)
    edges = graph(args.root)
    if args.dot:
        print("digraph ingest {\n  rankdir=BT; node [shape=box, fontsize=10];")
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
        return 0
    for name in sorted(mods, key=lambda n: (layer(n), n)):
        lines = len(mods[name].read_text(encoding="utf-8").splitlines())
        imports = ", ".join(sorted(b.removeprefix("ingest.") for b in edges[name])) or "-"
        print(f"L{layer(name)} {name:<28} {lines:>5}  -> {imports}")
    found, up = cycles(edges), upward(edges)
    print(f"\n{len(mods)} modules, {sum(map(len, edges.values()))} imports, "
          f"{len(found)} cycles, {len(up)} imports up a layer")  # fmt: skip
    for comp in found:
        print("cycle: " + " <-> ".join(comp))
    for a, b in up:
        print(f"up a layer: {a} (L{layer(a)}) -> {b} (L{layer(b)})")
    return 1 if args.check and (found or up) else 0


if __name__ == "__main__":
    sys.exit(main())
