"""Coaching: a `warn` rule stops a request until its user acknowledges, then lets them proceed.

A request decided `warn` is looked up in the grants (coach/store.py): a grant in force for its
user (or, without authentication, its client address), service and rule turns it into
`monitor`, recorded and passed. Otherwise it is answered like a block, with a ticket: a
browser gets the warning page (message, approved alternative, justification, Proceed and
Cancel); an API client gets the error of its own API whose message carries the ticket's link,
so that a developer whose SDK call was warned opens the link in a browser, proceeds, and the
next SDK call passes.

The link and the form live on the warned host itself, under `/.aiwarden/` (coach/pages.py):
the proxy intercepts that host anyway, answers those paths itself and never forwards them,
so no other name, certificate or PAC entry is needed. A ticket is bound to the client address
and user that were warned, is used once (any worker), and lapses after ten minutes; a grant
holds for the rule's `ttl`, across workers and restarts, until it expires, the rule changes,
or it is revoked (`POST /coaching/revoke` on the admin listener).

Without a usable store nothing can be acknowledged: warned requests are blocked, and say so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path

from mitmproxy import ctx, http

from proxy.coach import pages
from proxy.coach.store import (
    CoachingStore,
    Grant,
    Ticket,
    clean_justification,
    store_path,
    subject_of,
)
from proxy.decide import llm_shape
from proxy.decide.gate import Gate
from proxy.decide.verdict import Action, Decision, Stage
from proxy.mitm.answers import Answers
from proxy.mitm.recording import Recorder
from proxy.mitm.responses import Block, block_response, client_kind
from proxy.mitm.state import Clients, state_of
from proxy.observe.audit import new_reference, rfc3339
from proxy.options import declare

logger = logging.getLogger("aiwarden")

SWEEP_SECONDS = 30  # how often lapsed tickets and grants are removed and recorded
MAX_FORM_BYTES = 8192  # a Proceed or Cancel form: a token, a path and the justification
STATUS = 403


class Coaching:
    def __init__(self, gate: Gate, clients: Clients, recorder: Recorder, answers: Answers) -> None:
        self.gate = gate
        self.clients = clients
        self.recorder = recorder
        self.answers = answers
        self.path: Path | None = None
        self._store: CoachingStore | None = None
        self._unusable: str | None = None  # why the store cannot be opened, once known
        self._sweeper: asyncio.Task | None = None

    # -- the addon's life ------------------------------------------------------------------------

    def load(self, loader) -> None:
        declare(loader, "aiwarden_coaching_store")

    def configure(self, updated: set[str]) -> None:
        if "aiwarden_coaching_store" in updated or "confdir" in updated:
            self.close()
            self.path = store_path(ctx.options.aiwarden_coaching_store, ctx.options.confdir)
            self._unusable = None

    def running(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    def done(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def store(self) -> CoachingStore | None:
        """The store, opened on first use; None when it cannot be (logged once)."""
        if self._store is None and self._unusable is None and self.path is not None:
            try:
                self._store = CoachingStore(self.path)
            except Exception as e:  # sqlite3.Error, OSError: nothing can be acknowledged
                self._unusable = f"{type(e).__name__}: {e}"
                logger.error("coaching store %s cannot be used: %s", self.path, self._unusable)
        return self._store

    # -- warned requests (called by enforcement.py) ---------------------------------------------

    def granted(self, flow: http.HTTPFlow, decision: Decision, host: str) -> Decision:
        """The decision for a warned request: monitor when its user proceeded past this
        warning and the grant holds, else the warning itself."""
        store = self.store()
        if store is None or decision.coaching is None:
            return decision
        client, user = flow.client_conn.peername[0], self.clients.user(flow)
        until = store.granted(
            subject_of(client, user), decision.service or host, decision.rule,
            decision.coaching.digest,
        )  # fmt: skip
        if until is None:
            return decision
        return replace(
            decision,
            action=Action.MONITOR,
            reason=f"{decision.reason}; the user proceeded past the warning (until "
            f"{rfc3339(until)})",
        )

    def warn(self, flow: http.HTTPFlow, decision: Decision, host: str) -> Awaitable[None] | None:
        """Answer a warned request with a ticket to proceed: the page, or the API's error."""
        store = self.store()
        if store is None or decision.coaching is None:
            self.answers.block_instead(
                flow, decision, host,
                f"{decision.message or ''} (It cannot be acknowledged now: the proxy's "
                "coaching store is unavailable.)".strip(),
            )  # fmt: skip
            return None
        client, user = flow.client_conn.peername[0], self.clients.user(flow)
        reference = new_reference()
        target = decision.service or host
        digest = decision.coaching.digest

        def issue() -> tuple[Ticket, bool]:
            return store.issue(client, user, target, decision.rule, digest, reference)

        def answer(issued: tuple[Ticket, bool]) -> None:
            ticket, new = issued
            self.answers.respond(flow, self._warning(flow, decision, host, ticket, reference))
            self.recorder.record(flow, decision, host, reference)
            if new:
                self.recorder.coaching(
                    "warned", client, user, target, decision.rule, ticket.reference
                )

        return self.answers.in_thread(flow, issue, answer)

    def _warning(
        self, flow: http.HTTPFlow, decision: Decision, host: str, ticket: Ticket, reference: str
    ) -> http.Response:
        request = flow.request
        service = self.gate.service(decision)
        api_format = llm_shape.api_format(decision.style)
        if client_kind(request, service, api_format) == "html":
            back = request.path.partition("?")[0] if request.method == "GET" else ""
            page = pages.render_warning(
                self._facts(decision, service.name if service else host, ticket, reference, back)
            )
            return http.Response.make(
                STATUS,
                page.encode(),
                {
                    "Content-Type": "text/html; charset=utf-8",
                    "Cache-Control": "no-store",
                    "X-AIWarden-Rule": decision.rule,
                    "X-AIWarden-Reference": reference,
                },
            )
        link = f"{_origin(request, host)}{pages.ACK}{ticket.token}"
        block = Block(decision, reference, service, host, api_format, acknowledge=link)
        return block_response(request, block, STATUS)

    @staticmethod
    def _facts(
        decision: Decision, name: str, ticket: Ticket, reference: str, back: str = ""
    ) -> pages.Warning:
        coaching = decision.coaching
        return pages.Warning(
            service=name,
            message=decision.message or "",
            rule=decision.rule,
            reference=reference,
            token=ticket.token,
            ttl=coaching.ttl,
            justification=coaching.justification,
            alternative=coaching.alternative,
            contact=decision.contact,
            return_path=back,
        )

    # -- the link and the form: /.aiwarden/ on any intercepted host --------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Before enforcement: a request for /.aiwarden/ is the proxy's own, answered here
        (or, for a form, once its small body is in) and never forwarded."""
        path = flow.request.path.partition("?")[0]
        if not path.startswith(pages.PREFIX) or flow.response or flow.error:
            return
        state_of(flow).coaching_call = True  # from here on, enforcement leaves it to us
        try:
            self._headers(flow, path)
        except Exception as e:
            self._failed(flow, e)

    def _failed(self, flow: http.HTTPFlow, error: Exception) -> None:
        """Our own page failed: answer so, never let the request go on upstream."""
        logger.error("coaching page failed: %s: %s", type(error).__name__, error, exc_info=error)
        self.recorder.metrics.decision_errors("coaching", type(error).__name__).inc()
        self._outcome(flow, 500, "Something went wrong", "Send your request again.", "refused")

    def _headers(self, flow: http.HTTPFlow, path: str) -> None:
        request = flow.request
        if request.method in ("GET", "HEAD") and path.startswith(pages.ACK):
            self._show(flow, path.removeprefix(pages.ACK))
        elif request.method == "POST" and path in (pages.PROCEED, pages.CANCEL):
            length = request.headers.get("content-length", "")
            if not length.isdigit() or int(length) > MAX_FORM_BYTES:
                self.answers.bad_request(
                    flow, 413, "coaching_form",
                    f"aiwarden: a coaching form is sent with a Content-Length of at most "
                    f"{MAX_FORM_BYTES} bytes.",
                )  # fmt: skip
        else:
            self._outcome(flow, 404, "Not found", "There is nothing here.", "refused")

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        state = state_of(flow)
        if not state.coaching_call or flow.response or flow.error:
            return None
        try:
            return self._form(flow)
        except Exception as e:
            self._failed(flow, e)
            return None

    def _form(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        form = flow.request.urlencoded_form
        proceed = flow.request.path.partition("?")[0] == pages.PROCEED
        found = self._usable_ticket(flow, form.get("token", ""))
        if found is None:
            return None
        ticket, decision = found
        justification = clean_justification(form.get("justification", ""))
        if proceed and not justification and decision.coaching.justification == "required":
            self._show(flow, ticket.token, "Say why you need it to proceed.", status=400)
            return None
        ttl = decision.coaching.ttl
        store = self._store

        def take() -> tuple[Ticket, Grant | None] | None:
            used = store.use(ticket.token)  # once, whichever worker gets there first
            if used is None:
                return None
            return used, store.grant(used, ttl, justification) if proceed else None

        def answer(taken: tuple[Ticket, Grant | None] | None) -> None:
            if taken is None:
                self._gone(flow)
                return
            used, grant = taken
            who = (used.client, used.user, used.target, used.rule, used.reference)
            name = self._name(used.target)
            if grant is None:
                self.recorder.coaching("cancelled", *who)
                self._outcome(
                    flow, 200, "Cancelled",
                    f"You did not proceed to {name}."
                    + (f" Approved instead: {decision.coaching.alternative}."
                       if decision.coaching.alternative else ""),
                )  # fmt: skip
                return
            self.recorder.coaching("proceeded", *who, grant.justification, grant.expires)
            back = form.get("return", "")
            if _same_origin_path(back):
                flow.response = http.Response.make(
                    303, b"", {"Location": back, "Cache-Control": "no-store"}
                )
                return
            self._outcome(
                flow, 200, f"You may use {name}",
                f"You may use {name} for {pages.duration(ttl)}, until "
                f"{time.strftime('%H:%M UTC', time.gmtime(grant.expires))}. Run your "
                "request again.",
            )  # fmt: skip

        async def off_loop() -> None:
            try:
                answer(await asyncio.to_thread(take))
            except Exception as e:
                self._failed(flow, e)

        return off_loop()

    def _show(self, flow: http.HTTPFlow, token: str, problem: str | None = None, status=200):
        """The warning page of a ticket, for its link or to ask again."""
        found = self._usable_ticket(flow, token)
        if found is None:
            return
        ticket, decision = found
        facts = self._facts(decision, self._name(ticket.target), ticket, ticket.reference)
        page = pages.render_warning(replace(facts, problem=problem))
        flow.response = http.Response.make(
            status, page.encode(), {"Content-Type": "text/html; charset=utf-8",
                                    "Cache-Control": "no-store"}
        )  # fmt: skip

    def _usable_ticket(self, flow: http.HTTPFlow, token: str) -> tuple[Ticket, Decision] | None:
        """The ticket and its rule's decision facts, or None after answering why not."""
        store = self.store()
        ticket = store.ticket(token) if store is not None and token else None
        if ticket is None:
            self._gone(flow)
            return None
        if not ticket.bound_to(flow.client_conn.peername[0], self.clients.user(flow)):
            self._outcome(
                flow, 403, "Not your link",
                "This link was given to another client. Send your own request again to get "
                "a warning of your own.", "refused",
            )  # fmt: skip
            return None
        rule = self.gate.rule(ticket.rule)
        if rule is None or rule.coaching is None or rule.coaching.digest != ticket.digest:
            self._outcome(
                flow, 410, "The policy has changed",
                "The rule behind this warning has changed since. Send your request again.",
                "refused",
            )  # fmt: skip
            return None
        decision = Decision(
            action=Action.WARN, stage=Stage.REQUEST, rule=rule.id, reason="",
            message=rule.message, contact=rule.contact, coaching=rule.coaching,
        )  # fmt: skip
        return ticket, decision

    def _gone(self, flow: http.HTTPFlow) -> None:
        self._outcome(
            flow, 410, "This link cannot be used",
            "It was used already or has expired. Send your request again to be asked again.",
            "refused",
        )  # fmt: skip

    @staticmethod
    def _outcome(
        flow: http.HTTPFlow, status: int, title: str, text: str, cls: str = "done"
    ) -> None:
        page = pages.render_outcome(title, text, cls)
        flow.response = http.Response.make(
            status, page.encode(), {"Content-Type": "text/html; charset=utf-8",
                                    "Cache-Control": "no-store"}
        )  # fmt: skip

    def _name(self, target: str) -> str:
        service = self.gate.catalogued(target)
        return service.name if service else target

    # -- lapsed tickets and grants ---------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            await self.sweep()

    async def sweep(self) -> None:
        """Remove lapsed tickets (timed_out) and grants (expired), recording each once."""
        store = self._store
        if store is None:
            return
        try:
            tickets, grants = await asyncio.to_thread(store.sweep)
        except Exception:
            logger.exception("coaching: sweeping the store failed")
            return
        for t in tickets:
            self.recorder.coaching("timed_out", t.client, t.user, t.target, t.rule, t.reference)
        for g in grants:
            self.recorder.coaching("expired", g.client, g.user, g.target, g.rule, until=g.expires)

    def revoke(self, **which: str | None) -> list[Grant]:
        """End grants now (all, or a user's, a client's, a service's); recorded. Runs in a
        thread (the admin listener's)."""
        store = self.store()
        revoked = store.revoke(**which) if store is not None else []
        for g in revoked:
            self.recorder.coaching("revoked", g.client, g.user, g.target, g.rule, until=g.expires)
        return revoked


def _origin(request: http.Request, host: str) -> str:
    """scheme://host[:port] of a request, for a link back to the same host."""
    default = 443 if request.scheme == "https" else 80
    name = f"[{host}]" if ":" in host else host
    port = "" if request.port == default else f":{request.port}"
    return f"{request.scheme}://{name}{port}"


def _same_origin_path(path: str) -> bool:
    """A path to send a browser back to: on this host, and not one of ours."""
    return path.startswith("/") and not path.startswith(("//", "/\\", pages.PREFIX))
