"""Shared helpers: the shipped policy, and small policies written to a temporary directory."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from proxy.decide.engine import Engine
from proxy.policy.loader import load_policy
from proxy.policy.model import Policy

ROOT = Path(__file__).resolve().parent.parent
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
