"""`aiwarden catalog import`: community lists as catalog YAML of their own, end to end."""

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, SHIPPED, SHIPPED_CATALOG, aiwarden_in_process

from proxy.lists.formats import DOMAIN, FULL, parse, read_list

# the reference lists sit beside the project (../shared); a worktree is one level deeper
REFERENCE = next(
    (
        p / "shared/reference/lists"
        for p in (ROOT.parent, ROOT.parent.parent)
        if (p / "shared/reference/lists").is_dir()
    ),
    ROOT.parent / "shared/reference/lists",
)

POLICY = f"""\
version: 1
catalog: [{SHIPPED_CATALOG}, imported]
rules:
  - id: block-chat
    match: {{categories: [chat]}}
    action: block
"""


def run(*args: str) -> subprocess.CompletedProcess:
    return aiwarden_in_process(*args)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    directory = tmp_path / "policy"
    directory.mkdir()
    (directory / "policy.yaml").write_text(POLICY)
    return directory


def do_import(policy: Path, fmt: str, *files: Path, date: str = "2026-12-01", extra=()) -> dict:
    r = run("catalog", "import", "--policy", str(policy), "--format", fmt, "--date", date,
            "--json", *extra, *map(str, files))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)


def services_of(policy: Path) -> dict[str, dict]:
    r = run("catalog", "--json", "--policy", str(policy))
    assert r.returncode == 0, r.stderr
    return {s["id"]: s for s in json.loads(r.stdout)}


def explain(policy: Path, *urls: str) -> dict[str, dict]:
    r = run("explain", "--json", "--policy", str(policy), *urls)
    assert r.returncode == 0, r.stderr
    return {d["url"]: d for d in map(json.loads, r.stdout.splitlines())}


# -- the five formats, labels, and what the policy then does ---------------------------------------


