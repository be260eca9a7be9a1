"""A real Prometheus scrapes a running aiwarden: the counts it stores are exactly the traffic
sent, and every dashboard and alert expression evaluates against it."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import ROOT, SHIPPED_CATALOG, local_ai_policy
from proxyharness import Proxy, Upstream, curl, write_policy

from proxy import ca
from proxy.observe.metrics import Metrics

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL),
    reason="Prometheus is not installed (.ci/run installs Debian's prometheus package)",
)
sys.path.insert(0, str(ROOT / "deploy" / "grafana"))
import dashboard  # noqa: E402

RULES = ROOT / "deploy" / "prometheus" / "aiwarden-rules.yml"
POLICY = local_ai_policy(
    sections="""
    redaction_profiles:
      default: {detectors: [pii]}
    """,
    rules="""
    - id: approved
      match: {services: [local-ai]}
      action: redact
    - id: block-ai
      match: {categories: [chat, api]}
      action: block
    """,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("prom")
    ca.init(work / "ca")
    upstream = Upstream()
    # two workers: Prometheus scrapes the supervisor's sum of them
    proxy = Proxy(
        write_policy(work / "policy", POLICY, SHIPPED_CATALOG), work / "ca", "--workers", "2"
    )
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "aiwarden", "static_configs": [
            {"targets": [proxy.admin]}]}],
    }))  # fmt: skip
    port = free_port()
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and prometheus.poll() is None, "Prometheus did not start"
        time.sleep(0.2)
    yield proxy, upstream, base
    prometheus.terminate()
    prometheus.wait(10)
    proxy.stop()
    upstream.close()


def query(base: str, expr: str) -> dict:
    reply = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert reply["status"] == "success", (expr, reply)
    return reply["data"]


def scalar(base: str, expr: str) -> float | None:
    result = query(base, expr)["result"]
    return float(result[0]["value"][1]) if result else None


def wait_for_value(base: str, expr: str, expected: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (got := scalar(base, expr)) != expected:
        assert time.monotonic() < deadline, f"{expr} = {got}, expected {expected}"
        time.sleep(0.5)


def test_prometheus_stores_exactly_the_counts_sent(stack):
    proxy, upstream, base = stack
    for i in range(5):
        assert (
            curl(
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--proxy",
                proxy.url,
                f"http://chatgpt.com/c/{i}",
            ).stdout
            == "403"
        )
    body = json.dumps(
        {"messages": [{"role": "user", "content": "mail a@corp.example and b@corp.example"}]}
    )
    for _ in range(2):
        curl(
            "--proxy",
            proxy.url,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            f"http://localhost:{upstream.port}/v1/chat",
        )
    wait_for_value(base, 'sum(aiwarden_blocked_total{service="chatgpt",rule="block-ai"})', 5)
    wait_for_value(base, 'sum(aiwarden_redactions_total{detector="email",service="local-ai"})', 4)
    assert scalar(base, 'sum(aiwarden_requests_total{action="redact",stage="request"})') == 2
    assert scalar(base, 'up{job="aiwarden"}') == 1
    assert scalar(base, "count(aiwarden_build_info)") == 1


def test_every_dashboard_and_alert_expression_evaluates(stack):
    _, _, base = stack
    rules = [
        rule["expr"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    ]
    exported = {
        family.split()[2]
        for family in httpx.get(f"http://{stack[0].admin}/metrics").text.splitlines()
        if family.startswith("# TYPE")
    }
    # with --workers, a labelled metric shows up once a worker used it; the families it has
    exported |= {family.name for family in Metrics().registry.collect()}
    exported |= {
        name + suffix
        for name in list(exported)
        for suffix in ("_total", "_bucket", "_count", "_sum", "_info")
    }
    for expr in dashboard.expressions() + rules:
        runnable = expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
        query(base, runnable)  # evaluates without error
        for name in re.findall(r"\baiwarden_[a-z_]+", expr):
            assert name in exported, f"{name} in {expr!r} is not a metric aiwarden exports"


def test_promtool_accepts_the_rules_and_our_metrics(stack):
    proxy, _, _ = stack
    rules = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    text = httpx.get(f"http://{proxy.admin}/metrics").text
    lint = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_dashboard_json_is_generated_from_the_panel_list():
    assert dashboard.OUT.read_text() == dashboard.render()
    board = json.loads(dashboard.OUT.read_text())
    titles = {p["title"] for p in board["panels"]}
    assert {
        "AI attempts by service",
        "AI attempts by category",
        "Blocked by rule",
        "Redactions by detector",
        "Connections: tunnel, intercept, refuse",
        "Decision latency",
        "Policy reloads",
        "Errors",
    } <= titles
    assert all(
        t["datasource"]["uid"] == "${datasource}" for p in board["panels"] for t in p["targets"]
    )


def test_rules_file_path_is_relative_in_the_shipped_scrape_config():
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["aiwarden-rules.yml"]
    assert Path(RULES).exists()
