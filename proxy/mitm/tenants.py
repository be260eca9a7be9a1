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
from proxy.policy.normalize import BadHost, normalize_host


class TenantHeaders:
    def __init__(self, gate: Gate, recorder: Recorder) -> None:
        self.gate = gate
        self.recorder = recorder

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or self.gate.policy is None:
            return
        if not self.gate.policy.tenants:
            return
        try:
            host = normalize_host(flow.request.host)
        except BadHost:
            return  # decided, and answered, by enforcement
        headers = flow.request.headers
        lowercase = flow.request.is_http2 or flow.request.is_http3  # what HTTP/2 allows
        for tenant in self.gate.tenants_of(host):
            control = tenant.control
            for name in (control.header, *control.also_strip):
                headers.pop(name, None)  # every line the client sent, in any case
            headers[control.header.lower() if lowercase else control.header] = tenant.value
            self.recorder.metrics.tenant_headers(control.vendor).inc()
