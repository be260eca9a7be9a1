"""Community AI-domain lists: their parsers, and `aiwarden catalog coverage` against them."""

import json
import subprocess
import textwrap

import pytest
from conftest import DATA, ROOT, SHIPPED, aiwarden_in_process

from proxy.lists.formats import (
    DOMAIN,
    FULL,
    URL,
    Entry,
    ListError,
    guess_format,
    parse,
    read_list,
    render,
)

REFERENCE = ROOT.parent / "shared/reference/lists"

# Issue 16's target: at least 98 % of every public list, each separately, after the drops
# (the catalog reached 100 % of each on 2026-12-03)
FLOORS = {name: 0.98 for name in ("v2fly-!cn", "v2fly-cn", "v2fly-ru", "adguard", "llmblocker")}


def run(*args: str) -> subprocess.CompletedProcess:
    return aiwarden_in_process(*args)


def sample(text: str, fmt: str, name: str = "sample"):
    return parse(textwrap.dedent(text).lstrip("\n"), fmt, name)


# -- parsers ------------------------------------------------------------------------------------


def test_v2fly_entries_labels_and_what_is_left_out():
    parsed = sample(
        """
        # Main domain
        openai.com
        domain:oaistatic.com

        # tracking
        full:o33249.ingest.sentry.io @ads
        regexp:^chatgpt-.+\\.azure\\.com$
        keyword:openai
        include:openai-extra @!cn
        bare.example  # trailing comment
        """,
        "v2fly",
        "openai",
    )
    assert parsed.entries == [
        Entry(DOMAIN, "openai.com", "openai: Main domain"),
        Entry(DOMAIN, "oaistatic.com", "openai: Main domain"),
        Entry(FULL, "o33249.ingest.sentry.io", "openai: tracking @ads"),
        Entry(DOMAIN, "bare.example", "openai: tracking"),
    ]
    assert parsed.skipped == 2
    assert any("regexp:" in n and "left out" in n for n in parsed.notes)
    assert any("keyword:openai" in n for n in parsed.notes)
    assert any("include:openai-extra not resolved" in n for n in parsed.notes)


def test_adguard_takes_domain_rules_and_counts_the_rest():
    parsed = sample(
        """
        [Adblock Plus 2.0]
        ! Title: AI services
        # a comment
        ||chatgpt.com^
        ||Claude.AI^
        @@||allowed.example^
        ||tracker.example^$third-party
        example.org##.banner
        /ads/*
        """,
        "adguard",
    )
    assert [(e.kind, e.value) for e in parsed.entries] == [
        (DOMAIN, "chatgpt.com"),
        (DOMAIN, "claude.ai"),
    ]
    assert parsed.skipped == 4
    assert parsed.notes == ["sample: 4 rules other than ||domain^ left out"]
    assert sample("||x.example^\n", "abp").entries == [Entry(DOMAIN, "x.example")]


def test_hosts_lines_name_exact_hosts():
    parsed = sample(
        """
        # blocklist
        127.0.0.1 localhost
        ::1 localhost
        0.0.0.0 chat.openai.com
        127.0.0.1 claude.ai www.claude.ai  # two on a line
        10.0.0.1 intranet.example
        """,
        "hosts",
    )
    assert parsed.entries == [
        Entry(FULL, "chat.openai.com"),
        Entry(FULL, "claude.ai"),
        Entry(FULL, "www.claude.ai"),
    ]
    assert parsed.skipped == 1  # the line that does not sink a host


def test_plain_one_domain_a_line():
    parsed = sample(
        """
        # AI
        perplexity.ai
        Mistral.AI
        not a domain
        """,
        "plain",
    )
    assert parsed.entries == [Entry(DOMAIN, "perplexity.ai"), Entry(DOMAIN, "mistral.ai")]
    assert parsed.skipped == 1


def test_reference_tsv_kinds_labels_and_lists():
    parsed = sample(
        "# source line\tentry\tlabel\n"
        "anthropic.com\tanthropic\tv2fly-!cn\n"
        "full:copilot-telemetry.githubusercontent.com\tgithub-copilot: Ads @ads\tv2fly-!cn\n"
        "url:www.bing.com/chat\tbing\tother\n",
        "reference",
    )
    assert parsed.entries == [
        Entry(DOMAIN, "anthropic.com", "anthropic", "v2fly-!cn"),
        Entry(
            FULL, "copilot-telemetry.githubusercontent.com", "github-copilot: Ads @ads", "v2fly-!cn"
        ),
        Entry(URL, "www.bing.com/chat", "bing", "other"),
    ]
    assert parsed.entries[2].probes() == ["https://www.bing.com/chat"]
    assert parsed.entries[0].probes() == [
        "https://anthropic.com/",
        "https://www.anthropic.com/",
        "https://api.anthropic.com/",
    ]
    with pytest.raises(ListError, match=r"sample:1: expected entry<TAB>label<TAB>list"):
        parse("two\tcolumns\n", "reference", "sample")


