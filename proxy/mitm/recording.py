"""Recording: the metrics, the audit line and the log line for each verdict.

One place writes what the SOC sees, so every addon records a decision the same way: counted
in Prometheus, one audit line per block, redact or monitor decision, one log event. Never
headers, bodies, query strings, credentials or what was redacted (only its types).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import ctx, http

from proxy.decide.verdict import Action, Decision, Mode, Stage
from proxy.mitm.state import Clients
from proxy.observe.audit import AuditLog, coaching_fields
from proxy.observe.logs import event
from proxy.observe.metrics import NONE, Metrics
from proxy.options import declare
from proxy.policy.model import UNLISTED_RULE_ID

logger = logging.getLogger("aiwarden")


class Recorder:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.metrics = Metrics()
        self.audit: AuditLog | None = None
        # called on shutdown before the audit log closes (discovery writes its last window)
        self.before_close: list[Callable[[], None]] = []

    def load(self, loader) -> None:
        declare(loader, "aiwarden_audit_log")

    def configure(self, updated: set[str]) -> None:
        if "aiwarden_audit_log" in updated:
            if self.audit is not None:
                self.audit.close()
            target = ctx.options.aiwarden_audit_log
            metrics = self.metrics
            self.audit = (
                AuditLog(target, metrics.audit_errors.inc, metrics.audit_ok.set) if target else None
            )

    def done(self) -> None:
        for call in self.before_close:
            try:
                call()
            except Exception:
                logger.exception("shutdown step failed")
        if self.audit is not None:
            self.audit.close()

    def reopen(self) -> None:
        """SIGHUP: start a new audit log file (logrotate moved the old one)."""
        if self.audit is not None:
            self.audit.reopen()
            event("audit_log_reopened")

    # -- what is counted ---------------------------------------------------------------------

    def decided(self, decision: Decision) -> None:
        """A decision made (every stage, every action): aiwarden_requests_total."""
        self.metrics.requests(
            decision.action, decision.service or NONE, decision.category or NONE, decision.stage
        ).inc()

    def connection(self, mode: Mode) -> None:
        self.metrics.connections(mode).inc()

    def bad_request(self, reason: str, **fields) -> None:
        """Bytes or a request refused before any decision: counted and logged."""
        self.metrics.bad_requests(reason).inc()
        event("bad_request", reason=reason, **fields)

    def coaching(
        self,
        outcome: str,
        client: str,
        user: str | None,
        target: str,
        rule: str,
        reference: str | None = None,
        justification: str | None = None,
        until: float | None = None,
    ) -> None:
        """A coaching event (coaching.py): counted, and one audit line with `event:
        coaching`. The justification goes to the audit log only, never to logs or metrics."""
        self.metrics.coaching(outcome, target).inc()
        fields = coaching_fields(outcome, client, user, target, rule, reference, until)
        if self.audit is not None:
            self.audit.write_event({"event": "coaching", **fields, "justification": justification})
        event(f"coaching_{outcome}", **fields)

    # -- the audit and log lines of a decision -------------------------------------------------

    def record(
        self,
        flow: http.HTTPFlow,
        decision: Decision,
        host: str,
        reference: str | None = None,
        redactions: dict[str, int] | None = None,
        note: str | None = None,
    ) -> None:
        """Count a block, redact or monitor decision and write its audit and log lines."""
        service = decision.service or NONE
        if decision.action is Action.BLOCK:
            self.metrics.blocked(service, decision.rule).inc()
            if decision.stage is Stage.CONNECT:
                self.metrics.connections(Mode.REFUSE).inc()
        for detector, count in (redactions or {}).items():
            self.metrics.redactions(detector, service).inc(count)
        user = self.clients.user(flow)
        client = flow.client_conn.peername[0]
        path = flow.request.path.partition("?")[0] if decision.stage is Stage.REQUEST else None
        if decision.rule == UNLISTED_RULE_ID and decision.style is None:
            note = note or decision.reason  # blocked unread: say why (unlisted_ai.unchecked)
        if self.audit is not None:
            self.audit.write({
                "id": reference, "client": client, "user": user,
                "method": flow.request.method, "host": host, "path": path,
                "service": decision.service, "category": decision.category,
                "country": decision.country, "activity": decision.activity, "rule": decision.rule,
                "action": decision.action, "stage": decision.stage, "redactions": redactions,
                "style": decision.style,
            })  # fmt: skip
        event(
            decision.action,
            reference=reference,
            client=client,
            user=user,
            method=flow.request.method,
            host=host,
            path=path,
            service=decision.service,
            activity=decision.activity,
            rule=decision.rule,
            stage=decision.stage,
            style=decision.style,
            category=decision.category if decision.style else None,
            redactions=redactions,
            note=note,
        )
