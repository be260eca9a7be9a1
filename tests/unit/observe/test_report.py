"""`aiwarden report` from an audit log: text, JSON, and an HTML page rendered in Chromium."""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter

import pytest
from conftest import aiwarden_in_process
from proxyharness import CHROMIUM, chromium_dom

NOW = datetime.datetime.now(datetime.UTC)


def line(days_ago: float, service, client, rule="block-ai", action="block", user=None):
    ts = (NOW - datetime.timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return json.dumps(
        {
            "ts": ts,
            "id": "x",
            "client": client,
            "user": user,
            "method": "POST",
            "host": "h",
            "path": "/p",
            "service": service,
            "category": "chat",
            "activity": None,
            "rule": rule,
            "action": action,
            "stage": "request",
            "redactions": None,
        }
    )


@pytest.fixture
def audit_log(tmp_path):
    lines = (
        [line(0.1, "chatgpt", f"10.1.2.{i}", user="alice" if i < 2 else None) for i in range(5)]
        + [line(1.1, "claude", "10.9.9.9") for _ in range(3)]
        + [line(2.1, "openai-api", "2001:db8::5", rule="watch", action="monitor")]
        + [line(30, "chatgpt", "10.1.2.3")]  # outside --since 7d
        + ["not json", '{"no": "ts"}']
    )
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args):
    return aiwarden_in_process("report", *args)


def test_json_report(audit_log):
    r = run("--audit-log", str(audit_log), "--since", "7d", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["attempts"] == 9
    assert report["by_action"] == {"block": 8, "monitor": 1}
    assert report["top_services"] == [
        {"service": "chatgpt", "category": "chat", "attempts": 5},
        {"service": "claude", "category": "chat", "attempts": 3},
        {"service": "openai-api", "category": "chat", "attempts": 1},
    ]
    assert report["top_rules"] == [
        {"rule": "block-ai", "attempts": 8},
        {"rule": "watch", "attempts": 1},
    ]
    assert report["top_networks"] == [
        {"network": "10.1.2.0/24", "attempts": 5},
        {"network": "10.9.9.0/24", "attempts": 3},
        {"network": "2001:db8::/64", "attempts": 1},
    ]
    assert report["top_users"] == [{"user": "alice", "attempts": 2}]
    expected_days = Counter()
    for days_ago, n in ((0.1, 5), (1.1, 3), (2.1, 1)):
        expected_days[(NOW - datetime.timedelta(days=days_ago)).date().isoformat()] += n
    assert {d["day"]: d["attempts"] for d in report["per_day"]} == dict(expected_days)
    assert report["unreadable_lines"] == 2


def test_without_since_everything_counts(audit_log):
    report = json.loads(run("--audit-log", str(audit_log), "--json").stdout)
    assert report["attempts"] == 10 and report["since"] is None


def test_text_report(audit_log):
    r = run("--audit-log", str(audit_log), "--since", "7d")
    assert r.returncode == 0
    assert "attempts: 9  block: 8  monitor: 1" in r.stdout
    assert "Top services\n         5  chatgpt\n         3  claude\n" in r.stdout
    assert "       5  10.1.2.0/24" in r.stdout


@pytest.mark.parametrize(
    "args, error",
    [
        (["--since", "yesterday"], "'yesterday' is not a duration"),
        (["--audit-log", "/nonexistent/audit.jsonl"], "No such file"),
    ],
)
def test_errors(audit_log, args, error):
    if "--audit-log" not in args:
        args = ["--audit-log", str(audit_log), *args]
    r = run(*args)
    assert r.returncode == 2 and error in r.stderr


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (.ci/run installs Debian's chromium package)",
)
def test_html_report_renders_in_chromium_with_the_json_numbers(audit_log, tmp_path):
    page = tmp_path / "report.html"
    report = json.loads(
        run("--audit-log", str(audit_log), "--since", "7d", "--json", "--html", str(page)).stdout
    )
    assert "http" not in page.read_text().split("<body>", 1)[1].split("<script", 1)[0], (
        "the page must not load anything from elsewhere"
    )
    dom = chromium_dom(page.as_uri(), tmp_path / "profile").stdout
    assert f'<b id="attempts">{report["attempts"]}</b>' in dom
    services = dom.split('id="services"', 1)[1].split("</svg>", 1)[0]
    counts = [int(n) for n in re.findall(r'data-count="(\d+)"', services)]
    assert counts == [s["attempts"] for s in report["top_services"]]
    names = re.findall(r'class="label">([^<]+)<', services)
    assert names == [s["service"] for s in report["top_services"]]


def test_every_bar_leaves_room_for_its_number(tmp_path):
    log = tmp_path / "big.jsonl"
    log.write_text(
        "\n".join([line(0.1, "chatgpt", "10.1.1.1")] * 123 + [line(0.1, "claude", "10.1.1.2")] * 7)
        + "\n"
    )
    page = tmp_path / "report.html"
    run("--audit-log", str(log), "--html", str(page))
    for svg in re.findall(r"<svg[^>]*viewBox=\"0 0 (\d+) \d+\"(.*?)</svg>", page.read_text()):
        width, body = int(svg[0]), svg[1]
        for bar, count in re.findall(r'<rect x="200"[^>]*width="(\d+)".*?data-count="(\d+)"', body):
            assert 205 + int(bar) + 8 * len(count) <= width, (bar, count)


def coaching_line(outcome, service, client, user=None, justification=None):
    ts = NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return json.dumps({"ts": ts, "event": "coaching", "outcome": outcome, "id": "r1",
                       "client": client, "user": user, "service": service, "rule": "coach",
                       "until": None, "justification": justification})  # fmt: skip


def test_the_report_says_who_proceeded_past_a_warning_and_why(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join([
        line(0.1, "chatgpt", "10.1.2.3", rule="coach", action="warn"),
        coaching_line("warned", "chatgpt", "10.1.2.3"),
        coaching_line("proceeded", "chatgpt", "10.1.2.3", justification="QA <script>"),
        coaching_line("warned", "claude", "10.1.2.4", user="bob"),
        coaching_line("cancelled", "claude", "10.1.2.4", user="bob"),
    ]) + "\n")  # fmt: skip
    report = json.loads(run("--audit-log", str(path), "--json").stdout)
    assert report["attempts"] == 1  # coaching events are not attempts
    assert report["coaching"]["by_outcome"] == {"warned": 2, "proceeded": 1, "cancelled": 1}
    assert report["coaching"]["proceeded"] == [
        {"ts": NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "who": "10.1.2.3",
         "service": "chatgpt", "rule": "coach", "justification": "QA <script>"}
    ]  # fmt: skip
    text = run("--audit-log", str(path)).stdout
    assert "Who proceeded" in text and "10.1.2.3  chatgpt  QA <script>" in text
    page = tmp_path / "r.html"
    run("--audit-log", str(path), "--html", str(page))
    assert "QA &lt;script&gt;" in page.read_text() and 'id="coaching"' in page.read_text()
