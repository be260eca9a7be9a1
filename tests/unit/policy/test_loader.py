"""Policy loading that neither fails open nor falls over, and a watch that never misses a
change: an empty or unreadable file the policy relies on is an error (a half-written catalog
file must not drop its services), YAML aliases cannot expand a small file into millions of
values or loop, and a change that lands while a load reads, or before the watch starts, is
loaded at the next poll. The same refusals through the real proxy are in test_reload.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, SHIPPED_CATALOG, local_ai_service

from proxy.policy.loader import load_policy
from proxy.policy.model import Policy
from proxy.policy.reload import PolicyReloader
from proxy.policy.yamlsource import (
    ALIAS_ALLOWANCE,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    PolicyError,
    Problems,
    load_yaml,
)

LOCAL = "\nservices:\n" + local_ai_service()  # a catalog file of one service
POLICY = (
    "catalog: [cat]\nversion: 1\nrules:\n  - {id: r, match: {categories: [chat]}, action: block}\n"
)
EMPTY = "the file is empty: only whitespace or comments"


def errors(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    return str(e.value).splitlines()


# -- 1. an empty or missing file is an error ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "\n\n   \n", "# services moved to local.yaml\n"],
    ids=["0-bytes", "blank", "comment"],
)
def test_an_empty_catalog_file_is_an_error(write_policy, tmp_path, text):
    """A write caught half-way, or a full disk: the file's services must not just vanish."""
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "half.yaml").write_text(text)
    path = write_policy(POLICY, {"cat/local.yaml": LOCAL})
    assert errors(path) == [f"{tmp_path / 'cat' / 'half.yaml'}:1: {EMPTY}"]


@pytest.mark.parametrize("text", ["~\n", "---\n", "null\n"])
def test_a_catalog_file_holding_nothing_is_an_error(write_policy, tmp_path, text):
    path = write_policy(POLICY, {"cat/local.yaml": LOCAL, "cat/none.yaml": text})
    assert errors(path) == [
        f"{tmp_path / 'cat' / 'none.yaml'}:1: a catalog file is a mapping with 'services:', "
        "not nothing"
    ]


def test_an_empty_policy_file_is_an_error(tmp_path):
    (tmp_path / "policy.yaml").write_text("\n# all rules removed\n")
    assert errors(tmp_path) == [f"{tmp_path / 'policy.yaml'}:1: {EMPTY}"]


def test_a_catalog_file_that_cannot_be_read_is_an_error(write_policy, tmp_path):
    """A ConfigMap caught mid-swap: the name is listed, the file behind it is gone."""
    path = write_policy(POLICY, {"cat/local.yaml": LOCAL})
    (tmp_path / "cat" / "gone.yaml").symlink_to("..data/gone.yaml")
    assert errors(path) == [
        f"{tmp_path / 'cat' / 'gone.yaml'}:0: cannot read: No such file or directory"
    ]


def test_a_catalog_directory_without_yaml_files_is_an_error(write_policy, tmp_path):
    path = write_policy(
        "version: 1\ncatalog: [cat, more]\nrules: []\n",
        {"cat/local.yaml": LOCAL, "more/README.md": "the catalog files were here\n"},
    )
    assert errors(path) == [f"{path}:2: catalog directory 'more' holds no *.yaml files"]


def test_a_file_larger_than_the_bound_is_refused_unread(tmp_path):
    """Checked on the open file's size: 64 MiB of nothing is never read or parsed."""
    (tmp_path / "policy.yaml").write_text("version: 1\nrules: []\n")
    os.truncate(tmp_path / "policy.yaml", MAX_FILE_BYTES + 1)  # sparse: no disk used
    assert errors(tmp_path) == [
        f"{tmp_path / 'policy.yaml'}:0: larger than 64 MiB: too large for a policy or catalog file"
    ]


