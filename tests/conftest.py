"""Shared helpers: the shipped policy, and small policies written to a temporary directory."""

from __future__ import annotations

import contextlib
import io
import subprocess
import textwrap
from pathlib import Path

import pytest

from proxy.cli import main as aiwarden_main
from proxy.decide.engine import Engine
from proxy.policy.loader import load_policy
from proxy.policy.model import Policy
from proxy.policy.yamlsource import PolicyError

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
DATA = TESTS / "data"
SHIPPED = ROOT / "policies"
SHIPPED_CATALOG = SHIPPED / "catalog"


def aiwarden_in_process(*args: str) -> subprocess.CompletedProcess:
    """`aiwarden ARGS` run by this process: the CLI's own code, output and exit status,
    without the second a new process takes to start (tests/unit/test_cli.py runs the
    installed command itself)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = aiwarden_main(list(args))
        except SystemExit as e:  # argparse's own errors
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
    return subprocess.CompletedProcess(["aiwarden", *args], code, out.getvalue(), err.getvalue())


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


# -- the local-AI policy: one `local-ai` service on localhost, the name the local upstreams -----
# -- answer to, so the proxy tests decide on a real service without leaving loopback ----------


def local_ai_service(category: str = "chat", api_format: str | None = None) -> str:
    """The catalog entry of the `local-ai` service, as one item of a `services:` list."""
    fmt = f"api_format: {api_format}, " if api_format else ""
    return (
        f"  - {{id: local-ai, name: Local AI, vendor: Test, category: {category}, "
        f"hosts: [localhost],\n     {fmt}source: test}}\n"
    )


def _section(text: str, indent: str = "") -> str:
    text = textwrap.dedent(text).strip("\n")
    return textwrap.indent(text, indent) + "\n" if text else ""


def local_ai_policy(
    rules: str | None = None,
    *,
    category: str = "chat",
    api_format: str | None = None,
    clients: tuple[str, ...] = ("127.0.0.0/8",),
    deny: tuple[str, ...] = ("169.254.0.0/16",),
    services: str = "",
    sections: str = "",
    defaults: str = "",
) -> str:
    """Policy text for proxyharness.write_policy: clients on loopback, link-local denied, the
    `local-ai` service, then `services` (more list items), `sections` (more top-level keys:
    groups, redaction_profiles) and `rules` (the list items; no `rules:` key when None).
    Each argument is YAML, dedented here."""
    network = ", ".join(f'"{c}"' if ":" in c else c for c in clients)
    denied = ", ".join(f'"{d}"' if ":" in d else d for d in deny)
    text = (
        "\n"
        + _section(defaults)
        + f"network:\n  clients: [{network}]\n  deny_destinations: [{denied}]\n"
        + "services:\n"
        + local_ai_service(category, api_format)
        + _section(services, "  ")
        + _section(sections)
    )
    if rules is not None:
        text += "rules:\n" + _section(rules, "  ")
    return text


# user alice in group research; research may use local-ai (monitored), other chat is blocked:
# the policy of the tests that name users (proxy authentication, Kerberos)
RESEARCH_MAY_POLICY = local_ai_policy(
    sections="""
    groups:
      research: {users: [alice]}
    """,
    rules="""
    - id: research-may
      match: {groups: [research], services: [local-ai]}
      action: monitor
    - id: block-ai
      match: {categories: [chat]}
      action: block
    """,
)

# loopback clients, the catalog's chat and API services blocked: the policy of the tests of
# tunnels and of the proxy's own TLS, where what is decided is the host alone
BLOCK_AI_POLICY = """
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
rules:
  - id: block-ai
    match: {categories: [chat, api]}
    action: block
"""
