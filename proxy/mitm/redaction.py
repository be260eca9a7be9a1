"""Redaction: the body of a request approved with redaction, rewritten before it leaves.

The body is decoded, its text found (JSON, form, multipart: redact/bodies.py) and redacted
with the rule's profile, then re-encoded as the client sent it. A body that cannot be
checked is blocked, or passed when the profile says `on_unparseable: pass`; one larger than
the profile's limit is refused, before it is read when its length is announced. Bodies over
64 KiB are redacted in a thread, off the event loop, and so is a smaller one that takes more
than LOOP_SECONDS there (a prompt is the client's to shape: some shapes cost far more per
byte); one that takes more than THREAD_SECONDS in the thread is blocked, never passed.
"""

from __future__ import annotations

from collections.abc import Awaitable

from mitmproxy import http

from proxy.decide.gate import Gate
from proxy.decide.verdict import Action, Decision, Stage
from proxy.mitm.answers import OFFLOAD_BYTES, Answers
from proxy.mitm.recording import Recorder
from proxy.mitm.state import STATE, FlowState
from proxy.redact.bodies import Result, Unparseable, Unredactable, redact_body
from proxy.redact.detectors import TooSlow, deadline
from proxy.redact.profiles import RedactionProfile

LOOP_SECONDS = 0.05  # redacting on the event loop holds every other connection up
THREAD_SECONDS = 10.0  # a body that takes longer is blocked: its cost is bounded


class Redaction:
    def __init__(self, gate: Gate, recorder: Recorder, answers: Answers) -> None:
        self.gate = gate
        self.recorder = recorder
        self.answers = answers

    def refused_early(self, flow: http.HTTPFlow, decision: Decision, host: str) -> bool:
        """At the headers (Enforcement): refuse what could never be redacted, before the
        body is read; True when refused."""
        request = flow.request
        if request.headers.get("upgrade", "").lower() == "websocket":
            message = (
                "aiwarden cannot check WebSocket messages for secrets and personal "
                "data, so this approved-with-redaction service is not available "
                "over WebSocket."
            )
            self.answers.block_instead(flow, decision, host, message)
            return True
        limit = self.gate.profile(decision).max_body_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            self._too_large(flow, decision, host, limit)
            return True
        return False

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        state: FlowState | None = flow.metadata.get(STATE)
        if state is None or state.decision is None or state.decision.action is not Action.REDACT:
            return None
        if flow.response or flow.error:
            return None
        try:
            return self._redact(flow, state)
        except Exception as e:
            self.answers.fail(flow, Stage.REQUEST, e)
            return None

    def _redact(self, flow: http.HTTPFlow, state: FlowState) -> Awaitable[None] | None:
        decision = state.decision
        profile = self.gate.profile(decision)
        host = flow.request.pretty_host
        try:
            raw = flow.request.get_content(strict=True)  # Content-Encoding decoded
        except ValueError as e:
            error = Unparseable(f"cannot decode the body: {e}")
            self._unreadable(flow, state, profile, host, error)
            return None
        if raw is not None and len(raw) > profile.max_body_bytes:
            self._too_large(flow, decision, host, profile.max_body_bytes)
            return None
        ctype = flow.request.headers.get("content-type", "")

        def redact() -> Result | Unparseable:
            return redact_or_error(raw or b"", ctype, profile, THREAD_SECONDS)

        def apply(outcome: Result | Unparseable) -> None:
            self._apply(flow, state, profile, host, outcome)

        if raw is None or len(raw) <= OFFLOAD_BYTES:
            try:
                with deadline(LOOP_SECONDS):
                    outcome = redact_body_or_error(raw or b"", ctype, profile)
            except TooSlow:  # a small body slow to check: done again in a thread
                return self.answers.in_thread(flow, redact, apply)
            apply(outcome)
            return None
        return self.answers.in_thread(flow, redact, apply)

    def _apply(
        self,
        flow: http.HTTPFlow,
        state: FlowState,
        profile: RedactionProfile,
        host: str,
        outcome: Result | Unparseable,
    ) -> None:
        if isinstance(outcome, Unparseable):
            self._unreadable(flow, state, profile, host, outcome)
            return
        if outcome.changed:
            flow.request.content = outcome.body  # re-encoded as the client sent it
        state.redactions = outcome.counts
        state.originals = outcome.originals or None  # restored in the answer (restoration.py)
        self.recorder.record(flow, state.decision, host, redactions=outcome.counts)

    def _unreadable(
        self,
        flow: http.HTTPFlow,
        state: FlowState,
        profile: RedactionProfile,
        host: str,
        error: Unparseable,
    ) -> None:
        if profile.on_unparseable == "pass" and not isinstance(error, Unredactable):
            state.redactions = {}
            note = "unparseable body passed"
            self.recorder.record(flow, state.decision, host, redactions={}, note=note)
            return
        message = (
            "aiwarden could not check this request for secrets and personal data, so it was "
            f"not sent: {error}."
        )
        self.answers.block_instead(flow, state.decision, host, message)

    def _too_large(self, flow: http.HTTPFlow, decision: Decision, host: str, limit: int) -> None:
        message = (
            f"The request body is larger than the {limit} bytes aiwarden checks for secrets "
            "and personal data, so it was not sent."
        )
        self.answers.block_instead(flow, decision, host, message, status=413)


def redact_body_or_error(
    raw: bytes, content_type: str, profile: RedactionProfile
) -> Result | Unparseable:
    """Redaction's outcome as a value, so it can cross from a worker thread."""
    try:
        return redact_body(raw, content_type, profile)
    except Unparseable as e:
        return e


def redact_or_error(
    raw: bytes, content_type: str, profile: RedactionProfile, seconds: float
) -> Result | Unparseable:
    """The same within `seconds`; a body that takes longer is never passed unchecked."""
    try:
        with deadline(seconds):
            return redact_body_or_error(raw, content_type, profile)
    except TooSlow:
        return Unredactable(f"checking it took longer than {seconds:g} seconds")
