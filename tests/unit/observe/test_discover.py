"""`aiwarden discover` (proxy/observe/discover.py): the scorer of the domains discovery
counted, its ranking and catalog entries, and reading the discovery lines of rotated and
gzipped audit logs."""

from __future__ import annotations

import gzip
import json

import pytest
from conftest import SHIPPED_CATALOG

from proxy.mitm.discovery import OTHER
from proxy.observe import discover, report
from proxy.policy.loader import load_policy

# -- the scorer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "words"),
    [
        ("some-llm", ["llm"]),
        ("newbot", ["bot"]),
        ("openai", ["ai"]),
        ("gpt4all", ["gpt"]),
        ("my-ai-app", ["ai"]),
        ("mail", []),  # "ai" inside a word is not "ai"
        ("thai", []),
        ("shanghai", []),
        ("mailchimp", []),
        ("chateau", []),
        ("robot", []),
        ("egypt", []),
        ("news", []),
    ],
)
def test_words_are_found_on_label_boundaries(label, words):
    assert [w for w, _, _ in discover.words_in(label)] == words


def seen(domain: str, *hosts: str, **counts) -> discover.Seen:
    s = discover.Seen(domain, hosts=set(hosts or [domain]), lines=1)
    for key, v in counts.items():
        setattr(s, key, v)
    return s


@pytest.fixture(scope="module")
def catalog():
    from conftest import SHIPPED

    return discover.Catalog(load_policy(SHIPPED))


def reasons(candidate) -> dict[str, int]:
    return {r.signal: r.points for r in candidate.reasons}


def test_the_score_and_its_reasons(catalog):
    llm = discover.score(seen("some-llm.ai", "api.some-llm.ai"), catalog)
    assert reasons(llm) == {"name": 3, "tld": 3, "subdomain": 1} and llm.score == 7
    assert llm.category == "api"
    assert [str(r) for r in llm.reasons] == [
        "+3 name: 'llm' in some-llm",
        "+3 tld: .ai",
        "+1 subdomain: api. (api.some-llm.ai)",
    ]
    bot = discover.score(seen("newbot.example", "chat.newbot.example"), catalog)
    assert reasons(bot) == {"name": 1, "subdomain": 1} and bot.has_sign
    news = discover.score(seen("news.example", "www.news.example", clients=12), catalog)
    assert not news.has_sign and reasons(news) == {"traffic": 1}
    # the catalog knows *.openai.com: nothing to discover there
    assert discover.score(seen("openai.com", "newthing.openai.com"), catalog) is None
    lookalike = discover.score(seen("openai-proxy.com", "api.openai-proxy.com"), catalog)
    assert reasons(lookalike) == {"name": 2, "catalog": 2, "subdomain": 1}
    assert "'openai' as in catalogued openai.com" in lookalike.reasons[-1].detail
    same = discover.score(seen("jetbrains.com", "www.jetbrains.com"), catalog)
    assert reasons(same) == {"catalog": 1}  # the vendor's other site: a weak sign
    # a host beside catalogued ones: worth a look, no more (mail.google.com is not AI)
    sibling = discover.score(seen("google.com", "gemini.google.com", "mail.google.com"), catalog)
    assert sibling.hosts == ["mail.google.com"] and reasons(sibling) == {"catalog": 2}
    assert "catalogued" in next(r.detail for r in sibling.reasons if r.signal == "catalog")
    uploads = discover.score(seen("x.example", bytes_up=200_000, bytes_down=100_000), catalog)
    assert reasons(uploads) == {"traffic": 1} and "upload-heavy" in uploads.reasons[0].detail


