"""Tenant headers: the vendor-defined header that restricts a service to the company's own
tenant, set on every request to that vendor's documented hosts (policy/tenants.py).

The header is replaced, never appended: whatever the client sent under that name (and its
continuation lines) is removed first, so one value reaches the vendor, ours. A request that
is answered already (blocked) gets nothing. The connection was intercepted for it: the gate
never tunnels a host that gets a tenant header.
"""

from __future__ import annotations

from mitmproxy import http

from proxy.decide.gate import Gate
from proxy.mitm.recording import Recorder
from proxy.mitm.state import STATE, FlowState
from proxy.policy.normalize import BadHost, normalize_host
from proxy.policy.tenants import Tenant


class TenantHeaders:
    def __init__(self, gate: Gate, recorder: Recorder) -> None:
        self.gate = gate
        self.recorder = recorder

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """After enforcement: every name the request claims (target, Host headers, TLS
        server names) is looked up, so a request fronted behind another host still carries
        the header of the vendor it names."""
        state: FlowState | None = flow.metadata.get(STATE)
        if flow.response or flow.error or state is None or state.decision is None:
            return  # answered (blocked), or never decided
        policy = self.gate.policy
        if policy is None or not policy.tenants:
            return
        tenants = {t.control.vendor: t for name in state.names for t in self._tenants_of(name)}
        headers = flow.request.headers
        lowercase = flow.request.is_http2 or flow.request.is_http3  # what HTTP/2 allows
        for tenant in tenants.values():
            for name in tenant.names:
                headers.pop(name, None)  # every line the client sent, in any case
            for name, value in tenant.headers:
                headers[name.lower() if lowercase else name] = value
            self.recorder.metrics.tenant_headers(tenant.control.vendor).inc()

    def _tenants_of(self, name: str) -> tuple[Tenant, ...]:
        try:
            return self.gate.tenants_of(normalize_host(name))
        except BadHost:  # decided by enforcement: on_error
            return ()
