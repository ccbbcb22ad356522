"""The package's shape: layers that only point down, the environment read in one place, and
a test tree that mirrors the package."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

from archive_pipeline_tests.helpers import REPO

PACKAGE = REPO / "archive_pipeline"
TESTS = REPO / "archive_pipeline_tests"
# the only modules that may touch os.environ: the settings and the command-line entry points
ENVIRON_ALLOWED = {"config/settings.py", "ops/cli.py", "search/cli.py"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path.read_text()


def test_os_environ_only_in_the_settings_module_and_the_entry_points():
    offenders = [
        name
        for name, text in _modules()
        if re.search(r"\bos\.(environ|getenv|putenv)\b", text) and name not in ENVIRON_ALLOWED
    ]
    assert offenders == []


def _imports(text: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


# The package's folders are its layers, bottom up; a module imports its own layer or lower ones.
LAYERS = {
    "config": 0,  # settings (the environment, read at run time), state paths, model registry
    "contract": 0,  # the tables' Arrow schemas and their documentation
    "core": 1,  # stores, warehouse, compute (Ray), media decoding, embedders: no Dagster
    "quality": 1,  # measures (WER, DER, cut F1, CER) and generated test media
    "stages": 2,  # the model stages and the write path (plan, writer, ledger): no Dagster
    "search": 2,  # the search service over the tables: no Dagster, no stage
    "defs": 3,  # the Dagster wiring: assets, checks, sensors, resources, partitions, run tags
    "definitions.py": 3,  # the code location: loads defs/
    "ops": 4,  # the command line, the in-process runner, reports, exports, the UI driver
    "demo": 4,  # `archive-pipeline demo`: the demo inbox and its run
    "__init__.py": 1,  # the package root: configures the process (core.process)
}


def test_every_module_sits_in_a_layer():
    assert {name.split("/")[0] for name, _ in _modules()} <= set(LAYERS)


def test_layers_only_point_down():
    """config, contract <- core <- stages, search <- defs <- ops, demo: nothing imports a layer
    above its own (the Dagster wiring only from defs, definitions.py and operations); search
    imports no stage (its embedders are core's); nothing below defs imports Dagster."""
    for name, text in _modules():
        imported = _imports(text)
        top = name.split("/")[0]
        for module in imported:
            parts = module.split(".")
            if parts[0] != "archive_pipeline" or len(parts) < 2:
                continue
            other = parts[1] if parts[1] in LAYERS else f"{parts[1]}.py"
            assert LAYERS[other] <= LAYERS[top], f"{name} imports {module} (a layer above)"
        if top == "search":
            assert not {m for m in imported if m.startswith("archive_pipeline.stages")}, name
        if top in ("config", "contract", "core", "quality", "stages", "search"):
            assert not {m for m in imported if m.split(".")[0] in ("dagster", "dagster_aws")}, name


def test_the_search_package_loads_without_dagster():
    code = (
        "import sys; import archive_pipeline.search.query, archive_pipeline.search.service, "
        "archive_pipeline.search.cli, archive_pipeline.search.documents; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_aws')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_test_tree_mirrors_the_package():
    """Tests of `archive_pipeline/<area>/` live in `archive_pipeline_tests/<area>/`."""
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {"config", "contract", "core", "stages", "search", "defs", "ops", "demo"}
    for folder in folders:
        assert (PACKAGE / folder / "__init__.py").exists(), folder
        for test in (TESTS / folder).glob("test_*.py"):
            # each test module names a module of its area (or a part of one: test_speech_assets)
            stem = test.stem.removeprefix("test_")
            modules = {p.stem for p in (PACKAGE / folder).rglob("*.py")}
            assert (
                stem == folder
                or any(stem.startswith(m) or m.startswith(stem) for m in modules)
                or stem
                in {
                    "stages",  # every stage module (test_stages)
                    "checkpoint",  # process_partition's batches (stages/writer.py)
                    "cross_decade",  # process_partition across decades (stages/plan.py)
                    "stills",  # shots and keyframes of photos and scans (stages/shots.py)
                    "hostile_inbox",  # a hostile folder scanned (local_store.py, inventory.py)
                    "read_only",  # the warehouse read-only (core/warehouse.py)
                    "catalog_assets",  # defs/catalog
                    "speech_assets",  # defs/speech
                    "sensors",  # defs/automation/sensors.py
                    "runs",  # defs/automation's abandoned_runs sensor
                    "definitions",  # defs as a whole
                    "search_service",  # search/service.py
                }
            ), test.relative_to(REPO)


def _module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path, modules: set[str]) -> set[str]:
    """The package modules a module imports when it is imported (not inside functions)."""
    found = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports nothing at run time
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                break
            if isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names if a.name in modules)
            elif isinstance(sub, ast.ImportFrom) and sub.module:
                for alias in sub.names:
                    child = f"{sub.module}.{alias.name}"
                    found.add(child if child in modules else sub.module)
    return {m for m in found if m in modules}


def test_no_import_cycle_between_the_package_modules():
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph = {_module_name(p): _top_level_imports(p, modules) for p in paths}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycles.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
