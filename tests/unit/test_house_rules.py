"""The house rules: what each runtime context under server/cellbox may import.

Read from the source (every import statement, inside functions too), not by
importing it, so a rule holds for code paths no test runs. `cli` is checked
with everything it reaches through other cellbox modules: the command line
must stay light wherever the heavy import hides.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "server"

SHARED = ("cellbox.errors", "cellbox.project", "cellbox.vocabulary", "cellbox.wire", "cellbox.languages",
          "cellbox.safe_files", "cellbox.daemon_control", "cellbox.timeouts")
CONTEXTS = ("cellbox.cli", "cellbox.lsp", "cellbox.documents", "cellbox.sandbox", "cellbox.engine",
            "cellbox.container", "cellbox.settings", "cellbox.mcp", "cellbox.integrations")

# (modules the rule is about, whether their whole reach counts, what they may not import, why)
RULES = [
    ("cellbox.cli", True, ("cellbox.lsp", "cellbox.engine", "cellbox.sandbox", "pygls", "lsprotocol", "docker"),
     "the command line stays light: `cellbox exec` in a git hook pays for every import"),
    ("cellbox.documents", True, ("cellbox.lsp", "cellbox.engine", "cellbox.sandbox", "cellbox.cli", "pygls", "lsprotocol", "docker"),
     "documents/ is pure: blocks, selections and diagnostics know no protocol and no engine"),
    ("cellbox.sandbox", False, ("cellbox.lsp", "cellbox.cli", "pygls", "lsprotocol", "docker"),
     "the sandbox is the domain: free of pygls, and it reaches the engine through engine/protocol.py"),
    ("cellbox.mcp", False, ("cellbox.lsp.server", "cellbox.lsp.features", "cellbox.engine", "cellbox.sandbox",
                            "cellbox.cli", "docker"),
     "the MCP server is a client of the LSP server (lsp/link.py), as an editor is: it reaches the sandbox only through it"),
    ("cellbox.integrations", False, ("cellbox.lsp.server", "cellbox.lsp.features", "cellbox.engine", "cellbox.sandbox",
                                     "docker"),
     "an agent framework's executor is a client of the LSP server (cli/rpc_client.py, lsp/link.py), as an editor is"),
    ("cellbox.settings", True, ("cellbox.lsp", "cellbox.engine", "cellbox.sandbox", "cellbox.cli", "pygls", "lsprotocol", "docker"),
     "settings are read by the CLI too (`cellbox trust`)"),
    (SHARED, True, ("cellbox.lsp", "cellbox.engine", "cellbox.sandbox", "cellbox.cli", "cellbox.documents", "pygls", "lsprotocol", "docker"),
     "the shared modules are light and depend on no runtime context"),
]
ONLY_IN = [
    ("docker", ("cellbox.engine",), "only engine/ imports the docker SDK"),
    ("requests", ("cellbox.engine",), "the SDK's transport is the engine's business"),
    ("pygls", ("cellbox.lsp",), "all pygls glue lives in lsp/"),
    ("lsprotocol", ("cellbox.lsp",), "all protocol types live in lsp/ (the wire types are cellbox.wire)"),
]


def module_files(root: Path) -> dict[str, Path]:
    found = {}
    for path in (root / "cellbox").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module `path` names in an import: cellbox modules in full, others by their top-level name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            for alias in node.names:  # `from cellbox.x import y` may name the module cellbox.x.y
                if f"{node.module}.{alias.name}" in modules:
                    names.add(f"{node.module}.{alias.name}")
    result = set()
    for name in names:
        if name == "cellbox" or name.startswith("cellbox."):
            # Importing cellbox.a.b runs cellbox/a/__init__.py too.
            parts = name.split(".")
            result.update(".".join(parts[:n]) for n in range(2, len(parts) + 1))
        else:
            result.add(name.split(".")[0])
    return {name for name in result if name in modules or not name.startswith("cellbox")}


def within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def reach(start: str, graph: dict[str, set[str]]) -> dict[str, str]:
    """Everything `start` imports, directly or through cellbox modules: name -> the module that imports it."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        current = todo.pop()
        for name in graph.get(current, ()):
            if name not in seen:
                seen[name] = current
                if name in graph:
                    todo.append(name)
    return seen


