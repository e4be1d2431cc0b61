"""Imports run one way (README, "Architecture"): launch -> driver -> actors -> benchmarks -> toyworld -> learners ->
rewards -> rollout -> models, no file imports itself through others, entry points share code only through the driver, and
nothing of the product imports the tests. Read from the sources (every import, also those inside functions)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# bottom first: a package may import itself and the packages before it, never one after it
LAYERS = ["models", "rollout", "rewards", "learners", "toyworld", "benchmarks", "actors", "driver", "launch"]
ENTRY_POINT_API = {"main", "run"}  # what an entry point may take from another: its command, not its internals


def modules() -> dict[str, Path]:
    out = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import of the project's modules in `path`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] in LAYERS + ["tests", "fixtures"]]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top not in LAYERS + ["tests", "fixtures"]:
                continue
            names = [a.name for a in node.names]
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in known]
            out += [(m, []) for m in submodules] or [(node.module, names)]
    return out


MODULES = modules()
GRAPH = {name: imports(path, MODULES) for name, path in MODULES.items()}


def test_the_layering_test_sees_the_project():
    assert len(MODULES) > 60 and "driver.session" in MODULES and "models.adapter" in MODULES
    assert ("driver.session", ["Session"]) in GRAPH["launch.meta_ttrl"]


@pytest.mark.parametrize("package", LAYERS)
def test_imports_run_downward(package):
    rank = LAYERS.index(package)
    wrong = [(m, target) for m, edges in GRAPH.items() if m.split(".")[0] == package
             for target, _ in edges if target.split(".")[0] not in LAYERS or LAYERS.index(target.split(".")[0]) > rank]
    assert not wrong, f"{package} imports from above (or from the tests): {wrong}"


def test_no_circle_of_files():
    edges = {m: {t for t, _ in e if t in MODULES and t != m} for m, e in GRAPH.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            assert state.get(t) != 1, f"import cycle: {' -> '.join(path[path.index(t):] + [t]) if t in path else t}"
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])


def test_entry_points_share_code_through_the_driver_not_each_other():
    entry_points = {m for m in MODULES if m.startswith("launch.") and not m.startswith("launch.configs")}
    taken = [(m, t, names) for m in entry_points for t, names in GRAPH[m] if t in entry_points]
    wrong = [(m, t, names) for m, t, names in taken if not names or not set(names) <= ENTRY_POINT_API]
    assert not wrong, f"entry points importing another's internals: {wrong}"
    configs = [(m, t) for m in MODULES if m.startswith("launch.configs") for t, _ in GRAPH[m] if t in entry_points]
    assert not configs, f"configs importing entry points: {configs}"


def test_modules_and_functions_stay_small():
    """No module over ~500 lines, no function over ~60 (the brief's limits)."""
    long_modules = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 500}
    assert not long_modules
    long_functions = []
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{m}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long_functions, long_functions


def test_only_the_toy_world_and_its_benchmark_import_the_toy_oracle():
    """Everything else measures images through the benchmark interface (benchmarks/), whatever the benchmark."""
    users = sorted(m for m, edges in GRAPH.items() for target, _ in edges if target == "toyworld.oracle")
    assert users and all(m.startswith("toyworld.") or m == "benchmarks.toyworld" for m in users), users
