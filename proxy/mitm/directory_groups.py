"""Directory groups: the groups of the user behind a CONNECT or request, from LDAP, before
anything decides it (the policy's `identity.directory:`; identity/directory.py asks).

It runs after identity.py has named the user (from proxy authentication, Basic or Kerberos,
a trusted header or the address map) and adds the user's directory groups to who they are
(`FlowState.who`, and the client connection's for a CONNECT). An answer in the cache is
added at once; otherwise the hook returns an awaitable, which mitmproxy awaits before the
next addon's hook, so the request waits for its groups (asked in a thread) while the event
loop serves everyone else. Inside a tunnel, the groups found at the CONNECT hold, as the
user does, unless the directory could not give them then (each request asks again).

When the look-up itself goes wrong in a way nobody foresaw, the groups are unknown, as when
the directory is down: never decided as "in no group" by accident.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from mitmproxy import http

from proxy.identity.directory import GroupCache, Groups
from proxy.identity.who import GroupsUnknown, Who
from proxy.mitm.recording import Recorder
from proxy.mitm.state import Clients, state_of
from proxy.policy.directory import DirectorySettings
from proxy.policy.model import Policy

logger = logging.getLogger("aiwarden")
ANSWERED = ("cache", "directory", "not_found")  # outcomes the directory itself gave


class DirectoryGroups:
    def __init__(
        self, clients: Clients, recorder: Recorder, policy: Callable[[], Policy | None]
    ) -> None:
        """`policy()`: the policy in force (its `identity.directory:` settings)."""
        self.clients = clients
        self.recorder = recorder
        self._policy = policy
        self._cache: GroupCache | None = None

    def done(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def cache(self) -> GroupCache | None:
        """The cache for the directory settings in force; a reload that changes them starts
        a new one (answers from another directory, or under another filter, do not count)."""
        policy = self._policy()
        settings: DirectorySettings | None = policy.identity.directory if policy else None
        cache = self._cache
        if cache is not None and cache.settings is not settings:
            if cache.settings == settings:  # a reload that left the block as it was
                cache.settings = settings  # (compared by identity from now on)
            else:
                cache.close()
                cache = self._cache = None
        if cache is None and settings is not None:
            cache = self._cache = GroupCache(settings, self._count)
        return cache

    def _count(self, metric: str, label: str) -> None:
        if metric == "lookups":
            self.recorder.metrics.directory_lookups(label).inc()
        else:
            self.recorder.metrics.directory_queries(label).inc()

    def fresh(self, user: str) -> frozenset[str] | None:
        """The user's directory groups when known without waiting (the fast path), else
        None; an empty set when no directory is configured."""
        cache = self.cache()
        return frozenset() if cache is None else cache.fresh(user)

    # -- hooks -------------------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response is not None or flow.error is not None:
            return None  # refused already (a 407): nobody to look up
        return self._fill(flow, connect=True)

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response is not None or flow.error is not None:
            return None
        who = state_of(flow).who
        if who is not None and who.directory in ANSWERED:
            return None  # the CONNECT's, inside its tunnel
        return self._fill(flow, connect=False)  # (asked again while the directory was down)

    def _fill(self, flow: http.HTTPFlow, connect: bool) -> Awaitable[None] | None:
        """Add the user's directory groups to who they are: now when the cache has them,
        else in the awaitable returned, which mitmproxy awaits before the next addon."""
        cache, who = self.cache(), state_of(flow).who
        if cache is None or who is None or not who.user:
            return None
        try:
            found = cache.cached(who.user)
        except Exception:  # unforeseen: unknown groups, never "in no group" by accident
            found = self._failed(cache)
        if found is not None:
            self._set(flow, connect, who, found)
            return None

        async def looked_up() -> None:
            try:
                answer = await cache.groups_of(who.user)
            except Exception:
                answer = self._failed(cache)
            self._set(flow, connect, who, answer)

        return looked_up()

    def _failed(self, cache: GroupCache) -> Groups:
        logger.exception("directory groups: the look-up failed")
        self.recorder.metrics.directory_lookups("on_error").inc()
        if cache.settings.on_error == "no_groups":
            return Groups(frozenset(), "on_error")
        return Groups(GroupsUnknown("the look-up failed"), "on_error")

    def _set(self, flow: http.HTTPFlow, connect: bool, who: Who, found: Groups) -> None:
        named = who.named if who.directory is not None else who.groups  # a trusted header's
        groups = found.groups
        if isinstance(groups, GroupsUnknown):
            groups = GroupsUnknown(groups.why, named)
        else:
            groups = groups | named
        with_groups = Who(who.user, groups, who.source, found.outcome, named)
        state_of(flow).who = with_groups
        if connect:  # for the requests inside its tunnel
            self.clients.of(flow.client_conn).who = with_groups
