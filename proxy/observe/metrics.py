"""Prometheus metrics, served at the admin listener's /metrics.

Labels only ever take bounded values: service ids, categories, actions, rule ids, stages,
detector ids, modes, error kinds and LLM API styles; never client addresses, users, hosts,
paths or text.
Label children are looked up once and kept, so the hot path is a dict lookup and an add.

With `--workers N` every worker process writes its values to files in the directory named by
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, chosen when the library is
imported), and the supervisor's /metrics sums them. That mode has no Info metric, so the two
info metrics are gauges fixed at 1, and each gauge says how its workers' values combine.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from proxy import __version__

NONE = "none"  # the label value for "no service" and the like
DECISION_BUCKETS = (2e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3, 2.5e-2)


class _Children:
    """`metric.labels(...)` remembered per label tuple."""

    def __init__(self, metric: MetricWrapperBase) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], object] = {}

    def __call__(self, *labels: str):
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = self.metric.labels(*labels)
        return child


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=r)

        self.requests = _Children(
            counter(
                "aiwarden_requests",
                "Decisions made, by action, service, category and stage (connect: "
                "CONNECT and TLS; request: HTTP requests).",
                ("action", "service", "category", "stage"),
            )
        )
        self.blocked = _Children(
            counter(
                "aiwarden_blocked",
                "Blocked requests and refused CONNECTs, each counted once.",
                ("service", "rule"),
            )
        )
        self.redactions = _Children(
            counter(
                "aiwarden_redactions",
                "Values redacted from prompts, by detector and service.",
                ("detector", "service"),
            )
        )
        self.unlisted_ai = _Children(
            counter(
                "aiwarden_unlisted_ai_requests",
                "Requests to hosts no catalogued service or rule names whose body has the "
                "shape of an LLM API call, by style and action (block or monitor).",
                ("style", "action"),
            )
        )
        self.unlisted_ai_unchecked = _Children(
            counter(
                "aiwarden_unlisted_ai_unchecked",
                "Request bodies the unlisted-AI check could not read, by reason (too_large, "
                "no_length, encoding); passed or blocked as unlisted_ai.unchecked says.",
                ("reason",),
            )
        )
        self.tenant_headers = _Children(
            counter(
                "aiwarden_tenant_headers",
                "Requests given a vendor's tenant-restriction header (policy tenants:), by vendor.",
                ("vendor",),
            )
        )
        self.coaching = _Children(
            counter(
                "aiwarden_coaching",
                "Coaching (rules with action: warn), by outcome: warned (a ticket issued), "
                "proceeded, cancelled, timed_out (a ticket nobody followed), expired and "
                "revoked (grants); and by service.",
                ("outcome", "service"),
            )
        )
        self.restores = _Children(
            counter(
                "aiwarden_restore",
                "Answers to requests redacted with restore: true, by format (json, text, sse, "
                "ndjson, eventstream, other) and outcome: restored (originals put back), "
                "unchanged (no placeholder in it), skipped (not read: too large, an unknown "
                "encoding or type), failed (passed on with placeholders after an error).",
                ("format", "outcome"),
            )
        )
        self.connections = _Children(
            counter(
                "aiwarden_connections",
                "TLS connections by handling: tunnel (relayed undecrypted), intercept or refuse.",
                ("mode",),
            )
        )
        self.open_connections = Gauge(
            "aiwarden_open_connections",
            "Client connections open.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.clients_refused = counter(
            "aiwarden_clients_refused",
            "Connections refused because the client address is not in network.clients.",
        )
        self.decision_seconds = _Children(
            Histogram(
                "aiwarden_decision_seconds",
                "Time spent deciding, by stage.",
                ("stage",),
                buckets=DECISION_BUCKETS,
                registry=r,
            )
        )
        self.upstream_errors = _Children(
            counter(
                "aiwarden_upstream_errors",
                "Flows that ended in an error talking upstream, by kind.",
                ("kind",),
            )
        )
        self.decision_errors = _Children(
            counter(
                "aiwarden_decision_errors",
                "Decisions that failed and fell to on_error, by stage and error type.",
                ("stage", "kind"),
            )
        )
        self.bad_requests = _Children(
            counter(
                "aiwarden_bad_requests",
                "Requests refused before any decision, by reason "
                "(header_too_large, header_timeout, proxy_auth).",
                ("reason",),
            )
        )
        self.directory_lookups = _Children(
            counter(
                "aiwarden_directory_lookups",
                "Users' directory groups a decision asked for, by where the answer came from "
                "(cache, directory, not_found, stale: the directory failed and an older answer "
                "served, on_error: no answer could).",
                ("outcome",),
            )
        )
        self.directory_queries = _Children(
            counter(
                "aiwarden_directory_queries",
                "Queries of the directory (LDAP) for a user's groups, by result "
                "(ok, not_found, failed).",
                ("result",),
            )
        )
        self.kerberos_failures = _Children(
            counter(
                "aiwarden_kerberos_failures",
                "Kerberos (Negotiate) proxy authentications refused with a 407, by reason "
                "(no_token, bad_token, ntlm, wrong_principal, wrong_key, clock_skew, expired, "
                "replay, error).",
                ("reason",),
            )
        )
        self.audit_errors = counter(
            "aiwarden_audit_write_errors", "Audit log lines that could not be written."
        )
        self.audit_ok = Gauge(
            "aiwarden_audit_log_ok",
            "1 while audit lines are written, 0 while writing fails (the proxy keeps "
            "deciding; /readyz says not ready).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.audit_ok.set(1)
        self.audit_syslog_dropped = _Children(
            counter(
                "aiwarden_audit_syslog_dropped",
                "Audit records not sent to syslog, by reason: queue_full (the server too slow "
                "or away too long), send_error.",
                ("reason",),
            )
        )
        self.audit_syslog_ok = Gauge(
            "aiwarden_audit_syslog_ok",
            "1 while audit records reach syslog (or none is set), 0 while sending fails (the "
            "proxy keeps deciding and stays ready; /readyz says so).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.audit_syslog_ok.set(1)
        self.discovery_domains = Gauge(
            "aiwarden_discovery_domains",
            "Domains counted in the current discovery window (summed over workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.discovery_overflow = counter(
            "aiwarden_discovery_overflow",
            "Connections and requests counted under '(other)' because the discovery window "
            "already held discovery.max_domains domains.",
        )
        self.policy_reloads = _Children(
            counter(
                "aiwarden_policy_reloads",
                "Policy loads, by result (success or error).",
                ("result",),
            )
        )
        self.policy_last_reload = Gauge(
            "aiwarden_policy_last_reload_timestamp_seconds",
            "When the policy in force was loaded (Unix time).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.policy_info = Gauge(
            "aiwarden_policy_info",
            "The policy in force (1), by digest; during a reload both digests can be 1.",
            ("digest", "files", "rules", "services"),
            registry=r,
            multiprocess_mode="livemax",
        )
        self._policy_labels: tuple[str, ...] | None = None
        Gauge(
            "aiwarden_build_info",
            "This aiwarden (1).",
            ("version", "python", "mitmproxy"),
            registry=r,
            multiprocess_mode="livemax",
        ).labels(__version__, platform.python_version(), _mitmproxy_version()).set(1)

    def policy_loaded(self, digest: str, files: int, rules: int, services: int) -> None:
        self.policy_reloads("success").inc()
        self.policy_last_reload.set(time.time())
        labels = (digest[:12], str(files), str(rules), str(services))
        if self._policy_labels not in (None, labels):
            # 0 first: in multiprocess mode the file keeps the last value after remove()
            self.policy_info.labels(*self._policy_labels).set(0)
            self.policy_info.remove(*self._policy_labels)
        self.policy_info.labels(*labels).set(1)
        self._policy_labels = labels

    def timed(self, stage: str, decide: Callable, *args):
        """decide(*args), its duration observed in aiwarden_decision_seconds{stage}."""
        start = time.perf_counter()
        try:
            return decide(*args)
        finally:
            self.decision_seconds(stage).observe(time.perf_counter() - start)


def _mitmproxy_version() -> str:
    try:
        from mitmproxy.version import VERSION
    except ImportError:  # pragma: no cover
        return "unknown"
    return VERSION
