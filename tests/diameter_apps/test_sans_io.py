"""diameter_apps is sans-IO: no asyncio, no sockets (DESIGN §2.1)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import diameter_apps

PACKAGE = pathlib.Path(diameter_apps.__file__).parent
FORBIDDEN = {"asyncio", "socket", "selectors", "ocs", "redis", "uvloop"}


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_io_or_the_server() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10
    for source in sources:
        assert not (_imports(source) & FORBIDDEN), source


def test_importing_the_stack_loads_no_event_loop_or_socket() -> None:
    code = (
        "import sys, pkgutil, importlib, diameter_apps\n"
        "for m in pkgutil.iter_modules(diameter_apps.__path__):\n"
        "    importlib.import_module('diameter_apps.' + m.name)\n"
        "print(sorted({'asyncio', 'socket'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