def violations(root: Path) -> list[str]:
    modules = module_files(root)
    graph = {name: imports_of(path, modules) for name, path in modules.items()}
    found = []
    for subjects, transitive, forbidden, why in RULES:
        subjects = (subjects,) if isinstance(subjects, str) else subjects
        for module in sorted(m for m in modules if within(m, subjects)):
            reached = reach(module, graph) if transitive else {name: module for name in graph[module]}
            for name, via in sorted(reached.items()):
                if within(name, forbidden) and not within(name, subjects):
                    chain = "" if via == module else f" (through {via})"
                    found.append(f"{module} imports {name}{chain}: {why}")
    for library, allowed, why in ONLY_IN:
        for module, names in sorted(graph.items()):
            if library in names and not within(module, allowed):
                found.append(f"{module} imports {library}: {why}")
    for module in sorted(m for m in modules if within(m, ("cellbox.container",))):
        for name in sorted(graph[module]):
            if module == "cellbox.container.figures" and within(name, ("matplotlib",)):
                continue  # a matplotlib backend, which only matplotlib loads, in the sandbox
            if not within(name, ("cellbox.container",)) and name not in sys.stdlib_module_names:
                found.append(f"{module} imports {name}: code that runs inside the sandbox uses the standard library only")
    for module, names in sorted(graph.items()):
        if module not in ("cellbox.main", "cellbox.program") and within("cellbox.cli", names) and any(within(n, ("cellbox.lsp",)) for n in names):
            found.append(f"{module} joins cli and lsp: only cellbox.program (and main.py, its entry point) may")
    return found


def test_the_house_keeps_its_rules() -> None:
    assert violations(PACKAGE_ROOT) == []


def test_every_module_has_a_room() -> None:
    modules = module_files(PACKAGE_ROOT)
    homeless = [m for m in modules if m.count(".") >= 1 and not within(m, CONTEXTS + SHARED)
                and m not in ("cellbox.main", "cellbox.program", "cellbox.__main__")]
    assert homeless == [], "name the context of each new module in test_house_rules.py"


# ------------------------------------------------- the checker itself


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "cellbox" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [tmp_path / "cellbox", *(p for p in (tmp_path / "cellbox").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # the CLI reaching docker through a shared module, inside a function
        ({"cli/commands.py": "def f():\n    from cellbox import project\n", "project.py": "import docker.errors\n"},
         "cellbox.cli.commands imports docker (through cellbox.project)"),
        ({"sandbox/core.py": "from pygls.lsp.server import LanguageServer\n"}, "cellbox.sandbox.core imports pygls"),
        ({"documents/finder.py": "from cellbox.sandbox import core\n", "sandbox/core.py": ""},
         "cellbox.documents.finder imports cellbox.sandbox"),
        ({"container/runner.py": "import attrs\n"}, "cellbox.container.runner imports attrs"),
        ({"lsp/server.py": "import docker\n"}, "cellbox.lsp.server imports docker"),
        ({"wire.py": "from cellbox.cli import commands\n", "cli/commands.py": ""}, "cellbox.wire imports cellbox.cli"),
        ({"sandbox/x.py": "import cellbox.cli.commands\nimport cellbox.lsp.server\n", "cli/commands.py": "", "lsp/server.py": ""},
         "cellbox.sandbox.x joins cli and lsp"),
    ],
)
def test_a_broken_rule_is_caught(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = violations(_tree(tmp_path, files))
    assert any(line.startswith(expected) for line in found), found


def test_a_kept_rule_is_not_reported(tmp_path: Path) -> None:
    files = {"cli/commands.py": "from cellbox import project\n", "project.py": "import os\n",
             "engine/docker.py": "import docker\n", "container/runner.py": "import os, _socket\n"}
    assert violations(_tree(tmp_path, files)) == []
