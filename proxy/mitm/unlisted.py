"""Unlisted AI endpoints: the body of a request that no service or host rule decided, checked
for the shape of an LLM API call (llm_shape.py) before it goes upstream.

Such a request waits for its body, which is bounded by `unlisted_ai.max_body_bytes` as it
was announced; a body that cannot be checked (no length, too large, unreadable) is counted
and passes or is blocked as `unlisted_ai.unchecked` says. Large bodies are parsed in a
thread, off the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable

from mitmproxy import http

from proxy.decide import llm_shape
from proxy.decide.gate import Gate, InForce
from proxy.decide.verdict import Action, Decision, Stage
from proxy.mitm.answers import OFFLOAD_BYTES, Answers, may_have_body
from proxy.mitm.recording import Recorder
from proxy.mitm.state import STATE, FlowState


class UnlistedAI:
    def __init__(self, gate: Gate, recorder: Recorder, answers: Answers) -> None:
        self.gate = gate
        self.recorder = recorder
        self.answers = answers

    def before_body(self, flow: http.HTTPFlow, decision: Decision, host: str) -> Decision:
        """At the headers (Enforcement): whether this request's body is to be checked (see
        Engine.checks_body); the decision for a body that cannot be."""
        request = flow.request
        if not (self.gate.checks_body(decision) and may_have_body(request)):
            return decision
        if request.headers.get("upgrade", "").lower() == "websocket":
            return decision
        in_force = self.gate.in_force
        length = request.headers.get("content-length", "").strip()
        if not length.isdigit():  # chunked, or HTTP/2 without a length: unbounded
            unchecked = "no_length"
        elif int(length) > in_force.policy.unlisted_ai.max_body_bytes:
            unchecked = llm_shape.TOO_LARGE
        else:
            flow.metadata.setdefault(STATE, FlowState()).body_check = in_force
            return decision
        self.recorder.metrics.unlisted_ai_unchecked(unchecked).inc()
        return self.gate.decide_unlisted(decision, None, unchecked) or decision

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """The body is whole: check it, with the policy that was in force at its headers."""
        state: FlowState | None = flow.metadata.get(STATE)
        if state is None or state.body_check is None:
            return None
        in_force, state.body_check = state.body_check, None
        try:
            return self._check(flow, state, in_force)
        except Exception as e:
            self.answers.fail(flow, Stage.REQUEST, e)
            return None

    def _check(
        self, flow: http.HTTPFlow, state: FlowState, in_force: InForce
    ) -> Awaitable[None] | None:
        if flow.response or flow.error or state.blocked_answer is not None:
            self.recorder.decided(state.decision)  # answered already (a denied destination)
            return None
        request = flow.request
        raw = request.raw_content or b""
        encoding = request.headers.get("content-encoding", "")
        limit = in_force.policy.unlisted_ai.max_body_bytes
        path = request.path.partition("?")[0]

        def check() -> tuple[str | None, str | None]:
            return llm_shape.inspect_body(raw, encoding, limit, path)

        def checked(outcome: tuple[str | None, str | None]) -> None:
            self._checked(flow, state, in_force, outcome)

        if len(raw) <= OFFLOAD_BYTES or not (encoding or llm_shape.looks_like_object(raw)):
            checked(check())
            return None
        return self.answers.in_thread(flow, check, checked)  # decompressing, parsing: slow

    def _checked(
        self,
        flow: http.HTTPFlow,
        state: FlowState,
        in_force: InForce,
        outcome: tuple[str | None, str | None],
    ) -> None:
        style, unchecked = outcome
        if unchecked is not None:
            self.recorder.metrics.unlisted_ai_unchecked(unchecked).inc()
        decision = state.decision
        unlisted = in_force.engine.decide_unlisted(decision, style, unchecked)
        if unlisted is not None:
            if style is not None:
                self.recorder.metrics.unlisted_ai(style, unlisted.action).inc()
            decision = state.decision = unlisted
        self.recorder.decided(decision)
        if decision.action is Action.BLOCK:
            self.answers.block(flow, decision, state.host)
        elif decision.action is Action.MONITOR:
            self.recorder.record(flow, decision, state.host)
