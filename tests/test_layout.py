"""The package's shape (issue 19): no import cycles, no module past ~450 lines, names spelled
once, and importing streamguard leaves the host program's native thread pools alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "streamguard"
LIMIT = 450


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions count too
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target, *(f"{target}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            # A module importing its own package (``from . import __version__``) is no cycle.
            out |= {n for n in names if n in files and n != name and not name.startswith(n + ".")}
        graph[name] = out
    return graph


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_is_too_long() -> None:
    long = {_module(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > LIMIT}
    assert not long, f"modules over {LIMIT} lines: {long}"


def test_preset_names_are_the_plans() -> None:
    from streamguard.config import PRESETS
    from streamguard.detect import PRESETS as PLANS

    assert tuple(PLANS) == PRESETS


@pytest.mark.parametrize("module", ["streamguard", "streamguard.cli"])
def test_import_leaves_native_thread_pools_alone(module: str) -> None:
    code = ("import cv2; from threadpoolctl import threadpool_info; cv2.setNumThreads(3); "
            "pools = lambda: {i['filepath']: i['num_threads'] for i in threadpool_info()}; "
            "before = pools(); "
            f"import {module}; "
            "assert cv2.getNumThreads() == 3, cv2.getNumThreads(); "
            "after = pools(); "
            "assert all(after[k] == v for k, v in before.items()), (before, after)")
    r = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
