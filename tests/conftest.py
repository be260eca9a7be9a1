"""Shared helpers: the shipped policy, and small policies written to a temporary directory."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from proxy.decide.engine import Engine
from proxy.policy.loader import load_policy
from proxy.policy.model import Policy
from proxy.policy.yamlsource import PolicyError

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DATA = TESTS / "data"
SHIPPED = ROOT / "policies"
SHIPPED_CATALOG = SHIPPED / "catalog"


@pytest.fixture(scope="session")
def shipped_policy() -> Policy:
    return load_policy(SHIPPED)


@pytest.fixture(scope="session")
def shipped_engine(shipped_policy: Policy) -> Engine:
    return Engine(shipped_policy)


@pytest.fixture
def write_policy(tmp_path: Path):
    """Write policy.yaml (dedented) into a fresh directory; returns the file's path.

    Unless the text names its own `catalog:`, the shipped catalog is used.
    """

    def write(text: str, files: dict[str, str] | None = None) -> Path:
        text = textwrap.dedent(text).lstrip("\n")
        if "catalog:" not in text:
            text = f"catalog: [{SHIPPED_CATALOG}]\n" + text
        for name, content in (files or {}).items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(content).lstrip("\n"))
        policy = tmp_path / "policy.yaml"
        policy.write_text(text)
        return policy

    return write


@pytest.fixture
def engine_for(write_policy):
    """An Engine for a policy text (shipped catalog unless the text names another)."""

    def build(text: str, files: dict[str, str] | None = None) -> Engine:
        return Engine(load_policy(write_policy(text, files)))

    return build


# -- policy errors as 'line: message' (the validation and redaction tests) ---------------------


def errors_of(write_policy, text, files=None):
    """The problems as 'line: message' strings (checking that each names the file)."""
    path = write_policy(text, files)
    with pytest.raises(PolicyError) as e:
        load_policy(path.parent)
    out = []
    for p in e.value.problems:
        assert p.file.endswith(".yaml")
        out.append(f"{p.line}: {p.message}")
    return out


def assert_error(errors, line, fragment):
    for e in errors:
        if e.startswith(f"{line}: ") and fragment in e:
            return
    pytest.fail(f"no error at line {line} containing {fragment!r}; got:\n" + "\n".join(errors))
