"""The gate (proxy/decide/gate.py): the one place the policy in force is asked, by every hook,
the fast path and the resolver. In-process, with the shipped catalog."""

from __future__ import annotations

import asyncio
import socket

import pytest

from proxy.decide.gate import DENIED_RULE, Gate
from proxy.decide.verdict import Action, Mode, Stage
from proxy.policy.loader import load_policy
from proxy.policy.normalize import BadHost

POLICY = """
version: 1
network:
  clients: [127.0.0.0/8, "::1/128"]
  deny_destinations: [169.254.0.0/16, 10.0.0.0/8]
defaults: {on_error: %s}
redaction_profiles:
  default: {detectors: [secrets]}
rules:
  - id: block-chat
    match: {categories: [chat]}
    action: block
  - id: redact-openai-api
    match: {services: [openai-api]}
    action: redact
"""


@pytest.fixture
def gate_for(write_policy):
    def make(on_error: str = "block", protect=()) -> Gate:
        gate = Gate(protect)
        gate.install(gate.prepare(load_policy(write_policy(POLICY % on_error))))
        return gate

    return make


def test_the_strictest_claimed_name_wins_and_is_named(gate_for):
    gate = gate_for()
    names = ["example.com", "api.openai.com", "chatgpt.com"]  # allow, redact, block
    decision, host = gate.request("POST", "/v1/chat/completions", names, "127.0.0.1", None)
    assert (decision.action, decision.rule, host) == (Action.BLOCK, "block-chat", "chatgpt.com")
    decision, host = gate.request("POST", "/v1/chat/completions", names[:2], "127.0.0.1", None)
    assert (decision.action, host) == (Action.REDACT, "api.openai.com")
    decision, host = gate.request("GET", "/", ["example.com"], "127.0.0.1", None)  # control
    assert (decision.action, host) == (Action.ALLOW, "example.com")


def test_of_equally_strict_names_the_request_target_is_reported(gate_for):
    decision, host = gate_for().request("GET", "/", ["example.com", "example.org"], "::1", None)
    assert (decision.action, host) == (Action.ALLOW, "example.com")


def test_an_unreadable_claimed_name_gets_on_error_unless_a_name_is_stricter(gate_for):
    unreadable = BadHost("the TLS server name 'a b' is not a plain host name")
    decision, host = gate_for("block").request(
        "GET", "/", ["example.com"], "127.0.0.1", None, unreadable
    )
    assert decision.action is Action.BLOCK and "unreadable host" in decision.reason
    assert host == "example.com"
    decision, _ = gate_for("allow").request(
        "GET", "/", ["example.com"], "127.0.0.1", None, unreadable
    )
    assert decision.action is Action.ALLOW and decision.rule == "default"


def test_a_tunnel_needs_every_name_to_tunnel_and_allow(gate_for):
    gate = gate_for()
    assert gate.tunnel(["example.com", "example.org"], "127.0.0.1", None).tunnels
    assert gate.tunnel(["example.com", "chatgpt.com"], "127.0.0.1", None) is None  # fronting
    assert gate.tunnel(["api.openai.com"], "127.0.0.1", None) is None  # redact: intercepted
    assert gate.tunnel([], "127.0.0.1", None) is None  # nothing claimed: nothing to relay


def test_connect_modes(gate_for):
    gate = gate_for()
    assert gate.connect("example.com", "127.0.0.1", None).connect is Mode.TUNNEL
    assert gate.connect("chatgpt.com", "127.0.0.1", None).connect is Mode.INTERCEPT
    assert gate.connect("chatgpt.com", "127.0.0.1", None).stage is Stage.CONNECT


def test_every_engine_call_is_timed_under_its_stage(write_policy):
    stages = []

    def timed(stage, decide, *args):
        stages.append(stage)
        return decide(*args)

    gate = Gate(timed=timed)
    gate.install(gate.prepare(load_policy(write_policy(POLICY % "block"))))
    gate.tunnel(["example.com", "example.org"], "127.0.0.1", None)
    gate.request("GET", "/", ["example.com", "chatgpt.com"], "127.0.0.1", None)
    assert stages == ["connect", "connect", "request", "request"]


