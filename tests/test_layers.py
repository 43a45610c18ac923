"""The layering rules of docs/architecture.md, read from the imports themselves.

Each rule is a function from the module import graph to its violations. The graph is built from the source
(the AST): every import counts, at the top of a module, inside a function or under TYPE_CHECKING. Each rule
is also run on a small package written for the purpose with one deliberate violation, so a rule that could
not fail would fail its own test. There are no exemptions: a module that breaks a rule is moved.
"""

from __future__ import annotations

import ast
from pathlib import Path

from acrtask.triggers import cycles as strongly_connected  # Tarjan's algorithm, as for the task graph

PACKAGE = Path(__file__).resolve().parent.parent / "acrtask"

# Modules that do no I/O: the pure core, tested by tables.
PURE = ("model", "reference", "platform", "dockerfile", "shellvars", "triggers", "validate", "graph", "stored",
        "instructions", "dockerargs", "graph_svg", "insecure", "registries",
        "runids", "dependency", "run_record", "run_shape", "explain", "times", "media", "endpoint_status",
        "notify.endpoints", "notify.targets", "notify.payloads", "multistep.templates", "multistep.spec",
        "multistep.graph", "multistep.document", "multistep.kinds", "watch.statuspage")
IO_MODULES = ("subprocess", "httpx", "socket", "os", "asyncio", "sqlite3", "acrtask.state", "acrtask.registry",
              "acrtask.process")
UI_LIBRARIES = ("typer", "rich", "click")
# The watch scheduler takes events and returns decisions: the driver (watch/loop.py) owns time, files and threads.
# Checked through every acrtask module these import, recursively (and the packages Python runs on the way).
SCHEDULER = ("watch.scheduler", "watch.planning", "watch.events", "watch.options")
SCHEDULER_MAY_NOT_IMPORT = (*IO_MODULES, "time", "threading", "queue", "logging", "concurrent.futures", "acrtask.runs",
                            "acrtask.builders", "acrtask.recovery")

# What the commands (acrtask.cli) may import besides their own modules: the composition root, which builds
# every store, database and registry client; the services they ask for; and values, rules and errors. Never
# acrtask.state, acrtask.runs, acrtask.registry or acrtask.builders: those come built, from the root.
CLI_MAY_IMPORT = (
    "acrtask.wiring",  # the composition root
    # services: what a command asks to be done
    "acrtask.service", "acrtask.run_service", "acrtask.task_changes", "acrtask.transfer", "acrtask.imports",
    "acrtask.runlogs", "acrtask.multistep.tasks", "acrtask.task_credentials",
    # watch, as the commands meet it: its flags (options, cadence's --fast-registry marks) and what it shows
    "acrtask.watch.options", "acrtask.watch.cadence", "acrtask.watch.view",
    # values, rules and errors
    "acrtask.errors", "acrtask.model", "acrtask.dependency", "acrtask.run_record", "acrtask.run_shape",
    "acrtask.explain", "acrtask.times", "acrtask.reference", "acrtask.platform", "acrtask.validate", "acrtask.graph",
    "acrtask.registries", "acrtask.notify.targets", "acrtask.notify.endpoints", "acrtask.multistep.kinds",
)
# What the registry client may import besides its own modules: it knows nothing of tasks, runs or watch.
REGISTRY_MAY_IMPORT = ("acrtask", "acrtask.errors", "acrtask.reference", "acrtask.platform", "acrtask.insecure",
                       "acrtask.media")

Graph = dict[str, set[str]]  # module -> every module it imports (acrtask's resolved to the module, others as named)


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def module_files(root: Path) -> dict[str, Path]:
    """`acrtask.cli.task` -> its file, for the package at `root`."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(root: Path) -> Graph:
    files = module_files(root)
    graph: Graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..y import z
                    parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                for alias in node.names:  # `from acrtask import paths` imports the module acrtask.paths
                    imported.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        imported.discard(name)
        graph[name] = imported
    return graph


def ui_outside_cli(graph: Graph) -> list[str]:
    return [f"{module} imports {sorted(found)}: only acrtask.cli may" for module, imported in graph.items()
            if not within(module, "acrtask.cli")
            and (found := {n for n in imported if n.split(".")[0] in UI_LIBRARIES})]


def imports_cli_from_below(graph: Graph) -> list[str]:
    return [f"{module} imports {name}" for module, imported in graph.items()
            if not within(module, "acrtask.cli") and module != "acrtask.__main__"
            for name in sorted(imported) if within(name, "acrtask.cli")]


def root_outside_cli(graph: Graph) -> list[str]:
    """Only the commands use the composition root; what it builds never reaches back for it."""
    return [f"{module} imports acrtask.wiring: only acrtask.cli may" for module, imported in graph.items()
            if "acrtask.wiring" in imported and not within(module, "acrtask.cli")]


def outside_allowed(graph: Graph, package: str, allowed: tuple[str, ...]) -> list[str]:
    """Imports of acrtask modules by `package`'s modules that are neither its own nor `allowed`."""
    return [f"{module} imports {name}" for module, imported in graph.items() if within(module, package)
            for name in sorted(imported) if within(name, "acrtask") and not within(name, package)
            and not any(name == ok or (ok != "acrtask" and within(name, ok)) for ok in allowed)]


