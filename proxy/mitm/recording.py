"""Recording: the metrics, the audit line and the log line for each verdict. The audit line
goes to the file, to syslog, or both (`AuditTrail`, options `aiwarden_audit_*`).

One place writes what the SOC sees, so every addon records a decision the same way: counted
in Prometheus, one audit line per block, redact or monitor decision, one log event. Never
headers, bodies, query strings, credentials or what was redacted (only its types).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import ctx, exceptions, http

from proxy.decide.verdict import Action, Decision, Mode, Stage
from proxy.mitm.state import Clients, state_of
from proxy.observe.audit import (
    AuditLog,
    AuditTrail,
    coaching_fields,
    decision_record,
    new_reference,
)
from proxy.observe.logs import event
from proxy.observe.metrics import NONE, Metrics
from proxy.observe.syslog import SyslogSender
from proxy.options import declare
from proxy.policy.model import UNLISTED_RULE_ID

logger = logging.getLogger("aiwarden")
AUDIT_OPTIONS = (
    "aiwarden_audit_log", "aiwarden_audit_syslog", "aiwarden_audit_syslog_ca",
    "aiwarden_audit_syslog_facility",
)  # fmt: skip


class Recorder:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.metrics = Metrics()
        self.audit: AuditTrail | None = None  # the file, syslog or both; None: neither
        # called on shutdown before the audit log closes (discovery writes its last window)
        self.before_close: list[Callable[[], None]] = []

    def load(self, loader) -> None:
        declare(loader, *AUDIT_OPTIONS)

    def configure(self, updated: set[str]) -> None:
        if not updated & set(AUDIT_OPTIONS):
            return
        o, metrics = ctx.options, self.metrics
        syslog = None
        if o.aiwarden_audit_syslog:
            try:
                syslog = SyslogSender(
                    o.aiwarden_audit_syslog, o.aiwarden_audit_syslog_ca or None,
                    o.aiwarden_audit_syslog_facility,
                    lambda reason: metrics.audit_syslog_dropped(reason).inc(),
                    metrics.audit_syslog_ok.set,
                )  # fmt: skip
            except (ValueError, OSError) as e:  # a URL, facility or CA file that is wrong
                raise exceptions.OptionsError(f"aiwarden_audit_syslog: {e}") from None
        if self.audit is not None:
            self.audit.close()
        metrics.audit_ok.set(1)
        metrics.audit_syslog_ok.set(1)
        target = o.aiwarden_audit_log
        file = AuditLog(target, metrics.audit_errors.inc, metrics.audit_ok.set) if target else None
        self.audit = AuditTrail(file, syslog) if file or syslog else None

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
        if self.audit is not None and self.audit.file is not None:
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

    def tunnel_audited(self, decision: Decision, client: str, user: str | None, host: str) -> None:
        """A tunnel an allow rule with `audit: true` relayed: one audit line (stage connect),
        as the request lines of that rule's intercepted traffic."""
        reference = new_reference()
        if self.audit is not None:
            self.audit.write(
                decision_record(decision, reference, client, user, "CONNECT", host, None)
            )
        event("allow", reference=reference, client=client, user=user, host=host,
              service=decision.service, rule=decision.rule, stage=Stage.CONNECT)  # fmt: skip

    def upstream_error(
        self,
        kind: str,
        reference: str,
        client: str,
        user: str | None,
        host: str,
        tunnel: bool,
        status: int | None = None,
    ) -> None:
        """A server that could not be reached or failed: counted by kind, one log line and
        one audit line (`event: upstream_error`), for tunnels as for intercepted requests."""
        self.metrics.upstream_errors(kind).inc()
        fields = {
            "id": reference, "client": client, "user": user, "host": host, "kind": kind,
            "tunnel": tunnel, "status": status,
        }  # fmt: skip
        if self.audit is not None:
            self.audit.write_event({"event": "upstream_error", **fields})
        event(
            "upstream_error", **{k: v for k, v in fields.items() if k != "id"}, reference=reference
        )

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
        """Count a block, redact or monitor decision and write its audit and log lines.
        Every line has an id: the reference the user saw, or a new one (kept on the flow,
        so that an upstream failure later names the same id)."""
        reference = reference or new_reference()
        state_of(flow).reference = reference
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
            self.audit.write(decision_record(
                decision, reference, client, user, flow.request.method, host, path, redactions
            ))  # fmt: skip
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
