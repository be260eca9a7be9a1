"""The gate: what the policy in force decides with, asked by everything that decides.

The CONNECT hook, the TLS ClientHello, the check of raw bytes, each request, the fast path
and the event loop's resolver all ask the gate; none decides for itself. It holds the
engine, the destination guard and the client ACL of one policy, replaced together in one
assignment on a reload: a request already decided keeps its decision, the next one is
decided by the new policy. It merges every name a request claims into the strictest verdict,
and gives the policy's `on_error` decision when deciding fails. Nothing here knows mitmproxy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from proxy.decide.destinations import UNRESOLVED, DestinationGuard
from proxy.decide.engine import Engine
from proxy.decide.verdict import Action, Decision, Stage, stricter
from proxy.policy.catalog import Service
from proxy.policy.model import DEFAULT_RULE_ID, Policy, Rule
from proxy.policy.normalize import BadHost, parse_ip
from proxy.policy.tenants import Tenant
from proxy.redact.profiles import RedactionProfile

logger = logging.getLogger("aiwarden")

DENIED_RULE = "network.deny_destinations"
CLIENT_CACHE = 4096  # client addresses whose ACL answer is remembered, per policy

Timer = Callable[..., Decision]  # (stage, decide, *args) -> decide(*args), timed


def _untimed(stage: str, decide: Callable[..., Decision], *args) -> Decision:
    return decide(*args)


class Verdict(NamedTuple):
    """A request's decision, and the claimed name it was decided for."""

    decision: Decision
    host: str


@dataclass(slots=True)
class InForce:
    """What one policy decides with; built off the event loop on a reload."""

    policy: Policy
    engine: Engine
    guard: DestinationGuard
    clients: dict[str, bool] = field(default_factory=dict)  # the ACL's answers so far