def test_render_in_each_syntax():
    d, f = Entry(DOMAIN, "a.example", "g"), Entry(FULL, "h.a.example", "g")
    assert [render(d, x) for x in ("v2fly", "adguard", "hosts", "plain", "reference")] == [
        "domain:a.example",
        "||a.example^",
        "0.0.0.0 a.example",
        "a.example",
        "a.example\tg",
    ]
    assert render(f, "v2fly") == "full:h.a.example"
    assert render(f, "reference") == "full:h.a.example\tg"


def test_guess_format():
    assert guess_format("# src\na.example\tlabel\tlist\n") == "reference"
    assert guess_format("! title\n||a.example^\n") == "adguard"
    assert guess_format("0.0.0.0 a.example\n") == "hosts"
    assert guess_format("# x\nfull:a.example\nb.example\n") == "v2fly"
    assert guess_format("a.example\n") == "plain"


def test_unreadable_list_and_unknown_format(tmp_path):
    with pytest.raises(ListError, match="cannot read: No such file"):
        read_list(tmp_path / "missing.txt", "plain")
    with pytest.raises(ListError, match="unknown list format 'csv'"):
        read_list(tmp_path / "missing.txt", "csv")


# -- the command --------------------------------------------------------------------------------


def test_coverage_on_small_lists(tmp_path):
    positive = tmp_path / "ai.txt"
    positive.write_text("||chatgpt.com^\n||not-an-ai-service.example^\n/ads/*\n")
    negative = tmp_path / "ordinary.txt"
    negative.write_text("example.org\nchatgpt.com\n")
    r = run("catalog", "coverage", "--policy", str(SHIPPED), "--negative", str(negative),
            str(positive))  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"ai.txt (adguard, {positive}): 1/2 recognised (50.0%)"
    assert lines[1] == "  ||not-an-ai-service.example^"
    assert lines[2] == f"{negative} (negative, plain): 1 of 2 entries matched (false positives)"
    assert lines[3] == "  chatgpt.com  ->  chatgpt  (https://chatgpt.com/)"
    assert lines[4] == "note: ai.txt: 1 rules other than ||domain^ left out"

    r = run("catalog", "--policy", str(SHIPPED), "coverage", "--json", "--format", "adguard",
            str(positive))  # fmt: skip
    report = json.loads(r.stdout)
    assert report["lists"][0]["recognised"] == 1
    assert report["lists"][0]["missing"] == [{"entry": "||not-an-ai-service.example^", "label": ""}]


def test_coverage_operator_mistakes_are_one_line(tmp_path):
    r = run("catalog", "coverage", "--policy", str(SHIPPED), str(tmp_path / "nope.txt"))
    assert r.returncode == 2
    missing = tmp_path / "nope.txt"
    assert r.stderr.strip().splitlines() == [
        f"aiwarden catalog coverage: {missing}: cannot read: No such file or directory"
    ]
    r = run("catalog", "coverage", "--format", "csv", str(tmp_path / "nope.txt"))
    assert r.returncode == 2 and "invalid choice: 'csv'" in r.stderr
    assert "Traceback" not in r.stderr


def test_plain_catalog_command_is_unchanged():
    r = run("catalog", "--policy", str(SHIPPED))
    assert r.returncode == 0 and r.stdout.splitlines()[-1].endswith(" services")


@pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference lists not found at {REFERENCE}")
def test_shipped_catalog_against_the_reference_lists():
    r = run(
        "catalog", "coverage", "--json", "--policy", str(SHIPPED),
        "--negative", str(REFERENCE / "negatives-public.tsv"),
        *(str(REFERENCE / f) for f in ("v2fly-ai.tsv", "adguard-ai.tsv", "llmblocker.tsv")),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    shares = {x["list"]: x["share"] for x in report["lists"]}
    print("coverage per list:", shares)
    assert set(shares) == set(FLOORS)
    below = {name: share for name, share in shares.items() if share < FLOORS[name]}
    assert not below, f"coverage fell below the floor: {below} (floors {FLOORS})"
    assert sum(x["dropped"] for x in report["lists"]) == 16  # every entry of drops-public.tsv
    [negatives] = report["negatives"]
    assert negatives["entries"] > 3000
    assert negatives["false_positives"] == []


def test_popular_sites_are_not_caught():
    """The catalog claims whole domains for a thousand products; none of these is one of them
    (tests/data/popular-non-ai.txt: top sites, SaaS with AI features, regional portals, CDNs)."""
    popular = DATA / "popular-non-ai.txt"
    r = run("catalog", "coverage", "--json", "--policy", str(SHIPPED), "--negative", str(popular),
            "--format", "plain", str(popular))  # fmt: skip
    assert r.returncode == 0, r.stderr
    [negatives] = json.loads(r.stdout)["negatives"]
    assert negatives["entries"] > 400
    assert negatives["false_positives"] == []