def lists(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "lists"
    (d / "v2fly").mkdir(parents=True)
    return {
        "v2fly": write(
            d / "v2fly" / "category-ai-test",
            """
            include:acme-ai
            include:acme-ai-extra @-ads

            # Zed Chat
            zedchat-ai.example
            full:api.zedchat-ai.example
            """,
        ),
        "acme": write(
            d / "v2fly" / "acme-ai",
            """
            # Main domain
            acme-ai.example
            acme-ai-cdn.example
            """,
        ),
        "acme-extra": write(
            d / "v2fly" / "acme-ai-extra",
            """
            acme-ai-static.example
            full:telemetry.acme-ai.example @ads
            """,
        ),
        "adguard": write(
            d / "chatbot.yml",
            """
            id: chatbot
            name: ChatBot
            group: ai
            rules:
              - '||chatbot-ai.example^'
              - '||chatbot-ai-cdn.example^'
            """,
        ),
        "abp": write(
            d / "ai-filter.txt",
            """
            [Adblock Plus 2.0]
            ! Title: AI filter
            ! Version: 3

            ! Writer tools
            ||writer-ai.example^
            """,
        ),
        "hosts": write(
            d / "ai.hosts",
            """
            # AI hosts, blocked
            127.0.0.1 localhost

            # Voice bots
            0.0.0.0 voice-ai.example www.voice-ai.example
            """,
        ),
        "plain": write(
            d / "ai-domains.txt",
            """
            plain-ai.example
            """,
        ),
    }


def test_each_format_imports_into_services_the_policy_blocks(tmp_path, policy):
    files = lists(tmp_path)
    for fmt, key in [("v2fly", "v2fly"), ("adguard", "adguard"), ("abp", "abp"),
                     ("hosts", "hosts"), ("plain", "plain")]:  # fmt: skip
        report = do_import(policy, fmt, files[key])
        assert report["included_by_policy"] and report["policy_check"]["ok"]
    imported = policy / "imported"
    assert sorted(p.name for p in imported.iterdir()) == [
        "ai-domains-txt.yaml", "ai-filter-txt.yaml", "ai-hosts.yaml", "category-ai-test.yaml",
        "chatbot-yml.yaml",
    ]  # fmt: skip
    services = services_of(policy)
    # one service a label: the v2fly include name or heading, AdGuard's service id, an ABP or
    # hosts section comment, else the list's file name
    expect = {
        "import-category-ai-test-acme-ai": ["acme-ai.example", "*.acme-ai.example",
                                            "acme-ai-cdn.example", "*.acme-ai-cdn.example"],
        "import-category-ai-test-acme-ai-extra": ["acme-ai-static.example",
                                                  "*.acme-ai-static.example"],
        "import-category-ai-test-zed-chat": ["zedchat-ai.example", "*.zedchat-ai.example"],
        "import-chatbot-yml-chatbot": ["chatbot-ai.example", "*.chatbot-ai.example",
                                       "chatbot-ai-cdn.example", "*.chatbot-ai-cdn.example"],
        "import-ai-filter-txt-writer-tools": ["writer-ai.example", "*.writer-ai.example"],
        "import-ai-hosts-voice-bots": ["voice-ai.example", "www.voice-ai.example"],
        "import-ai-domains-txt-ai-domains-txt": ["plain-ai.example", "*.plain-ai.example"],
    }  # fmt: skip
    for sid, hosts in expect.items():
        assert services[sid]["hosts"] == hosts
        assert services[sid]["category"] == "chat"
        assert services[sid]["checked"] == "2026-12-01"
    acme = services["import-category-ai-test-acme-ai"]
    assert acme["source"] == "imported from v2fly list category-ai-test: acme-ai"
    assert acme["name"] == "acme-ai" and acme["vendor"] == "unknown"
    # full:api.zedchat-ai.example is inside zedchat-ai.example's *.: merged, not repeated
    assert "api.zedchat-ai.example" not in services["import-category-ai-test-zed-chat"]["hosts"]

    decisions = explain(policy, "https://acme-ai.example/", "https://x.chatbot-ai.example/a",
                        "https://voice-ai.example/", "https://api.voice-ai.example/",
                        "https://example.org/")  # fmt: skip
    assert decisions["https://acme-ai.example/"]["action"] == "block"
    assert decisions["https://acme-ai.example/"]["rule"] == "block-chat"
    assert decisions["https://acme-ai.example/"]["service"] == "import-category-ai-test-acme-ai"
    assert decisions["https://x.chatbot-ai.example/a"]["action"] == "block"
    assert decisions["https://voice-ai.example/"]["action"] == "block"
    assert decisions["https://api.voice-ai.example/"]["action"] == "allow"  # hosts: exact only
    assert decisions["https://example.org/"]["action"] == "allow"
    r = run("check", "--policy", str(policy))
    assert r.returncode == 0, r.stderr


def test_v2fly_ads_entries_and_unresolved_includes_are_reported(tmp_path, policy):
    files = lists(tmp_path)
    files["acme-extra"].write_text("acme-ai-static.example\nfull:telemetry.acme-ai.example @ads\n")
    files["v2fly"].write_text("include:acme-ai-extra\ninclude:missing-one\n")
    report = do_import(policy, "v2fly", files["v2fly"])["lists"][0]
    [ads] = report["conflicts"]
    assert ads["entry"] == "full:telemetry.acme-ai.example"
    assert ads["reason"].startswith("tracking host (@ads)")
    assert any("include:missing-one not resolved" in n for n in report["notes"])


# -- curated wins, shared hosts, negatives ---------------------------------------------------------


def test_a_curated_domain_is_skipped_and_reported(tmp_path, policy):
    listed = write(
        tmp_path / "ai.txt",
        """
        chatgpt.com
        claude.ai
        brand-new-ai.example
        """,
    )
    report = do_import(policy, "plain", listed)["lists"][0]
    assert [(x["entry"], x["reason"]) for x in report["catalogued"]] == [
        ("chatgpt.com", "already catalogued as chatgpt"),
        ("claude.ai", "already catalogued as claude"),
    ]
    [service] = report["services"]
    assert service["hosts"] == ["brand-new-ai.example", "*.brand-new-ai.example"]
    text = (policy / "imported" / "ai-txt.yaml").read_text()
    assert "chatgpt.com" not in text and "claude.ai" not in text
    assert explain(policy, "https://chatgpt.com/")["https://chatgpt.com/"]["service"] == "chatgpt"

    r = run("catalog", "import", "--policy", str(policy), "--format", "plain", str(listed))
    assert "skipped   chatgpt.com  (ai.txt): already catalogued as chatgpt" in r.stdout


def path_scoped_hosts() -> set[str]:
    r = run("catalog", "--json", "--policy", str(SHIPPED))
    return {h for s in json.loads(r.stdout) if s["paths"] for h in s["hosts"]}


def test_shared_hosts_public_suffixes_and_negatives_are_conflicts(tmp_path, policy):
    shared = path_scoped_hosts()
    assert {"huggingface.co", "api.github.com"} <= shared
    listed = write(
        tmp_path / "ai.txt",
        """
        huggingface.co
        github.com
        bing.com
        github.io
        vercel.app
        someone.github.io
        ordinary-site.example
        brand-new-ai.example
        """,
    )
    negative = write(tmp_path / "ordinary.txt", "ordinary-site.example\n")
    report = do_import(policy, "plain", listed, extra=("--negative", str(negative)))["lists"][0]
    reasons = {x["entry"]: x["reason"] for x in report["conflicts"]}
    assert reasons["huggingface.co"].startswith(
        "shared host: curated service huggingchat is only some paths of huggingface.co"
    )
    # api.github.com (Copilot's token paths) is a shared host below github.com, if not github.com
    assert reasons["github.com"].startswith("shared host: curated service github-copilot-")
    assert re.search(r"only some paths of (api\.)?github\.com ", reasons["github.com"])
    if {"bing.com", "www.bing.com"} & shared:  # bing.com is path-scoped in the shipped catalog
        assert reasons["bing.com"].startswith("shared host:")
    for suffix in ("github.io", "vercel.app"):
        assert reasons[suffix].startswith("public suffix or shared hosting domain")
    assert reasons["ordinary-site.example"] == (
        "in the negative list ordinary.txt: it would catch ordinary-site.example"
    )
    [service] = report["services"]  # a site under a shared suffix is its owner's own
    hosts = service["hosts"]
    assert [h for h in hosts if "bing" not in h] == [
        "someone.github.io", "*.someone.github.io", "brand-new-ai.example", "*.brand-new-ai.example"
    ]  # fmt: skip
    assert ("bing.com" in hosts) == ("bing.com" not in reasons)
    text = (policy / "imported" / "ai-txt.yaml").read_text()
    for host in ("huggingface.co", '"github.com"', '"github.io"', "vercel.app", "ordinary-site"):
        assert host not in text
    decisions = explain(policy, "https://huggingface.co/models", "https://github.com/",
                        "https://x.vercel.app/")  # fmt: skip
    assert all(d["action"] == "allow" for d in decisions.values()), decisions


def test_a_domain_wider_than_a_curated_service_is_a_conflict(tmp_path, policy):
    (policy / "policy.yaml").write_text(POLICY + textwrap.dedent("""
        services:   # the policy's own services are curated too
          - id: corp-ai-paths
            name: Corp AI on a shared host
            vendor: Corp
            category: api
            hosts: [api.shared-corp.example, "*.wide-corp.example"]
            paths: [/ai/**]
            source: test
          - id: corp-chat
            name: Corp chat, one host of a wider domain
            vendor: Corp
            category: chat
            hosts: [chat.portal-corp.example]
            source: test
        """))  # fmt: skip
    listed = write(
        tmp_path / "ai.txt",
        """
        shared-corp.example
        x.wide-corp.example
        portal-corp.example
        """,
    )
    report = do_import(policy, "plain", listed)["lists"][0]
    assert [x["reason"].split(" (")[0] for x in report["conflicts"]] == [
        "shared host: curated service corp-ai-paths is only some paths of api.shared-corp.example",
        "shared host: curated service corp-ai-paths is only some paths of *.wide-corp.example",
        # the curated catalog chose one host of the domain: the rest is not that service
        "wider than the AI service: the curated catalog claims only chat.portal-corp.example "
        "below it",
    ]
    assert report["services"] == []


def test_two_labels_of_one_list_first_wins(tmp_path, policy):
    listed = write(
        tmp_path / "ai.txt",
        """
        # First
        twice-ai.example

        # Second
        twice-ai.example
        sub.twice-ai.example
        other-ai.example
        """,
    )
    report = do_import(policy, "plain", listed)["lists"][0]
    assert [s["label"] for s in report["services"]] == ["First", "Second"]
    assert report["services"][1]["hosts"] == ["other-ai.example", "*.other-ai.example"]
    conflicts = [(x["entry"], x["label"], x["reason"]) for x in report["conflicts"]]
    assert conflicts == [
        ("twice-ai.example", "Second",
         "claimed first by label 'First' of this list (import-ai-txt-first)"),
        ("sub.twice-ai.example", "Second",
         "claimed first by label 'First' of this list (import-ai-txt-first)"),
    ]  # fmt: skip


def test_another_imported_list_is_not_claimed_twice(tmp_path, policy):
    one = write(tmp_path / "one.txt", "shared-ai.example\n")
    two = write(tmp_path / "two.txt", "shared-ai.example\nown-ai.example\n")
    do_import(policy, "plain", one)
    report = do_import(policy, "plain", two)["lists"][0]
    assert [x["reason"] for x in report["catalogued"]] == [
        "already imported as import-one-txt-one-txt (one-txt.yaml)"
    ]
    assert run("check", "--policy", str(policy)).returncode == 0


# -- idempotence and change ---------------------------------------------------------------------


def test_a_second_import_is_byte_identical(tmp_path, policy):
    files = lists(tmp_path)
    do_import(policy, "v2fly", files["v2fly"], date="2026-12-01")
    target = policy / "imported" / "category-ai-test.yaml"
    before, stat = target.read_bytes(), target.stat()
    report = do_import(policy, "v2fly", files["v2fly"], date="2026-12-24")
    assert target.read_bytes() == before
    assert target.stat().st_mtime_ns == stat.st_mtime_ns  # not even rewritten: no reload
    assert report["lists"][0]["status"] == "unchanged"
    assert {s["status"] for s in report["lists"][0]["services"]} == {"unchanged"}
    assert "checked: 2026-12-01" in before.decode() and "2026-12-24" not in before.decode()
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary files


def test_a_changed_list_changes_only_what_changed(tmp_path, policy):
    files = lists(tmp_path)
    do_import(policy, "v2fly", files["v2fly"], date="2026-12-01")
    target = policy / "imported" / "category-ai-test.yaml"
    before = target.read_text().splitlines()
    files["acme"].write_text("# Main domain\nacme-ai.example\nacme-ai-cdn.example\nacme2.example\n")
    files["v2fly"].write_text("include:acme-ai\ninclude:acme-ai-extra @-ads\n")  # Zed Chat gone
    report = do_import(policy, "v2fly", files["v2fly"], date="2026-12-24")["lists"][0]
    status = {s["id"]: (s["status"], s["checked"]) for s in report["services"]}
    assert status == {
        "import-category-ai-test-acme-ai": ("changed", "2026-12-24"),
        "import-category-ai-test-acme-ai-extra": ("unchanged", "2026-12-01"),
    }
    assert report["removed"] == ["import-category-ai-test-zed-chat"]
    after = target.read_text().splitlines()
    import difflib

    changed = [ln for ln in difflib.unified_diff(before, after, lineterm="", n=0)
               if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]  # fmt: skip
    assert sorted(changed) == sorted([
        "-    checked: 2026-12-01", "+    checked: 2026-12-24",
        '+      - "acme2.example"', '+      - "*.acme2.example"',
        "-  - id: import-category-ai-test-zed-chat", '-    name: "Zed Chat"',
        '-    vendor: "unknown"', "-    category: chat", "-    hosts:",
        '-      - "zedchat-ai.example"', '-      - "*.zedchat-ai.example"',
        '-    source: "imported from v2fly list category-ai-test: Zed Chat"',
        "-    checked: 2026-12-01",
    ])  # fmt: skip


def test_dry_run_writes_nothing_and_several_lists_go_in_one_call(tmp_path, policy):
    one = write(tmp_path / "one.txt", "one-ai.example\n")
    two = write(tmp_path / "two.txt", "two-ai.example\none-ai.example\n")
    r = run("catalog", "--policy", str(policy), "import", "--format", "plain", "--dry-run",
            "--json", str(one), str(two))  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [x["status"] for x in report["lists"]] == ["would be written"] * 2
    assert not (policy / "imported").exists()
    report = do_import(policy, "plain", one, two)
    assert [x["status"] for x in report["lists"]] == ["written"] * 2
    # the second list sees the first one's file: one-ai.example stays there
    assert [x["entry"] for x in report["lists"][1]["catalogued"]] == ["one-ai.example"]
    assert report["policy_check"]["ok"]


def test_malformed_lines_are_reported_with_file_and_line(tmp_path, policy):
    listed = write(
        tmp_path / "ai.hosts",
        """
        # AI
        0.0.0.0 good-ai.example
        0.0.0.0 bad_host!.example
        this is not a hosts line
        """,
    )
    report = do_import(policy, "hosts", listed)["lists"][0]
    assert [(x["where"], x["text"]) for x in report["left_out"]] == [
        ("ai.hosts:3", "bad_host!.example"),
        ("ai.hosts:4", "this is not a hosts line"),
    ]
    r = run("catalog", "import", "--policy", str(policy), "--format", "hosts", str(listed))
    assert "left out  ai.hosts:4: 'this is not a hosts line': blocks no host" in r.stdout
    assert [s["hosts"] for s in report["services"]] == [["good-ai.example"]]


def test_an_import_that_would_not_load_leaves_the_old_file(tmp_path, policy):
    listed = write(tmp_path / "ai.txt", "first-ai.example\n")
    do_import(policy, "plain", listed)
    target = policy / "imported" / "ai-txt.yaml"
    before = target.read_bytes()
    # a curated service that takes the id the import would give the label
    (policy / "policy.yaml").write_text(POLICY + textwrap.dedent("""
        services:
          - id: import-ai-txt-ai-txt
            name: Taken
            vendor: Corp
            category: api
            hosts: [taken.example]
            source: test
        """))  # fmt: skip
    listed.write_text("first-ai.example\nsecond-ai.example\n")
    r = run("catalog", "import", "--policy", str(policy), "--format", "plain", str(listed))
    assert r.returncode == 2
    assert "service id 'import-ai-txt-ai-txt' is already used" in r.stderr
    assert r.stderr.splitlines()[-1] == f"aiwarden catalog import: {listed}: not imported " \
        f"({target} is as it was)"  # fmt: skip
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_operator_mistakes_are_one_line(tmp_path, policy):
    missing = tmp_path / "nope.txt"
    cases = {
        ("--format", "plain", str(missing)): f"{missing}: cannot read: No such file or directory",
        ("--format", "csv", str(missing)): "unknown list format 'csv' (one of v2fly, adguard, "
                                           "abp, hosts, plain)",
        ("--format", "plain", "--category", "chatty", str(missing)): "unknown category 'chatty'",
        ("--format", "plain", "--date", "yesterday", str(missing)): "--date 'yesterday' is not",
    }  # fmt: skip
    for args, message in cases.items():
        r = run("catalog", "import", "--policy", str(policy), *args)
        assert r.returncode == 2, r
        [line] = r.stderr.strip().splitlines()
        assert line.startswith(f"aiwarden catalog import: {message}"), line
    r = run("catalog", "import", "--policy", str(policy), "--format", "plain", "--out",
            str(SHIPPED_CATALOG), str(missing))  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.startswith(f"aiwarden catalog import: {SHIPPED_CATALOG} holds catalog files "
                               "no import wrote")  # fmt: skip
    r = run("catalog", "import", "--policy", str(tmp_path / "none"), "--format", "plain",
            str(missing))  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not (policy / "imported").exists()


def test_the_help_shows_how_the_policy_includes_the_directory():
    r = run("catalog", "import", "--help")
    assert "catalog: [catalog, imported]" in r.stdout
    assert "The lists say only that a domain is AI, not what it does" in " ".join(r.stdout.split())


def test_a_policy_not_including_the_directory_is_told_how(tmp_path):
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "policy.yaml").write_text(POLICY.replace(", imported]", "]"))
    listed = write(tmp_path / "ai.txt", "brand-new-ai.example\n")
    r = run("catalog", "import", "--policy", str(directory), "--format", "plain", str(listed),
            "--out", str(tmp_path / "elsewhere"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "note: the policy does not include" in r.stdout
    assert "catalog: [catalog, ../elsewhere]" in r.stdout
    assert (tmp_path / "elsewhere" / "ai-txt.yaml").is_file()


# -- parsers: the labels -----------------------------------------------------------------------


def test_v2fly_includes_resolve_beside_the_list_with_attribute_filters(tmp_path):
    write(tmp_path / "top", "include:vendor @-ads\ninclude:vendor-ads @ads\n# Own\nown.example\n")
    write(tmp_path / "vendor", "# Main\nv.example\nfull:t.v.example @ads\n")
    write(tmp_path / "vendor-ads", "a.example\nfull:b.example @ads\n")
    parsed = read_list(tmp_path / "top", "v2fly")
    got = [(e.kind, e.value, e.label, e.group, e.attrs) for e in parsed.entries]
    assert got == [
        (DOMAIN, "v.example", "vendor: Main", "vendor", ()),
        (FULL, "b.example", "vendor-ads @ads", "vendor-ads", ("ads",)),
        (DOMAIN, "own.example", "top: Own", "Own", ()),
    ]


def test_adguard_services_json_takes_the_ai_group_by_service_id():
    text = json.dumps({"blocked_services": [
        {"id": "chatgpt", "name": "ChatGPT", "group": "ai", "rules": ["||chatgpt.com^"]},
        {"id": "youtube", "name": "YouTube", "group": "video", "rules": ["||youtube.com^"]},
        {"id": "claude", "name": "Claude", "group": "ai", "rules": ["||claude.ai^", "/x/"]},
    ]})  # fmt: skip
    parsed = parse(text, "adguard", "services.json")
    assert [(e.value, e.group) for e in parsed.entries] == [
        ("chatgpt.com", "chatgpt"),
        ("claude.ai", "claude"),
    ]
    assert [str(x) for x in parsed.left_out] == [
        "services.json:claude:2: '/x/': not a ||domain^ rule"
    ]
    assert "1 services outside AdGuard's 'ai' group left out" in parsed.notes[0]


def test_section_comments_head_their_entries():
    text = "# Title: my list\n# Updated: today\n\n# Chat\n# (more words)\na.example\n\nb.example\n"
    assert [(e.value, e.group) for e in parse(text, "plain", "x").entries] == [
        ("a.example", "Chat"),
        ("b.example", ""),
    ]


# -- a real list, and the real proxy ------------------------------------------------------------


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference lists not found at {REFERENCE}")
def test_a_real_v2fly_list_snapshot(tmp_path, policy):
    """A handful of v2fly category-ai-!cn entries (v2fly/domain-list-community@c975ccef, from
    the reference TSV) written back in v2fly syntax, include structure and all."""
    rows = [ln.split("\t") for ln in (REFERENCE / "v2fly-ai.tsv").read_text().splitlines()[1:]]
    wanted = {"openai: Main domain", "openai: tracking @ads", "huggingface", "category-ai-!cn"}
    files: dict[str, list[str]] = {}
    for entry, label, name in rows:
        if name == "v2fly-!cn" and label in wanted:
            group, _, heading = label.partition(": ")
            attrs = " @ads" if heading.endswith("@ads") else ""
            heading = heading.removesuffix(" @ads")
            lines = files.setdefault(group, [])
            if heading and f"# {heading}" not in lines:
                lines += ["", f"# {heading}"]
            lines.append(f"{'full:' if entry.startswith('full:') else ''}"
                         f"{entry.removeprefix('full:')}{attrs}")  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    top = files.pop("category-ai-!cn")
    (data / "category-ai-!cn").write_text(
        "".join(f"include:{g}\n" for g in files) + "\n" + "\n".join(top) + "\n"
    )
    for group, lines in files.items():
        (data / group).write_text("\n".join(lines) + "\n")
    negatives = REFERENCE / "negatives-public.tsv"
    report = do_import(policy, "v2fly", data / "category-ai-!cn",
                       extra=("--negative", str(negatives)))["lists"][0]  # fmt: skip
    entries = len(read_list(data / "category-ai-!cn", "v2fly").entries)
    print(f"{entries} entries: {len(report['catalogued'])} catalogued, "
          f"{len(report['conflicts'])} conflicts, {report['services']} imported")  # fmt: skip
    assert entries > 40
    conflicts = {x["entry"]: x["reason"] for x in report["conflicts"]}
    assert conflicts["domain:huggingface.co"].startswith("shared host:")
    assert conflicts["full:browser-intake-datadoghq.com"].startswith("tracking host (@ads)")
    assert {x["entry"] for x in report["catalogued"]} >= {"domain:chatgpt.com", "domain:openai.com"}
    accounted = (
        len(report["catalogued"]) + len(report["conflicts"]) + report["duplicates"]
        + sum(x["entries"] for x in report["services"])
    )  # fmt: skip
    assert accounted == entries  # every entry imported, skipped or reported
    # what the import leaves is caught by no ordinary domain of the negative list
    r = run("catalog", "coverage", "--json", "--policy", str(policy), "--format", "v2fly",
            "--negative", str(negatives), str(data / "category-ai-!cn"))  # fmt: skip
    coverage = json.loads(r.stdout)
    assert coverage["negatives"][0]["false_positives"] == []
    missing = {m["entry"] for m in coverage["lists"][0]["missing"]}
    assert missing <= set(conflicts), missing - set(conflicts)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_proxy_blocks_an_imported_host(tmp_path):
    from proxyharness import Proxy, Upstream, curl

    from proxy import ca

    directory = tmp_path / "policy"
    directory.mkdir()
    (directory / "policy.yaml").write_text(POLICY + textwrap.dedent("""
        network:
          clients: [127.0.0.0/8, "::1/128"]
          deny_destinations: [169.254.0.0/16, "fe80::/10"]
        """))  # fmt: skip
    listed = write(tmp_path / "ai.txt", "# Imported AI\nimported-ai.example\n")
    do_import(directory, "plain", listed)
    ca.init(tmp_path / "ca")
    upstream = Upstream(host="127.0.0.2")
    proxy = Proxy(directory, tmp_path / "ca")
    try:
        r = curl("-i", "--proxy", proxy.url, "http://imported-ai.example/v1/chat")
        head = r.stdout.partition("\r\n\r\n")[0]
        assert head.startswith("HTTP/1.1 403"), r.stdout
        assert "x-aiwarden-rule: block-chat" in head.lower()
        control = curl("--proxy", proxy.url, f"http://127.0.0.2:{upstream.port}/")
        assert control.stdout == "hello from upstream\n", control.stderr
        record = proxy.wait_for(lambda e: e.get("event") == "block")
        assert record["service"] == "import-ai-txt-imported-ai"
    finally:
        assert proxy.stop() == 0
        upstream.close()