class Gate:
    def __init__(self, protect: Iterable[tuple[str, int]] = (), timed: Timer = _untimed) -> None:
        """`protect`: addresses of this deployment the proxy must never connect to, besides
        the listeners it is told of later (a worker's supervisor's admin listener).
        `timed`: how each engine call is run (Metrics.timed records its latency)."""
        self.in_force: InForce | None = None
        self._protected: list[tuple[str, int]] = list(protect)
        self._timed = timed

    # -- the policy in force ----------------------------------------------------------------

    def prepare(self, policy: Policy) -> InForce:
        """Everything a policy needs to decide; slow for a large catalog, so a reload calls
        this in a thread and only `install` on the event loop."""
        guard = DestinationGuard(policy.deny_destinations)
        for host, port in self._protected:
            guard.protect(host, port)
        return InForce(policy, Engine(policy), guard)

    def install(self, prepared: InForce) -> None:
        """Put a prepared policy in force, in one assignment."""
        self.in_force = prepared

    def protect(self, host: str, port: int) -> None:
        """Never connect to this listener of ours, under this policy and every later one."""
        self._protected.append((host, port))
        if self.in_force is not None:
            self.in_force.guard.protect(host, port)

    @property
    def policy(self) -> Policy | None:
        return self.in_force.policy if self.in_force is not None else None

    @property
    def engine(self) -> Engine:
        """The engine in force; only called once a policy is (a decision before that fails,
        and gets on_error)."""
        return self.in_force.engine

    # -- who may use the proxy, and where it connects --------------------------------------------

    def client_allowed(self, address: str) -> bool:
        """Whether `network.clients` lets this client address use the proxy."""
        in_force = self.in_force
        answer = in_force.clients.get(address)
        if answer is None:
            ip = parse_ip(address)
            answer = ip is not None and any(ip in net for net in in_force.policy.clients)
            if len(in_force.clients) >= CLIENT_CACHE:
                in_force.clients.clear()
            in_force.clients[address] = answer
        return answer

    def check_resolved(self, host: str, port: int, infos: list) -> list:
        """The resolver's answer for a connection about to be made, or OSError when one of
        its addresses is denied; before any policy is in force, nothing is checked here (no
        connection is made before one is)."""
        if self.in_force is None:
            return infos
        return self.in_force.guard.check_resolved(host, port, infos)

    def when_checked(
        self,
        host: str,
        port: int,
        then: Callable[[str | None], None],
        failed: Callable[[Exception], None],
    ) -> Awaitable[None] | None:
        """Call `then` with why the proxy must not connect to host:port (None: it may): now
        when that is known without waiting, else once the name is looked up, off the event
        loop (the awaitable returned). A look-up that raises goes to `failed`. The one
        destination check of CONNECTs, plain-HTTP requests, upstream connections and the
        fast path."""
        guard = self.in_force.guard
        reason = guard.why_denied_now(host, port)
        if reason is not UNRESOLVED:
            then(reason)
            return None

        async def look_up() -> None:
            try:
                reason = await guard.why_denied(host, port)
            except Exception as e:
                failed(e)
                return
            then(reason)

        return look_up()

    # -- decisions -----------------------------------------------------------------------------

    def connect(
        self, host: str, client: str, user: str | None, groups: frozenset[str] = frozenset()
    ) -> Decision:
        """How to handle a CONNECT to `host`: refuse, tunnel or intercept."""
        decide = self.in_force.engine.decide_connect
        return self._timed("connect", decide, host, client, user, groups)

    def tunnel(
        self,
        names: Iterable[str],
        client: str,
        user: str | None,
        groups: frozenset[str] = frozenset(),
    ) -> Decision | None:
        """The decision to relay a connection undecrypted, or None when it must not be:
        every name it claims (CONNECT host, TLS server names) must be tunnel+allow. The
        first name's decision is returned. The one rule for the ClientHello, raw bytes and
        the fast path."""
        decide, first = self.in_force.engine.decide_connect, None
        for name in names:
            decision = self._timed("connect", decide, name, client, user, groups)
            if not decision.tunnels:
                return None
            first = first or decision
        return first

    def request(
        self,
        method: str,
        path: str,
        names: Iterable[str],
        client: str,
        user: str | None,
        unreadable: BadHost | None = None,
        groups: frozenset[str] = frozenset(),
    ) -> Verdict:
        """The strictest decision over every name the request claims, the request target
        first (the first of equally strict ones wins). `unreadable`: a name the client
        claimed that cannot be read (a TLS server name), which gets on_error."""
        engine = self.in_force.engine
        names = list(names)
        decision: Decision | None = None
        host = names[0] if names else ""
        if unreadable is not None:
            decision = engine.error_decision(Stage.REQUEST, f"unreadable host: {unreadable}")
        for name in names:
            d = self._timed(
                "request", engine.decide_request, method, name, path, client, user, groups
            )
            if stricter(d, decision):
                decision, host = d, name
        return Verdict(decision, host)

    def on_error(self, stage: Stage, why: str) -> Decision:
        """The policy's on_error decision when deciding failed; block when there is no
        policy to ask."""
        if self.in_force is None:
            return Decision(Action.BLOCK, stage, DEFAULT_RULE_ID, "no policy is loaded")
        return self.in_force.engine.error_decision(stage, why)

    @staticmethod
    def denied(stage: Stage, reason: str) -> Decision:
        """The decision for a destination the proxy does not connect to."""
        return Decision(
            action=Action.BLOCK,
            stage=stage,
            rule=DENIED_RULE,
            reason=reason,
            message="The proxy does not connect to this destination.",
        )

    def checks_body(self, decision: Decision) -> bool:
        """Whether the body of a request so decided is checked for an LLM API call."""
        return self.in_force.engine.checks_body(decision)

    def decide_unlisted(
        self, decision: Decision, style: str | None, unchecked: str | None = None
    ) -> Decision | None:
        """The decision once the body was checked (Engine.decide_unlisted)."""
        return self.in_force.engine.decide_unlisted(decision, style, unchecked)

    def classify(self, method: str, host: str, path: str) -> Service | None:
        """The catalogued service a request is for, if any."""
        return self.in_force.engine.classify(method, host, path)[0]

    def tenants_of(self, host: str) -> tuple[Tenant, ...]:
        """The tenant restrictions whose header a request to this canonical host carries."""
        return self.in_force.engine.tenants_of(host)

    def service(self, decision: Decision) -> Service | None:
        """The catalogued service a decision names (none for decisions made on error)."""
        if decision.service is None or self.in_force is None:
            return None
        return self.in_force.engine.services.get(decision.service)

    def catalogued(self, service_id: str) -> Service | None:
        """The catalogued service with this id, if any."""
        return self.in_force.engine.services.get(service_id) if self.in_force else None

    def rule(self, rule_id: str) -> Rule | None:
        """The policy's rule with this id, if it has one now."""
        policy = self.policy
        return next((r for r in policy.rules if r.id == rule_id), None) if policy else None

    def profile(self, decision: Decision) -> RedactionProfile:
        """The redaction profile of a redact decision."""
        return self.in_force.policy.redaction_profiles[decision.profile]