def imports_of_package(graph: Graph, importer: str, imported: str) -> list[str]:
    return [f"{module} imports {name}" for module, names in graph.items() if within(module, importer)
            for name in sorted(names) if within(name, imported)]


def missing(module: str) -> str:
    return f"{module} is listed as pure but does not exist"


def io_imports(graph: Graph, module: str, io_modules: tuple[str, ...]) -> list[str]:
    return sorted(n for n in graph[module] if any(within(n, io) for io in io_modules))


def impure(graph: Graph, names: tuple[str, ...], io_modules: tuple[str, ...] = IO_MODULES) -> list[str]:
    problems = []
    for module in (f"acrtask.{name}" for name in names):
        if module not in graph:
            problems.append(missing(module))
        elif found := io_imports(graph, module, io_modules):
            problems.append(f"{module} is meant to be pure but imports {found}")
    return problems


def packages_of(module: str) -> list[str]:
    """The packages Python runs before `module`: `acrtask.watch.tags` -> acrtask, acrtask.watch."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def impure_through_imports(graph: Graph, names: tuple[str, ...], io_modules: tuple[str, ...]) -> list[str]:
    """`impure` for the listed modules and every acrtask module they import, recursively: each module that
    imports an I/O module, with the chain of imports that reaches it from a listed module."""
    problems = [missing(f"acrtask.{name}") for name in names if f"acrtask.{name}" not in graph]
    chains = {f"acrtask.{name}": [f"acrtask.{name}"] for name in names if f"acrtask.{name}" in graph}
    queue = list(chains)
    while queue:
        module = queue.pop(0)
        for other in sorted(graph[module] | set(packages_of(module))):
            if other in graph and other not in chains:
                chains[other] = [*chains[module], other]
                queue.append(other)
    for module, chain in sorted(chains.items()):
        if found := io_imports(graph, module, io_modules):
            problems.append(f"{' -> '.join(chain)} imports {found}")
    return problems


def cycles(graph: Graph) -> list[str]:
    """Each import cycle among the graph's modules, as `a -> b -> a` (one per strongly connected group)."""
    edges = {module: {n for n in imported if n in graph} for module, imported in graph.items()}
    return sorted(" -> ".join(_cycle_through(group[0], set(group), edges)) for group in strongly_connected(edges))


