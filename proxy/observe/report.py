"""`aiwarden report`: who is trying which AI services, from the audit log.

Top services, rules, client networks (/24 for IPv4, /64 for IPv6) and users by attempts, the
trend per day, and coaching: how warnings ended and who proceeded to what and why; as text,
JSON or one self-contained HTML page (inline SVG, no external assets) that a security lead can
forward.
"""

from __future__ import annotations

import datetime
import html
import ipaddress
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

TOP = 10
MAX_PROCEEDED = 200  # proceeds listed in a report, the latest
_SINCE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> datetime.timedelta:
    match = _SINCE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 24h or 7d")
    return datetime.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _network(client: str | None) -> str:
    try:
        ip = ipaddress.ip_address(client or "")
    except ValueError:
        return "unknown"
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def build(
    lines: Iterable[str], since: datetime.timedelta | None, now: datetime.datetime | None = None
) -> dict:
    """The report as plain data (what --json prints)."""
    now = now or datetime.datetime.now(datetime.UTC)
    start = now - since if since else None
    actions, services, rules, networks, users = (
        Counter(),
        Counter(),
        Counter(),
        Counter(),
        Counter(),
    )
    categories: dict[str, str] = {}
    days: dict[str, Counter] = defaultdict(Counter)
    skipped = 0
    coaching = _Coaching()
    for line in lines:
        try:
            record = json.loads(line)
            ts = datetime.datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError, AttributeError):
            skipped += 1
            continue
        if start and ts < start:
            continue
        if record.get("event") == "coaching":
            coaching.add(record)
            continue
        if record.get("event"):  # not a decision: discovery counts (see `aiwarden discover`)
            continue
        action = record.get("action") or "unknown"
        service = record.get("service") or (
            "(unlisted AI endpoint)" if record.get("rule") == "unlisted_ai" else "(no AI service)"
        )
        actions[action] += 1
        services[service] += 1
        categories.setdefault(service, record.get("category") or "")
        rules[record.get("rule") or "unknown"] += 1
        networks[_network(record.get("client"))] += 1
        if record.get("user"):
            users[record["user"]] += 1
        days[ts.date().isoformat()][action] += 1
    return {
        "generated": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "since": start.isoformat(timespec="seconds").replace("+00:00", "Z") if start else None,
        "attempts": sum(actions.values()),
        "by_action": dict(actions.most_common()),
        "top_services": [
            {"service": s, "category": categories[s], "attempts": n}
            for s, n in services.most_common(TOP)
        ],
        "top_rules": [{"rule": r, "attempts": n} for r, n in rules.most_common(TOP)],
        "top_networks": [{"network": k, "attempts": n} for k, n in networks.most_common(TOP)],
        "top_users": [{"user": u, "attempts": n} for u, n in users.most_common(TOP)],
        "per_day": [
            {"day": d, "attempts": sum(c.values()), **dict(c)} for d, c in sorted(days.items())
        ],
        "coaching": coaching.summary(),
        "unreadable_lines": skipped,
    }


class _Coaching:
    """Warnings and what users did with them: counts per outcome, and who proceeded to
    which service, when and why (their justification, as written)."""

    def __init__(self) -> None:
        self.outcomes: Counter = Counter()
        self.proceeded: list[dict] = []

    def add(self, record: dict) -> None:
        outcome = record.get("outcome") or "unknown"
        self.outcomes[outcome] += 1
        if outcome == "proceeded":
            self.proceeded.append({
                "ts": record.get("ts"), "who": record.get("user") or record.get("client"),
                "service": record.get("service"), "rule": record.get("rule"),
                "justification": record.get("justification") or "",
            })  # fmt: skip

    def summary(self) -> dict:
        return {
            "by_outcome": dict(self.outcomes.most_common()),
            "proceeded": self.proceeded[-MAX_PROCEEDED:][::-1],  # the latest first
        }