def test_ranking_and_the_entries_load_as_a_catalog(tmp_path):
    from conftest import SHIPPED

    policy = load_policy(SHIPPED)
    log = discover.Log(
        domains={
            s.domain: s
            for s in (
                seen("news.example", "www.news.example", clients=20, connections=500),
                seen("newbot.example", "chat.newbot.example", clients=1, connections=2),
                seen("some-llm.ai", "api.some-llm.ai", clients=2, connections=3),
                seen("google.com", "gemini.google.com", "mail.google.com"),
                seen("chatgpt.com", "chatgpt.com"),
            )
        }
    )
    result = discover.discover(log, policy)
    order = [c.seen.domain for c in result.candidates]
    assert order == ["some-llm.ai", "newbot.example", "google.com", "news.example"]
    assert [c.score for c in result.candidates] == [7, 2, 2, 1]
    assert result.catalogued == ["chatgpt.com"] and result.without_sign == 1
    text = discover.render_text(result, 25, False, "2026-12-03")
    assert "news.example" not in text.split("services:")[0].split("without any sign")[1]
    entries = text[text.index("services:") :]
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "found.yaml").write_text(entries)
    policy_text = f"version: 1\ncatalog: [cat, {SHIPPED_CATALOG}]\nrules: []\n"
    (tmp_path / "policy.yaml").write_text(policy_text)
    loaded = load_policy(tmp_path / "policy.yaml")
    found = {s.id: s for s in loaded.services if s.file.endswith("found.yaml")}
    assert sorted(found) == ["google", "newbot", "some-llm"]
    assert [h.text for h in found["some-llm"].hosts] == ["some-llm.ai", "*.some-llm.ai"]
    assert [h.text for h in found["google"].hosts] == ["mail.google.com"]  # only what was seen
    assert found["some-llm"].vendor == "TODO" and found["some-llm"].checked == "2026-12-03"
    assert found["some-llm"].source.startswith("aiwarden discover 2026-12-03: 2 clients;")
    data = discover.render_json(result, 2, False, "2026-12-03")
    assert [c["domain"] for c in data["candidates"]] == ["some-llm.ai", "newbot.example"]
    assert data["candidates"][0]["reasons"][0] == {
        "points": 3, "signal": "name", "detail": "'llm' in some-llm"}  # fmt: skip


def test_discover_reads_rotated_and_gzipped_logs_and_sums_windows(tmp_path):
    def line(**fields):
        base = {"ts": "2026-12-03T10:00:00.000Z", "event": "discovery", "hosts_capped": False,
                "connections": 1, "requests": 0, "bytes_up": 10, "bytes_down": 20,
                "clients": 1, "clients_capped": False, "first_seen": "2026-12-03T09:59:00.000Z",
                "last_seen": "2026-12-03T09:59:30.000Z", "sample": 1.0}  # fmt: skip
        return json.dumps({**base, **fields}) + "\n"

    decision = json.dumps({"ts": "2026-12-03T10:00:00.000Z", "action": "block", "host": "x"})
    (tmp_path / "audit.jsonl").write_text(
        decision + "\n" + line(domain="x.ai", hosts=["a.x.ai"], clients=3) + "not json\n"
    )
    with gzip.open(tmp_path / "audit.jsonl.1.gz", "wt") as f:
        f.write(line(domain="x.ai", hosts=["b.x.ai"], first_seen="2026-12-03T08:00:00.000Z"))
        f.write(line(domain=OTHER, hosts=[], connections=7))
        # what the proxy never writes is not printed, into YAML least of all
        f.write(line(domain="evil.ai\n  - id: x", hosts=["a.evil.ai"]))
        f.write(line(domain="x.ai", hosts=["c.x.ai\n  - id: x", "D.X.AI", 7]))
    log = discover.read([tmp_path / "audit.jsonl", tmp_path / "audit.jsonl.1.gz"])
    x = log.domains["x.ai"]
    assert (x.connections, x.bytes_up, x.bytes_down, x.lines) == (3, 30, 60, 3)
    assert x.hosts == {"a.x.ai", "b.x.ai"} and x.clients == 3  # at least 3, in one window
    assert list(log.domains) == ["x.ai"] and log.skipped == 1
    assert x.first_seen == "2026-12-03T08:00:00.000Z" and log.other.connections == 7
    # the report of decisions is not confused by discovery lines
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert report.build(lines, None)["attempts"] == 1
