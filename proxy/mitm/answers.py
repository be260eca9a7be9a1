"""Answering a flow the proxy stops: the block page or error in the client's format, sent
without reading the body, and recorded; and the policy's on_error when deciding fails.

Every addon that stops a flow does it through these, so a block looks and is recorded the
same wherever it is decided.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from mitmproxy import http

from proxy.decide import llm_shape
from proxy.decide.gate import Gate
from proxy.decide.verdict import Action, Decision, Stage
from proxy.mitm import compat
from proxy.mitm.recording import Recorder
from proxy.mitm.responses import Block, block_response, refuse_response
from proxy.mitm.state import state_of
from proxy.observe.audit import new_reference

logger = logging.getLogger("aiwarden")
T = TypeVar("T")

SINK = ("aiwarden-blocked.invalid", 9)  # where a blocked request's body would go: nowhere
OFFLOAD_BYTES = 64 * 1024  # bodies larger than this are worked on in a thread, off the loop


class Answers:
    def __init__(self, gate: Gate, recorder: Recorder) -> None:
        self.gate = gate
        self.recorder = recorder

    def guarded(
        self, flow: http.HTTPFlow, stage: Stage, decide: Callable[[http.HTTPFlow], object]
    ) -> Awaitable[None] | None:
        """Run a decision; an exception applies on_error instead of mitmproxy's default of
        letting the flow go on."""
        if flow.response or flow.error:  # answered already, e.g. proxyauth's 407
            if flow.response and flow.response.status_code == 407:
                self.recorder.metrics.bad_requests("proxy_auth").inc()
            return None
        try:
            return decide(flow)
        except Exception as e:
            self.fail(flow, stage, e)
            return None

    def block(
        self,
        flow: http.HTTPFlow,
        decision: Decision,
        host: str,
        refuse: bool = False,
        status: int = 403,
    ) -> None:
        """Answer with the block page (or the refusal of a CONNECT) and record it."""
        api_format = llm_shape.api_format(decision.style)  # an unlisted AI endpoint's API
        block = Block(decision, new_reference(), self.gate.service(decision), host, api_format)
        if refuse:
            flow.request.headers.pop("expect", None)
            flow.response = refuse_response(block)
        else:
            self.respond(flow, block_response(flow.request, block, status))
        self.recorder.record(flow, decision, host, block.reference)

    def respond(self, flow: http.HTTPFlow, answer: http.Response) -> None:
        """Answer a request the proxy stops, without reading a body it has not read yet."""
        # no "100 Continue": a client that waits for it sends no body we would only drop
        flow.request.headers.pop("expect", None)
        if flow.request.raw_content is None and may_have_body(flow.request):
            self._block_before_body(flow, answer)
        else:
            flow.response = answer

    def block_instead(
        self, flow: http.HTTPFlow, decision: Decision, host: str, message: str, status: int = 403
    ) -> None:
        """Block a request the policy would pass (or redact) that cannot be checked."""
        blocked = replace(decision, action=Action.BLOCK, message=message)
        self.block(flow, blocked, host, status=status)

    @staticmethod
    def _block_before_body(flow: http.HTTPFlow, answer: http.Response) -> None:
        """Answer without reading the body. A response set now would be sent only after
        mitmproxy has read, and held in memory, the whole body. Instead the request is
        streamed toward an address the Upstream addon refuses, and its error hook sends the
        answer (compat.py lets it); the body is never read. Behind a parent proxy the sink is
        refused the same way: the parent is never asked for it."""
        state_of(flow).blocked_answer = answer
        flow.request.stream = True
        flow.request.host, flow.request.port = SINK
        compat.sink_directly(flow)

    def deny(self, flow: http.HTTPFlow, host: str, reason: str, refuse: bool = False) -> None:
        """Block a request (or refuse a CONNECT) toward a destination the proxy does not
        connect to."""
        stage = Stage.CONNECT if refuse else Stage.REQUEST
        self.block(flow, self.gate.denied(stage, reason), host, refuse=refuse)

    def check_destination(
        self, flow: http.HTTPFlow, host: str, port: int, refuse: bool
    ) -> Awaitable[None] | None:
        """Refuse a denied destination (an IP literal, a name resolving into a denied range,
        our own listeners); waits for DNS only when the name was not looked up recently."""

        def then(reason: str | None) -> None:
            if reason:
                self.deny(flow, host, reason, refuse=refuse)

        def failed(error: Exception) -> None:
            self.fail(flow, Stage.CONNECT if refuse else Stage.REQUEST, error)

        return self.gate.when_checked(host, port, then, failed)

    def in_thread(
        self, flow: http.HTTPFlow, work: Callable[[], T], then: Callable[[T], None]
    ) -> Awaitable[None]:
        """Run `work` (parsing or redacting a large body) in a thread, off the event loop,
        then `then` with its result on the loop; an exception applies on_error."""

        async def off_loop() -> None:
            try:
                then(await asyncio.to_thread(work))
            except Exception as e:
                self.fail(flow, Stage.REQUEST, e)

        return off_loop()

    def fail(self, flow: http.HTTPFlow, stage: Stage, error: Exception) -> None:
        """A decision raised: apply on_error explicitly (mitmproxy would let the flow go on)."""
        self.recorder.metrics.decision_errors(stage, type(error).__name__).inc()
        logger.error(
            "decision failed at %s: %s: %s", stage, type(error).__name__, error, exc_info=error
        )
        decision = self.gate.on_error(stage, f"{type(error).__name__} while deciding")
        state_of(flow).decision = decision
        if decision.action is Action.BLOCK:
            self.block(flow, decision, flow.request.host, refuse=stage is Stage.CONNECT)

    def bad_request(self, flow: http.HTTPFlow, status: int, reason: str, text: str) -> None:
        """A request no upstream should see, refused before any decision; counted, logged."""
        self.recorder.bad_request(reason, client=flow.client_conn.peername[0], status=status)
        flow.request.headers.pop("expect", None)
        flow.response = http.Response.make(
            status,
            text + "\n",
            {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"},
        )


def may_have_body(request: http.Request) -> bool:
    headers = request.headers
    if "transfer-encoding" in headers:
        return True
    if "content-length" in headers:
        return headers["content-length"].strip() not in ("", "0")
    # HTTP/2 and 3 may send a body without announcing its length
    return request.method in ("POST", "PUT", "PATCH") and not request.http_version.startswith(
        "HTTP/1"
    )