def read_lines(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        yield from f


def render_text(report: dict) -> str:
    out = [
        f"aiwarden report, {report['generated']}"
        + (f", since {report['since']}" if report["since"] else ""),
        f"attempts: {report['attempts']}  "
        + "  ".join(f"{a}: {n}" for a, n in report["by_action"].items()),
        "",
    ]
    for title, rows, key in (
        ("Top services", report["top_services"], "service"),
        ("Top rules", report["top_rules"], "rule"),
        ("Top client networks", report["top_networks"], "network"),
        ("Top users", report["top_users"], "user"),
    ):
        out.append(title)
        for row in rows:
            out.append(f"  {row['attempts']:>8}  {row[key]}")
        if not rows:
            out.append("  (none)")
        out.append("")
    out.append("Per day")
    for row in report["per_day"]:
        out.append(f"  {row['day']}  {row['attempts']:>8}")
    coaching = report["coaching"]
    if coaching["by_outcome"]:
        out += ["", "Coaching (warn rules): "
                + "  ".join(f"{k}: {n}" for k, n in coaching["by_outcome"].items())]  # fmt: skip
        out.append("Who proceeded, to what, and why (latest first)")
        for row in coaching["proceeded"]:
            why = row["justification"] or "(no justification)"
            out.append(f"  {row['ts']}  {row['who']}  {row['service']}  {why}")
    return "\n".join(out) + "\n"


def _bars(rows: list[dict], key: str, chart_id: str) -> str:
    if not rows:
        return "<p>None.</p>"
    top = max(r["attempts"] for r in rows)
    height = 22 * len(rows)
    parts = [
        f'<svg id="{chart_id}" role="img" viewBox="0 0 640 {height}" width="640" height="{height}">'
    ]
    for i, row in enumerate(rows):
        width = max(1, round(380 * row["attempts"] / top))  # room for the number after it
        y = i * 22
        parts.append(
            f'<text x="0" y="{y + 15}" class="label">{html.escape(str(row[key]))}</text>'
            f'<rect x="200" y="{y + 3}" width="{width}" height="16" class="bar"/>'
            f'<text x="{205 + width}" y="{y + 15}" class="value" '
            f'data-count="{row["attempts"]}">{row["attempts"]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict) -> str:
    e = html.escape
    actions = " · ".join(f"{e(a)}: <b>{n}</b>" for a, n in report["by_action"].items())
    days = [{"day": r["day"], "attempts": r["attempts"]} for r in report["per_day"]]
    sections = "".join(
        f"<section><h2>{title}</h2>{_bars(rows, key, cid)}</section>"
        for title, rows, key, cid in (
            ("Top AI services", report["top_services"], "service", "services"),
            ("Top rules", report["top_rules"], "rule", "rules"),
            ("Top client networks", report["top_networks"], "network", "networks"),
            ("Top users", report["top_users"], "user", "users"),
            ("Attempts per day", days, "day", "days"),
        ))  # fmt: skip
    coaching = report["coaching"]
    if coaching["by_outcome"]:
        outcomes = " · ".join(f"{e(k)}: <b>{n}</b>" for k, n in coaching["by_outcome"].items())
        rows = "".join(
            f"<tr><td>{e(r['ts'] or '')}</td><td>{e(r['who'] or '')}</td>"
            f"<td>{e(r['service'] or '')}</td><td>{e(r['justification'])}</td></tr>"
            for r in coaching["proceeded"]
        )
        sections += (
            f'<section id="coaching"><h2>Coaching: who proceeded past a warning, and why</h2>'
            f"<p>{outcomes}</p><table><tr><th>when</th><th>who</th><th>service</th>"
            f"<th>justification</th></tr>{rows}</table></section>"
        )
    since = f" since {e(report['since'])}" if report["since"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aiwarden report</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;color:#1d2330;margin:2rem auto;max-width:46rem}}
h1{{font-size:1.5rem}} h2{{font-size:1.1rem;margin-top:2rem}} .label{{font-size:12px}}
.value{{font-size:12px;fill:#4a5163}} .bar{{fill:#1f5fbf}} .total{{font-size:1.2rem}}</style>
</head><body><h1>Use of external AI services</h1>
<p>Generated {e(report["generated"])}{since} from the aiwarden audit log.</p>
<p class="total">Attempts: <b id="attempts">{report["attempts"]}</b> ({actions})</p>
{sections}
<script type="application/json" id="data">{json.dumps(report).replace("</", "<\\/")}</script>
</body></html>
"""