def _cycle_through(start: str, group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest path from `start` back to itself inside one strongly connected group."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        module = queue.pop(0)
        for other in sorted(edges[module]):
            if other == start:
                return [*paths[module], start]
            if other in group and other not in paths:
                paths[other] = [*paths[module], other]
                queue.append(other)
    raise AssertionError(f"{start} is in no cycle")


# -- the rules, on acrtask ----------------------------------------------------------------------------

GRAPH = import_graph(PACKAGE)


def test_only_cli_imports_typer_and_rich() -> None:
    assert ui_outside_cli(GRAPH) == []


def test_nothing_below_cli_imports_cli() -> None:
    assert imports_cli_from_below(GRAPH) == []


def test_only_cli_uses_the_composition_root() -> None:
    assert root_outside_cli(GRAPH) == []


def test_cli_imports_only_the_root_services_values_and_its_own_modules() -> None:
    assert outside_allowed(GRAPH, "acrtask.cli", CLI_MAY_IMPORT) == []


def test_watch_never_imports_builders() -> None:
    assert imports_of_package(GRAPH, "acrtask.watch", "acrtask.builders") == []
    assert imports_of_package(GRAPH, "acrtask.watch", "acrtask.process") == []  # processes: recovery.py's job


def test_the_watch_scheduler_and_all_it_imports_do_no_io() -> None:
    assert impure_through_imports(GRAPH, SCHEDULER, SCHEDULER_MAY_NOT_IMPORT) == []


def test_registry_knows_nothing_of_tasks() -> None:
    assert outside_allowed(GRAPH, "acrtask.registry", REGISTRY_MAY_IMPORT) == []


def test_pure_modules_exist_and_do_no_io() -> None:
    assert impure(GRAPH, PURE) == []


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_no_shell_true_anywhere() -> None:
    for path in module_files(PACKAGE).values():
        assert "shell=True" not in path.read_text(), path


# -- each rule fails on a deliberate violation -------------------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    """A package `acrtask` under `root` with these modules (dotted names below acrtask) and sources."""
    package = root / "acrtask"
    for name, source in {"__init__": "", **files}.items():
        path = package.joinpath(*name.split(".")).with_suffix(".py")
        for folder in path.relative_to(package).parents:
            (package / folder).mkdir(parents=True, exist_ok=True)
            if folder != Path("."):
                (package / folder / "__init__.py").touch()
        path.write_text(source)
    return package


def test_the_graph_resolves_modules_and_counts_imports_in_functions_and_type_checking(tmp_path: Path) -> None:
    graph = import_graph(write_package(tmp_path, {
        "cli.task": "from acrtask import wiring\nfrom acrtask.state import StateStore\n",
        "cli.runs": "def run():\n    from .task import run as task_run\n",
        "wiring": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from acrtask.runs import RunStore\n",
        "runs": "import os\n", "state.__init__": "", "state.db": "",
    }))
    assert graph["acrtask.cli.task"] == {"acrtask.wiring", "acrtask.state"}  # `from acrtask.state import X`: a name
    assert graph["acrtask.cli.runs"] == {"acrtask.cli.task"}
    assert graph["acrtask.wiring"] == {"typing", "acrtask.runs"}
    assert graph["acrtask.runs"] == {"os"}


def test_each_rule_finds_its_deliberate_violation(tmp_path: Path) -> None:
    graph = import_graph(write_package(tmp_path, {
        "cli.task": "import typer\nfrom acrtask import wiring\n\ndef _store():\n"
                    "    from acrtask.state import StateStore\n",
        "cli.image": "from acrtask.registry.sync import resolve_sync\nfrom acrtask.model import Task\n",
        "cli.watch": "from acrtask.watch.loop import Watcher\nfrom acrtask.watch.options import WatchOptions\n",
        "watch.loop": "", "watch.options": "",
        "wiring": "", "model": "import os\n", "state.__init__": "", "registry.sync": "from acrtask.model import Task\n",
        "notify.view": "import rich\nfrom acrtask.cli import task\n", "service": "from acrtask import wiring\n",
        "watch.view": "def show():\n    from acrtask.builders.pool import EndpointStatus\n", "builders.pool": "",
        "watch.__init__": "import logging\n",
        "watch.scheduler": "from acrtask.watch import tags\nfrom acrtask import model\n",
        "watch.tags": "from .checks import CheckResult\n", "watch.checks": "def start():\n    import threading\n",
    }))
    assert ui_outside_cli(graph) == ["acrtask.notify.view imports ['rich']: only acrtask.cli may"]
    assert imports_cli_from_below(graph) == ["acrtask.notify.view imports acrtask.cli.task"]
    assert root_outside_cli(graph) == ["acrtask.service imports acrtask.wiring: only acrtask.cli may"]
    assert outside_allowed(graph, "acrtask.cli", CLI_MAY_IMPORT) == [
        "acrtask.cli.image imports acrtask.registry.sync", "acrtask.cli.task imports acrtask.state",
        "acrtask.cli.watch imports acrtask.watch.loop"]
    assert imports_of_package(graph, "acrtask.watch", "acrtask.builders") == [
        "acrtask.watch.view imports acrtask.builders.pool"]
    assert outside_allowed(graph, "acrtask.registry", REGISTRY_MAY_IMPORT) == [
        "acrtask.registry.sync imports acrtask.model"]
    assert impure_through_imports(graph, ("watch.scheduler", "watch.planning"), SCHEDULER_MAY_NOT_IMPORT) == [
        "acrtask.watch.planning is listed as pure but does not exist",
        "acrtask.watch.scheduler -> acrtask.model imports ['os']",
        "acrtask.watch.scheduler -> acrtask.watch imports ['logging']",
        "acrtask.watch.scheduler -> acrtask.watch.tags -> acrtask.watch.checks imports ['threading']"]
    assert impure(graph, ("model", "reference")) == [
        "acrtask.model is meant to be pure but imports ['os']",
        "acrtask.reference is listed as pure but does not exist"]


def test_cycles_are_found_through_functions_type_checking_and_relative_imports(tmp_path: Path) -> None:
    graph = import_graph(write_package(tmp_path, {
        "builders.base": "def select():\n    from acrtask.builders.buildah import Buildah\n",
        "builders.buildah": "from acrtask.builders.base import Builder\n",
        "service": "from acrtask import imports\n",
        "imports": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from acrtask.service import X\n",
        "watch.loop": "from . import observer\n", "watch.observer": "from .checks import C\n",
        "watch.checks": "from .loop import Watcher\n",
        "fine": "from acrtask import service\n",
    }))
    assert cycles(graph) == [
        "acrtask.builders.base -> acrtask.builders.buildah -> acrtask.builders.base",
        "acrtask.imports -> acrtask.service -> acrtask.imports",
        "acrtask.watch.checks -> acrtask.watch.loop -> acrtask.watch.observer -> acrtask.watch.checks",
    ]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []

