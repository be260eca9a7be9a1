"""Builds deploy/grafana/aiwarden.json, the Grafana dashboard, from the panel list below.

    python deploy/grafana/dashboard.py          # rewrite aiwarden.json
    python deploy/grafana/dashboard.py --check  # exit 1 if aiwarden.json is out of date

The tests evaluate every expression here against a real Prometheus scraping aiwarden, and
check that each metric it names is one aiwarden exports, so the dashboard cannot drift
from the metrics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("aiwarden.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"

# (title, unit, panel type, [(expression, legend)], width)
PANELS: list[tuple[str, str, str, list[tuple[str, str]], int]] = [
    ("AI attempts by service", "reqps", "timeseries", [
        (f'sum by (service) (rate(aiwarden_requests_total{{stage="request",service!="none"}}'
         f"[{RATE}]))", "{{service}}")], 12),
    ("AI attempts by category", "reqps", "timeseries", [
        (f'sum by (category) (rate(aiwarden_requests_total{{stage="request",category!="none"}}'
         f"[{RATE}]))", "{{category}}")], 12),
    ("Blocked by rule", "short", "bargauge", [
        ("topk(10, sum by (rule) (increase(aiwarden_blocked_total[$__range])))", "{{rule}}")],
     8),
    ("Actions", "reqps", "timeseries", [
        (f'sum by (action) (rate(aiwarden_requests_total{{stage="request"}}[{RATE}]))',
         "{{action}}")], 8),
    ("Redactions by detector", "short", "timeseries", [
        (f"sum by (detector) (increase(aiwarden_redactions_total[{RATE}]))", "{{detector}}")],
     8),
    ("Connections: tunnel, intercept, refuse", "connps", "timeseries", [
        (f"sum by (mode) (rate(aiwarden_connections_total[{RATE}]))", "{{mode}}")], 8),
    ("Decision latency", "s", "timeseries", [
        (f"histogram_quantile({q}, sum by (le) (rate(aiwarden_decision_seconds_bucket[{RATE}])))",
         f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)], 8),
    ("Open connections", "short", "timeseries", [
        ("sum(aiwarden_open_connections)", "open"),
        (f"sum(rate(aiwarden_clients_refused_total[{RATE}]))", "refused clients/s")], 8),
    ("Policy reloads", "short", "timeseries", [
        ("sum by (result) (increase(aiwarden_policy_reloads_total[$__range]))", "{{result}}"),
        ("time() - max(aiwarden_policy_last_reload_timestamp_seconds)", "seconds since load")],
     8),
    ("Errors", "short", "timeseries", [
        (f"sum by (kind) (rate(aiwarden_upstream_errors_total[{RATE}]))", "upstream {{kind}}"),
        (f"sum by (kind) (rate(aiwarden_decision_errors_total[{RATE}]))", "decision {{kind}}"),
        (f"sum(rate(aiwarden_audit_write_errors_total[{RATE}]))", "audit write")], 8),
    ("Proxies up", "short", "stat", [
        ('sum(up{job="aiwarden"})', "up"),
        ("sum(aiwarden_workers_serving)", "workers serving")], 8),
    ("Unlisted AI endpoints: LLM API calls to hosts nothing names", "short", "timeseries", [
        (f"sum by (style, action) (increase(aiwarden_unlisted_ai_requests_total[{RATE}]))",
         "{{style}} {{action}}"),
        (f"sum by (reason) (increase(aiwarden_unlisted_ai_unchecked_total[{RATE}]))",
         "unchecked: {{reason}}")], 24),
]  # fmt: skip


def expressions() -> list[str]:
    return [expr for _, _, _, targets, _ in PANELS for expr, _ in targets]


def build() -> dict:
    panels, x, y = [], 0, 0
    for i, (title, unit, kind, targets, width) in enumerate(PANELS, 1):
        if x + width > 24:
            x, y = 0, y + 8
        panels.append({
            "id": i, "type": kind, "title": title, "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": width, "h": 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [{"refId": chr(65 + j), "datasource": DS, "expr": expr,
                         "legendFormat": legend} for j, (expr, legend) in enumerate(targets)],
        })  # fmt: skip
        x += width
    return {
        "uid": "aiwarden", "title": "aiwarden: AI egress", "tags": ["aiwarden"],
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
        "panels": panels,
    }  # fmt: skip


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == render() else 1)
    OUT.write_text(render())
