"""aiwarden's addons in mitmproxy's own test context (taddons), each hook called as mitmproxy
calls it: on every addon that has it, in the pipeline's order (proxy/mitm/pipeline.py)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

from mitmproxy.test import taddons

from proxy.decide.engine import Engine
from proxy.mitm.pipeline import build
from proxy.observe.metrics import Metrics


class Hooks:
    def __init__(self, policy: Path | str) -> None:
        self.pipeline = build(admin=False)
        self.context = taddons.context(*self.pipeline.addons)
        self.context.configure(self.pipeline.policy, aiwarden_policy=str(policy))

    @property
    def engine(self) -> Engine:
        return self.pipeline.gate.engine

    @property
    def metrics(self) -> Metrics:
        return self.pipeline.recorder.metrics

    def call(self, hook: str, *args):
        """The hook on each addon, in order; the first awaitable one returns, or None (a
        test that gets an awaitable where it expected none fails on it)."""
        results = [
            getattr(addon, hook)(*args)
            for addon in self.pipeline.addons
            if callable(getattr(addon, hook, None))
        ]
        return next((r for r in results if r is not None), None)

    def client_connected(self, client):
        return self.call("client_connected", client)

    def http_connect(self, flow):
        return self.call("http_connect", flow)

    def tls_clienthello(self, data):
        return self.call("tls_clienthello", data)

    def requestheaders(self, flow):
        return self.call("requestheaders", flow)

    def request(self, flow):
        return self.call("request", flow)


def settled(result: object) -> None:
    """Run a hook's awaitable to its end. A hook may hand its work to a thread whenever it
    is slow on the event loop (redaction on a loaded machine, say), so a test about *what*
    the hook does, not *where*, waits for it before looking."""
    if inspect.isawaitable(result):

        async def finish() -> None:
            await result

        asyncio.run(finish())
