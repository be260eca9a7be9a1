"""What the addons know of each client connection and each flow, as typed values.

The addons hand each other facts through these, never through string markers: a client's
authenticated user and TLS server names (learnt at CONNECT and ClientHello, needed for each
request inside), and a flow's decision and what became of it (needed by the hooks that come
after the one that decided).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from mitmproxy import connection, http

from proxy.decide.gate import InForce
from proxy.decide.verdict import Decision
from proxy.identity.who import Who
from proxy.policy.normalize import BadHost

STATE = "aiwarden"  # the flow.metadata key of a flow's FlowState


@dataclass(slots=True)
class ClientFacts:
    user: str | None = None  # the user proxy authentication (Basic or Kerberos) named at CONNECT
    # the TLS server names the client's ClientHello claimed, or why they cannot be read
    tls_names: list[str] | BadHost = field(default_factory=list)
    tunnelled: bool = False  # relayed undecrypted: no flow will report its server's failure
    tunnel_host: str = ""  # the host it is relayed to (behind a parent, mitmproxy's server
    # connection is to the parent, so its failure names the parent's address instead)
    who: Who | None = None  # who the CONNECT was found to be (identity.py), for what is inside


class Clients:
    """Facts about each client connection, forgotten with it."""

    def __init__(self) -> None:
        self._facts: weakref.WeakKeyDictionary[connection.Client, ClientFacts] = (
            weakref.WeakKeyDictionary()
        )

    def of(self, client: connection.Client) -> ClientFacts:
        facts = self._facts.get(client)
        if facts is None:
            facts = self._facts[client] = ClientFacts()
        return facts

    def user(self, flow: http.HTTPFlow) -> str | None:
        """The user behind this request: as the identity sources found it (identity.py), else
        as proxy authentication named it for the request or its connection (never the
        password, which sits next to it)."""
        state = flow.metadata.get(STATE)
        if state is not None and state.who is not None:
            return state.who.user
        # set by mitmproxy's proxyauth addon (Basic), or by kerberos.py
        auth = flow.metadata.get("proxyauth")
        if auth:
            return auth[0]
        facts = self._facts.get(flow.client_conn)
        return facts.user if facts is not None else None

    def groups(self, flow: http.HTTPFlow) -> frozenset[str]:
        """The user's directory groups, lower-cased, as an identity source named them."""
        state = flow.metadata.get(STATE)
        return state.who.groups if state is not None and state.who is not None else frozenset()


@dataclass(slots=True)
class FlowState:
    decision: Decision | None = None  # the decision in force for this request
    host: str = ""  # the claimed name it was decided for
    names: tuple[str, ...] = ()  # every name the request claims, as decided (enforcement.py)
    # the body is to be checked for an LLM API call, by the policy in force at the headers
    body_check: InForce | None = None
    # the block answer for a request refused before its body (answers.Answers.block)
    blocked_answer: http.Response | None = None
    redactions: dict[str, int] | None = None  # detector -> count, once redacted
    # placeholder -> original, for the answer (restore: true); in the flow alone, never shown
    originals: dict[str, str] | None = field(default=None, repr=False)
    upstream_failed: bool = False  # the flow's error is the server side's
    timed_out: bool = False  # the server took too long to answer (deadlines.py)
    counted: str | None = None  # the domain discovery counted the request under
    reference: str | None = None  # the id of its audit line, once it has one
    who: Who | None = None  # who is behind it, as the identity sources found it
    coaching_call: bool = False  # a request for the proxy's own /.aiwarden/ pages (coaching.py)


def state_of(flow: http.HTTPFlow) -> FlowState:
    state = flow.metadata.get(STATE)
    if state is None:
        state = flow.metadata[STATE] = FlowState()
    return state


def decision_of(flow: http.HTTPFlow) -> Decision | None:
    """The flow's decision, without creating state for a flow nothing decided."""
    state = flow.metadata.get(STATE)
    return state.decision if state is not None else None
