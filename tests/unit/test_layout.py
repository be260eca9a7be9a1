"""The package's layout holds what the README's "How it is built" says of it: each module says
its one job, no module reaches for another's private names, mitmproxy's internals are touched
in compat.py alone, and the deciding and redacting core does not know mitmproxy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "proxy"
MODULES = sorted(PACKAGE.rglob("*.py"))
# what only proxy/mitm/compat.py may use: mitmproxy's layers, its addon manager and parsers
INTERNALS = ("mitmproxy.proxy.layers", "mitmproxy.addonmanager", "mitmproxy.http.MessageData")
INTERNAL_NAMES = {"_client_hello", "handle_protocol_error", "MessageData"}
MITMPROXY_FREE = ("policy", "decide", "redact", "lists", "observe")


def name_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def test_the_modules_are_found():
    assert len(MODULES) > 40 and PACKAGE / "decide" / "gate.py" in MODULES  # control


@pytest.mark.parametrize("path", MODULES, ids=name_of)
def test_each_module_says_its_job(path):
    if path.name == "__main__.py":
        return
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc.splitlines()[0]) > 10, f"{path}: no docstring saying its job"


@pytest.mark.parametrize("path", [*MODULES, *sorted((ROOT / "tests").rglob("*.py"))], ids=str)
def test_no_private_name_of_another_module_is_imported(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith("proxy")
        ):
            private = [a.name for a in node.names if a.name.startswith("_")]
            private = [name for name in private if not name.startswith("__")]  # __version__
            assert not private, f"{path}:{node.lineno}: imports {private} from {node.module}"


@pytest.mark.parametrize("path", MODULES, ids=name_of)
def test_mitmproxy_internals_are_touched_in_compat_alone(path):
    if path == PACKAGE / "mitm" / "compat.py":
        return
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported = {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            assert not any(i.startswith(INTERNALS) for i in imported), (
                f"{path}:{node.lineno}: {node.module} belongs in proxy/mitm/compat.py"
            )
        if isinstance(node, ast.Attribute):
            internal = node.attr in INTERNAL_NAMES or (  # the proxyserver's connection handlers
                node.attr == "connections" and "proxyserver" in ast.unparse(node.value)
            )
            assert not internal, f"{path}:{node.lineno}: {ast.unparse(node)} belongs in compat.py"


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in MITMPROXY_FREE],
    ids=name_of,
)
def test_the_core_does_not_import_mitmproxy_at_module_level(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = (
                [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            )
            assert not any((n or "").startswith("mitmproxy") for n in names), (
                f"{path}:{node.lineno}: the core imports mitmproxy"
            )