def test_the_largest_generated_catalog_is_well_within_the_size_bound(tmp_path):
    """bench/engine_bench.py's 100,000-host catalog, the largest the project builds."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from engine_bench import generate_policy
    finally:
        sys.path.remove(str(ROOT / "bench"))
    generate_policy(tmp_path, 100_000, 0)
    assert (tmp_path / "catalog" / "generated.yaml").stat().st_size * 10 < MAX_FILE_BYTES


# -- 2. aliases are bounded before anything is built -------------------------------------------


def laughs(levels: int, width: int = 10) -> str:
    """A policy file carrying "billion laughs": level k holds `width` aliases of level k-1,
    so the last level expands to width**levels values. Level 0 is on line 3."""
    lines = ["version: 1", "rules: []", f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for k in range(1, levels):
        lines.append(f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


LOAD_IN_A_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # old code: MemoryError, not a hang
from proxy.policy.loader import load_policy
from proxy.policy.yamlsource import PolicyError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_policy(sys.argv[1])
    print("loaded")
except PolicyError as e:
    print(e)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.parametrize("levels", [6, 12], ids=["10^6-values", "10^12-values"])
def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path, levels):
    """The 10^6 bomb took 4-6 s and 750 MB before; two more levels exhausted memory. Refused
    at level 4, the first to pass the allowance, without building a value; the peak memory of
    the loading process barely moves."""
    (tmp_path / "policy.yaml").write_text(laughs(levels))
    child = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    *message, grown_mb = child.stdout.splitlines()
    assert message == [  # levels 1 to 4 add 110 + 1,110 + 11,110 + 111,110 values
        f"{tmp_path / 'policy.yaml'}:7: YAML aliases here make the file expand to 123,440 more "
        f"values than it writes out (at most {ALIAS_ALLOWANCE:,})"
    ]
    assert int(grown_mb) < 32, f"peak RSS grew by {grown_mb} MB while loading"


def test_a_merge_key_bomb_is_refused(tmp_path):
    """`<<` copies a mapping's pairs: merging two copies per level doubles them. Level 14
    (line 17) takes what aliases add past 100,000."""
    lines = ["version: 1", "rules: []", "m0: &m0 {k: 1}"]
    lines += [f"m{k}: &m{k} {{<<: [*m{k - 1}, *m{k - 1}]}}" for k in range(1, 30)]
    (tmp_path / "policy.yaml").write_text("\n".join(lines) + "\n")
    (error,) = errors(tmp_path)
    assert error.startswith(f"{tmp_path / 'policy.yaml'}:17: YAML aliases here make the file")


def yaml_errors(tmp_path: Path, text: str) -> tuple[object, list[str]]:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    problems = Problems()
    doc = load_yaml(path, problems)
    return doc, [str(p).removeprefix(f"{path}:") for p in problems.items]


def test_aliases_may_add_exactly_the_allowance(tmp_path):
    """100 aliases of a list of 1,000 values (itself and 999 items) add 100,000 values: at
    the bound. One more is over, and the error is at the list holding the aliases."""
    many = "a: &a [" + ", ".join(["x"] * 999) + "]\nb: [" + ", ".join(["*a"] * 100) + "]\n"
    doc, problems = yaml_errors(tmp_path, many)
    assert problems == [] and len(doc["b"]) == 100 and len(doc["b"][99]) == 999
    doc, problems = yaml_errors(tmp_path, many.replace("*a]", "*a, *a]"))
    assert doc is None
    assert problems == [
        "2: YAML aliases here make the file expand to 101,000 more values than it writes out "
        "(at most 100,000)"
    ]


@pytest.mark.parametrize(
    "text, line",
    [
        ("a: &a [1, *a]\n", 1),
        ("a:\n  b: &b\n    c: *b\n", 2),
        ("a: &a {<<: *a}\n", 1),
        ("x: 1\nl: &l [[[*l]]]\n", 2),
    ],
    ids=["list", "mapping", "merge", "nested"],
)
def test_an_alias_loop_is_refused(tmp_path, text, line):
    """Built, these recursed until RecursionError, a traceback instead of an error."""
    doc, problems = yaml_errors(tmp_path, text)
    assert doc is None
    assert problems == [f"{line}: a YAML alias in this value refers back to it (a loop)"]


def nested(depth: int) -> str:
    """A document whose values nest `depth` levels deep (the top mapping is the first)."""
    return "a: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"


def test_nesting_is_bounded(tmp_path):
    assert yaml_errors(tmp_path, nested(MAX_DEPTH))[1] == []
    assert yaml_errors(tmp_path, nested(MAX_DEPTH + 1))[1] == [
        "1: values nested more than 64 levels deep"
    ]
    # as deep as libyaml goes: building it used to end in RecursionError
    assert yaml_errors(tmp_path, nested(990))[1] == ["1: values nested more than 64 levels deep"]
    # through aliases, each level written on a line of its own: level 64 holds 65
    chain = "l0: &l0 [x]\n" + "".join(f"l{k}: &l{k} [*l{k - 1}]\n" for k in range(1, 70))
    assert yaml_errors(tmp_path, chain)[1] == ["65: values nested more than 64 levels deep"]


def test_a_policy_with_ordinary_aliases_loads(write_policy):
    """Anchors for a shared list, and merge keys whose own keys override the merged ones."""
    path = write_policy(
        """
        version: 1
        catalog: [cat]
        defaults: &strict {action: block, on_error: block}
        services:
          - &base {id: local-a, name: A, vendor: Test, category: chat, hosts: [a.example],
                   source: test}
          - {<<: *base, id: local-b, hosts: [b.example]}
        rules:
          - id: watch
            match: {services: &ours [local-a, local-b], paths: &api [/v1/**]}
            action: monitor
          - {id: block, match: {services: *ours}, action: block}
          - {id: also, match: {hosts: [c.example], paths: *api}, <<: *strict}
        """,
        {"cat/local.yaml": LOCAL},
    )
    with pytest.raises(PolicyError) as e:  # 'on_error' is not a rule key: merged keys count
        load_policy(path)
    assert str(e.value) == f"{path}:3: rule 'also': unknown key 'on_error'"
    path.write_text(path.read_text().replace("on_error: block", "message: nope"))
    policy = load_policy(path)
    assert [s.id for s in policy.services] == ["local-ai", "local-a", "local-b"]
    assert policy.services[2].name == "A" and policy.services[2].hosts[0].text == "b.example"
    assert [r.match.services for r in policy.rules[:2]] == [frozenset({"local-a", "local-b"})] * 2
    assert policy.rules[2].action == "block" and policy.defaults.action == "block"


# -- 3. the watch compares what was read, not what is there after reading ----------------------

BLOCK = "rules:\n  - {id: no-local-ai, match: {services: [local-ai]}, action: block}\n"
MONITOR = "rules:\n  - {id: watch-local-ai, match: {services: [local-ai]}, action: monitor}\n"


def write(directory: Path, rules: str, catalog: Path | str = "cat") -> None:
    """policy.yaml replaced the way editors and config tools do: a new file moved in place."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "next.yaml").write_text(f"version: 1\ncatalog: [{catalog}]\n{rules}")
    os.replace(directory / "next.yaml", directory / "policy.yaml")


def watch(
    directory: Path,
    policy: Policy,
    until: Callable[[list[Policy], list[Exception]], bool],
    prepare: Callable[[Policy], None] = lambda _: None,
) -> tuple[list[Policy], list[Exception]]:
    """Run a PolicyReloader polling every 20 ms, with `policy` in force, until `until(installed,
    rejected)` holds (or 10 s have passed)."""
    installed: list[Policy] = []
    rejected: list[Exception] = []

    async def scenario() -> None:
        reloader = PolicyReloader(
            directory, policy, prepare, lambda p, _: installed.append(p), rejected.append
        )
        reloader.start(0.02)
        deadline = time.monotonic() + 10
        while not until(installed, rejected) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        reloader.stop()

    asyncio.run(scenario())
    return installed, rejected


@pytest.fixture
def policy_dir(tmp_path) -> Path:
    (tmp_path / "p" / "cat").mkdir(parents=True)
    (tmp_path / "p" / "cat" / "local.yaml").write_text(LOCAL)
    write(tmp_path / "p", BLOCK)
    return tmp_path / "p"


def test_a_change_made_while_a_reload_reads_is_loaded_at_the_next_poll(policy_dir):
    """The second edit lands after the reload read the files, before it finished: the
    fingerprint that reload took before reading still shows the old file, so the next poll
    loads again. (A fingerprint taken after loading matched the new file: never loaded.)"""
    first = load_policy(policy_dir)

    def prepare(policy: Policy) -> None:  # in the reload's thread, after every file was read
        if policy.rules[0].id == "watch-local-ai":
            write(policy_dir, BLOCK.replace("no-local-ai", "still-no-local-ai"))

    write(policy_dir, MONITOR)
    installed, _ = watch(policy_dir, first, lambda i, _: len(i) == 2, prepare)
    assert [p.rules[0].id for p in installed] == ["watch-local-ai", "still-no-local-ai"]
    assert installed[-1].digest == load_policy(policy_dir).digest


def test_a_change_made_before_the_watch_starts_is_loaded(policy_dir):
    """A worker loads its policy when configured and starts watching when running: an edit
    in between must not be taken for what was loaded."""
    first = load_policy(policy_dir)  # configure
    write(policy_dir, MONITOR)
    installed, _ = watch(policy_dir, first, lambda i, _: bool(i))  # running: the watch starts
    assert [p.rules[0].id for p in installed] == ["watch-local-ai"]


def test_the_digest_is_of_the_bytes_read(policy_dir):
    """Not of the files read again after parsing, which may have changed by then."""
    policy = load_policy(policy_dir)
    read = (policy_dir / "policy.yaml").read_bytes() + LOCAL.encode()
    assert policy.digest == hashlib.sha256(read).hexdigest()
    assert [name for name, _ in policy.fingerprint.files] == [
        str(policy_dir / "policy.yaml"),
        str(policy_dir / "cat" / "local.yaml"),
    ]
    assert policy.fingerprint.listings == (
        (str(policy_dir / "cat"), (str(policy_dir / "cat" / "local.yaml"),)),
    )
    assert policy.fingerprint.now() == policy.fingerprint


def test_a_refused_change_is_retried_when_what_it_read_changes(policy_dir, tmp_path):
    """Refused for a catalog directory that is not there yet: the directory is watched, and
    its files appearing are loaded; a poll in between with nothing new is quiet."""
    first = load_policy(policy_dir)
    write(policy_dir, MONITOR, catalog=tmp_path / "later")

    def create_when_refused(installed: list[Policy], rejected: list[Exception]) -> bool:
        if len(rejected) == 1 and not (tmp_path / "later").exists():
            (tmp_path / "tmp").mkdir()
            (tmp_path / "tmp" / "local.yaml").write_text(LOCAL)
            os.replace(tmp_path / "tmp", tmp_path / "later")
        return bool(installed)

    installed, rejected = watch(policy_dir, first, create_when_refused)
    assert [str(e).splitlines()[0].split(": ", 1)[1] for e in rejected] == [
        f"catalog directory '{tmp_path / 'later'}' does not exist "
        f"(relative paths start from {policy_dir})"
    ]
    assert [p.rules[0].id for p in installed] == ["watch-local-ai"]


def test_fingerprint_sees_a_catalog_file_added_edited_or_removed(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "a.yaml").write_text((SHIPPED_CATALOG / "openai.yaml").read_text())
    write(tmp_path / "p", BLOCK.replace("local-ai", "openai-api"), catalog)
    seen = load_policy(tmp_path / "p").fingerprint
    assert seen.now() == seen
    (catalog / "b.yaml").write_text("services: []\n")
    added = seen.now()
    assert added != seen
    os.utime(catalog / "a.yaml", ns=(1, 1))
    assert seen.now() != added
    (catalog / "b.yaml").unlink()
    (catalog / "a.yaml").unlink()
    assert dict(seen.now().files)[str(catalog / "a.yaml")] == (-1, -1, -1)  # gone