@pytest.mark.parametrize(
    "address, allowed",
    [("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("10.1.1.1", False),
     ("not an address", False), ("fe80::1%eth0", False)],
)  # fmt: skip
def test_the_client_acl(gate_for, address, allowed):
    assert gate_for().client_allowed(address) is allowed


def test_a_new_policy_brings_a_new_client_acl(gate_for, write_policy):
    gate = gate_for()
    assert gate.client_allowed("10.1.1.1") is False
    wider = load_policy(write_policy((POLICY % "block").replace("127.0.0.0/8", "10.0.0.0/8")))
    gate.install(gate.prepare(wider))
    assert gate.client_allowed("10.1.1.1") is True  # not the old policy's remembered answer


def test_on_error_without_a_policy_blocks():
    decision = Gate().on_error(Stage.REQUEST, "RuntimeError while deciding")
    assert decision.action is Action.BLOCK and decision.reason == "no policy is loaded"


def test_on_error_is_the_policys(gate_for):
    assert gate_for("allow").on_error(Stage.REQUEST, "x").action is Action.ALLOW
    connect = gate_for("block").on_error(Stage.CONNECT, "x")
    assert (connect.action, connect.connect) == (Action.BLOCK, Mode.REFUSE)


def test_a_denied_destination_decision():
    decision = Gate.denied(Stage.CONNECT, "169.254.169.254 is in denied destination x")
    assert (decision.action, decision.rule, decision.stage) == (
        Action.BLOCK, DENIED_RULE, Stage.CONNECT,
    )  # fmt: skip


def checked(gate: Gate, host: str, port: int) -> list:
    """when_checked's answers, waiting for a look-up when one is needed."""
    answers: list = []
    pending = gate.when_checked(host, port, answers.append, answers.append)
    if pending is not None:
        assert answers == []  # nothing before the name is looked up
        asyncio.run(pending)
    return answers


def test_when_checked_answers_ip_literals_at_once(gate_for):
    gate = gate_for()
    answers = []
    assert gate.when_checked("169.254.169.254", 80, answers.append, answers.append) is None
    assert answers == ["169.254.169.254 is in denied destination 169.254.0.0/16"]
    assert checked(gate, "192.0.2.1", 443) == [None]  # control: not denied


def test_when_checked_looks_a_name_up_then_remembers_it(gate_for):
    gate = gate_for()
    assert checked(gate, "localhost", 443) == [None]  # 127.0.0.1 is not denied here
    answers = []
    assert gate.when_checked("localhost", 443, answers.append, answers.append) is None
    assert answers == [None]  # answered from the look-up just made, without waiting


def test_when_checked_protects_the_proxys_own_listeners_under_every_policy(gate_for, write_policy):
    gate = gate_for(protect=[("127.0.0.1", 3128)])
    gate.protect("127.0.0.1", 3129)  # told of later (a listener once bound)
    assert checked(gate, "127.0.0.1", 3128) == ["127.0.0.1:3128 is the proxy itself"]
    gate.install(gate.prepare(load_policy(write_policy(POLICY % "allow"))))
    assert checked(gate, "127.0.0.1", 3129) == ["127.0.0.1:3129 is the proxy itself"]
    assert checked(gate, "127.0.0.1", 3130) == [None]


def test_when_checked_hands_a_failed_look_up_to_failed(gate_for, monkeypatch):
    gate = gate_for()

    def broken(*args, **kwargs):
        raise RuntimeError("resolver gone")

    monkeypatch.setattr(socket, "getaddrinfo", broken)
    [answer] = checked(gate, "never-looked-up.example", 443)
    assert isinstance(answer, RuntimeError)


def test_check_resolved_refuses_a_denied_answer(gate_for):
    infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))]
    with pytest.raises(OSError, match=r"aiwarden: x\.example resolves to 10\.0\.0\.5"):
        gate_for().check_resolved("x.example", 443, infos)
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 443))]
    assert gate_for().check_resolved("x.example", 443, public) == public
    assert Gate().check_resolved("x.example", 443, infos) == infos  # no policy, no connection
