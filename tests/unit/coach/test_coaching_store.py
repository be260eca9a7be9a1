"""The coaching store and the `warn` rule's settings: tickets handed out once per warning,
used once by whichever process gets there first, bound to the warned client; grants that
lapse when they expire or their rule changes; and the policy's checks of `ttl`,
`justification` and `alternative`, each at its file:line."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from conftest import assert_error, errors_of

from proxy.coach.store import CoachingStore, clean_justification, subject_of
from proxy.decide.engine import Engine
from proxy.policy.loader import load_policy


@pytest.fixture
def store(tmp_path):
    s = CoachingStore(tmp_path / "coaching.sqlite3")
    yield s
    s.close()


def issue(store, client="10.0.0.1", user=None, target="chatgpt", digest="d1"):
    return store.issue(client, user, target, "coach", digest, "ref1")


def test_one_ticket_per_warning_until_it_is_used(store):
    first, new = issue(store)
    again, new_again = issue(store)
    assert new and not new_again and again.token == first.token
    assert issue(store, client="10.0.0.2")[0].token != first.token  # another client
    assert issue(store, digest="d2")[0].token != first.token  # the rule changed
    assert store.use(first.token) == first
    assert store.use(first.token) is None  # once
    assert issue(store)[0].token != first.token  # a new warning, a new ticket


def test_a_ticket_is_bound_to_the_client_and_user_that_were_warned(store):
    ticket, _ = issue(store, user="alice")
    assert ticket.bound_to("10.0.0.1", "alice")
    assert not ticket.bound_to("10.0.0.1", None)
    assert not ticket.bound_to("10.0.0.9", "alice")
    assert len(ticket.token) >= 43  # 32 random bytes


def _use(path, token, results):
    s = CoachingStore(path)
    results.put(s.use(token) is not None)
    s.close()


def test_of_many_processes_racing_for_a_ticket_one_wins(store, tmp_path):
    ticket, _ = issue(store)
    results = multiprocessing.get_context("spawn").Queue()
    racers = [
        multiprocessing.get_context("spawn").Process(
            target=_use, args=(store.path, ticket.token, results)
        )
        for _ in range(4)
    ]
    for r in racers:
        r.start()
    for r in racers:
        r.join(60)
    assert sorted(results.get(timeout=5) for _ in racers) == [False, False, False, True]


def test_grants_hold_for_their_subject_until_they_expire_or_the_rule_changes(store):
    ticket, _ = issue(store, user="alice")
    grant = store.grant(store.use(ticket.token), 1, "a reason\n\x1b[31m  spread ")
    assert grant.justification == "a reason [31m spread"
    subject = subject_of("10.0.0.1", "alice")
    assert store.granted(subject, "chatgpt", "coach", "d1") == grant.expires
    assert store.granted(subject, "chatgpt", "coach", "d2") is None  # the rule changed
    assert store.granted(subject_of("10.0.0.1", None), "chatgpt", "coach", "d1") is None
    time.sleep(1.1)
    assert store.granted(subject, "chatgpt", "coach", "d1") is None
    tickets, grants = store.sweep()
    assert tickets == [] and [g.subject for g in grants] == [subject]


def test_revoking_ends_grants_by_who_or_all(store):
    for client in ("10.0.0.1", "10.0.0.2"):
        store.grant(store.use(issue(store, client=client)[0].token), 600, "")
    assert [g.client for g in store.revoke(client="10.0.0.2")] == ["10.0.0.2"]
    assert len(store.grants()) == 1
    assert len(store.revoke()) == 1 and store.grants() == []


def test_the_file_is_private(store):
    assert store.path.stat().st_mode & 0o077 == 0


def test_justifications_are_one_line_and_cut():
    assert clean_justification("x" * 900) == "x" * 500
    assert clean_justification("line\r\nbreak\tand\x00nul") == "line break and nul"


# -- the policy ---------------------------------------------------------------------------------

WARN = """
version: 1
rules:
  - id: coach
    match: {{categories: [chat]}}
    action: warn
{extra}
"""


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ("    ttl: soon", "'ttl' must be a duration like 90s, 15m, 8h or 1d, not 'soon'"),
        ("    ttl: 30d", "'ttl' must be from 1s to 7d, not 30d"),
        ("    ttl: 0", "'ttl' must be from 1s to 7d, not 0"),
        ("    justification: maybe", "'justification' must be one of required, optional, none"),
        ("    alternative: [a, b]", "'alternative' must be a string, not a list"),
    ],
)
def test_bad_warn_settings_are_reported_at_their_line(write_policy, extra, fragment):
    assert_error(errors_of(write_policy, WARN.format(extra=extra)), 7, fragment)


def test_warn_settings_belong_to_warn_rules(write_policy):
    text = WARN.format(extra="    ttl: 5m").replace("action: warn", "action: block")
    assert_error(errors_of(write_policy, text), 7, "'ttl' is for action: warn only")


def test_a_warn_rule_decides_warn_and_intercepts(write_policy):
    text = WARN.format(extra="    ttl: 90m\n    justification: required\n    alternative: X")
    policy = load_policy(write_policy(text).parent)
    coaching = policy.rules[0].coaching
    assert (coaching.ttl, coaching.justification, coaching.alternative) == (5400, "required", "X")
    engine = Engine(policy)
    request = engine.decide_request("POST", "chatgpt.com", "/backend-api/conversation")
    assert (request.action, request.coaching, request.message) == (
        "warn",
        coaching,
        policy.rules[0].message,
    )
    assert engine.decide_connect("chatgpt.com").connect == "intercept"
    edited = load_policy(write_policy(text.replace("90m", "2h")).parent).rules[0].coaching
    assert edited.digest != coaching.digest  # grants made under the old rule lapse


def test_a_ticket_nobody_followed_is_swept_once(store):
    ticket, _ = issue(store)
    store._writer.execute("UPDATE tickets SET expires = 0")  # as if ten minutes had passed
    assert store.ticket(ticket.token) is None and store.use(ticket.token) is None
    tickets, grants = store.sweep()
    assert [t.token for t in tickets] == [ticket.token] and grants == []
    assert store.sweep() == ([], [])
