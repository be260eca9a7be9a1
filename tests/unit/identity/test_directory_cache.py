"""The directory-groups cache on the event loop: answers kept for the ttl, refreshed in the
background before it runs out, one query for many requests, the last answer within `stale`
while the directory fails, then on_error; and RFC 4515 escaping of what users are called."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

from proxy.identity.directory import DirectoryUnavailable, GroupCache, fill
from proxy.identity.who import GroupsUnknown
from proxy.policy.directory import DirectorySettings


class FakeDirectory:
    """Answers from a dict, or fails while `down`; `gate` holds every query until set."""

    def __init__(self, groups: dict[str, frozenset[str]]) -> None:
        self.groups = groups
        self.down = False
        self.queries: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, user: str) -> frozenset[str] | None:
        self.gate.wait(10)
        self.queries.append(user)
        if self.down:
            raise DirectoryUnavailable("ConnectionRefused from ldap://dc1")
        return self.groups.get(user)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**changes) -> DirectorySettings:
    base = {"servers": ("ldap://dc1",), "base": "dc=corp", "user_filter": "(uid={name})",
            "ttl": 100, "stale": 50}  # fmt: skip
    return DirectorySettings(**{**base, **changes})


def make(on_error: str = "block"):
    directory = FakeDirectory({"alice": frozenset({"ai-users"})})
    clock, counts = Clock(), Counter()
    cache = GroupCache(settings(on_error=on_error), lambda m, label: counts.update([label]),
                       directory, clock)  # fmt: skip
    return cache, directory, clock, counts


def run(coroutine):
    return asyncio.run(coroutine)


def test_an_answer_is_kept_for_the_ttl_and_then_asked_again():
    cache, directory, clock, _counts = make()

    async def scenario():
        first = await cache.groups_of("alice")
        clock.now += 50
        second = await cache.groups_of("Alice")  # user names compare without case
        clock.now += 51
        third = await cache.groups_of("alice")
        return first, second, third

    first, second, third = run(scenario())
    assert first.groups == second.groups == third.groups == {"ai-users"}
    assert (first.outcome, second.outcome, third.outcome) == ("directory", "cache", "directory")
    assert directory.queries == ["alice", "alice"]
    cache.close()


def test_an_answer_past_three_quarters_of_its_ttl_is_refreshed_in_the_background():
    cache, directory, clock, _counts = make()

    async def scenario():
        await cache.groups_of("alice")
        directory.groups["alice"] = frozenset({"pilot"})
        clock.now += 80
        served = await cache.groups_of("alice")  # the old answer, at once
        for _ in range(100):  # the refresh runs in a thread
            if cache.fresh("alice") == {"pilot"}:
                break
            await asyncio.sleep(0.01)
        return served

    assert run(scenario()).groups == {"ai-users"}
    assert cache.fresh("alice") == {"pilot"} and len(directory.queries) == 2
    cache.close()


def test_concurrent_requests_for_one_user_share_one_query():
    cache, directory, _clock, _counts = make()
    directory.gate.clear()

    async def scenario():
        waiting = [asyncio.create_task(cache.groups_of("alice")) for _ in range(20)]
        await asyncio.sleep(0.05)
        directory.gate.set()
        return await asyncio.gather(*waiting)

    answers = run(scenario())
    assert {a.groups for a in answers} == {frozenset({"ai-users"})}
    assert directory.queries == ["alice"]
    cache.close()


@pytest.mark.parametrize("on_error", ["block", "no_groups"])
def test_a_failing_directory_serves_the_last_answer_within_stale_then_on_error(on_error):
    cache, directory, clock, counts = make(on_error)

    async def settled():  # the queries in the background are done
        for _ in range(500):
            if not cache._pending:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("a query never ended")

    async def scenario():
        await cache.groups_of("alice")
        directory.down = True
        clock.now += 120  # past the ttl (100), within stale (50 more): the query fails
        stale = await cache.groups_of("alice")
        clock.now += 40  # past ttl + stale
        failed = await cache.groups_of("alice")  # known down: answered at once
        never_seen = await cache.groups_of("bob")  # no answer to fall back on
        await settled()
        directory.down = False  # back: a query in the background notices
        still = await cache.groups_of("alice")
        await settled()
        back = await cache.groups_of("alice")
        return stale, failed, never_seen, still, back

    stale, failed, never_seen, still, back = run(scenario())
    assert (stale.groups, stale.outcome) == ({"ai-users"}, "stale")
    assert failed.outcome == never_seen.outcome == still.outcome == "on_error"
    assert failed.groups == never_seen.groups == frozenset()
    assert isinstance(failed.groups, GroupsUnknown) == (on_error == "block")
    assert (back.groups, back.outcome) == ({"ai-users"}, "cache")
    assert counts["failed"] == 3 and counts["stale"] == 1 and counts["on_error"] == 3
    assert cache.reachable is True
    cache.close()


def test_a_user_the_directory_does_not_have_is_in_no_group():
    cache, _directory, _clock, _counts = make()
    answer = run(cache.groups_of("mallory"))
    assert (answer.groups, answer.outcome) == (frozenset(), "not_found")
    assert not isinstance(answer.groups, GroupsUnknown)
    cache.close()


def test_names_are_escaped_per_rfc_4515_in_filters():
    assert fill("(uid={name})", {"name": "*"}) == r"(uid=\2a)"
    assert fill("(uid={name})", {"name": "a)(uid=*"}) == r"(uid=a\29\28uid=\2a)"
    assert fill("(member={dn})", {"dn": r"cn=Doe\, John,dc=x"}) == r"(member=cn=Doe\5c, John,dc=x)"
