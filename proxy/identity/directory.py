"""Directory groups: the groups a user is in, asked of LDAP (Active Directory, OpenLDAP).

- `LdapGroups` asks the directory, blocking (ldap3, pure Python, the library mitmproxy's own
  LDAP proxyauth uses): it is only ever called in a thread.
- `GroupCache` answers on the event loop: a user's answer is kept for the policy's `ttl`,
  refreshed in the background once three quarters of it have passed (an active user never
  waits for the directory), and concurrent requests for the same user wait for one query.
  When the directory cannot answer, the last answer keeps serving for `stale` seconds past
  its ttl; after that the user's groups are unknown, and `on_error` decides (`block`: what
  a rule naming directory groups would decide is blocked, see decide/engine.py;
  `no_groups`: decided as for a user in no group). Once a query has failed, requests no
  longer wait for the directory (a server that drops packets would hold each for the
  timeout): they are answered so at once, while a query in the background watches for the
  directory's return.

Every answer is counted in `aiwarden_directory_lookups_total{outcome}` and every query of
the directory in `aiwarden_directory_queries_total{result}`; the directory becoming
unreachable, and reachable again, is logged once per change, never per request. The bind
password is in no log line, metric or exception text this module writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from proxy.identity.who import GroupsUnknown
from proxy.policy.directory import DN_ASSERTION, IN_CHAIN, DirectorySettings
from proxy.policy.identity import bare_name

logger = logging.getLogger("aiwarden")

THREADS = 4  # directory queries at once, per process
MAX_USERS = 50_000  # answers kept; beyond, the ones past their stale window go first
REFRESH_AT = 0.75  # of the ttl: an answer older than this is refreshed in the background
MAX_GROUPS = 1000  # groups kept for one user


class DirectoryUnavailable(Exception):
    """The directory could not be asked (no server reachable, the bind refused, a timeout).
    Its text names the server and the error's kind, never a credential."""


# -- asking the directory (in a thread) ----------------------------------------------------------


class LdapGroups:
    """One look-up: find the user's entry, then its groups (and, nested, theirs)."""

    def __init__(self, settings: DirectorySettings) -> None:
        self.settings = settings

    def __call__(self, user: str) -> frozenset[str] | None:
        """The user's group names, lower-cased; None when the directory has no such user.
        Raises DirectoryUnavailable."""
        conn = self._connect()
        try:
            return self._groups_of(conn, user)
        except LDAPException as e:
            raise DirectoryUnavailable(f"{type(e).__name__} from {conn.server.host}") from None
        finally:
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.unbind()

    def _connect(self) -> ldap3.Connection:
        """A bound connection to the first server that answers."""
        s = self.settings
        why = "no server"
        for url in s.servers:
            parts = urlsplit(url)
            secure = parts.scheme == "ldaps"
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=s.ca_file,
                version=ssl.PROTOCOL_TLS_CLIENT,
                valid_names=[parts.hostname],  # ldap3 checks the name itself: DNS names only
                sni=parts.hostname,
            )
            server = ldap3.Server(
                parts.hostname,
                port=parts.port or (636 if secure else 389),
                use_ssl=secure,
                tls=tls if secure or s.start_tls else None,
                get_info=ldap3.NONE,
                connect_timeout=s.timeout,
            )
            conn = ldap3.Connection(
                server,
                user=s.bind_dn,
                password=s.password if s.bind_dn else None,
                auto_bind=ldap3.AUTO_BIND_NONE,
                auto_referrals=False,
                receive_timeout=s.timeout,
                raise_exceptions=True,
                auto_escape=False,  # the filters are escaped here, per RFC 4515
                read_only=True,
            )
            try:
                conn.open()
                if s.start_tls:
                    conn.start_tls()
                conn.bind()
                return conn
            except LDAPException as e:
                why = f"{type(e).__name__} from {url}"
                with contextlib.suppress(Exception):  # closing what failed to open
                    conn.unbind()
        raise DirectoryUnavailable(why)

    def _groups_of(self, conn: ldap3.Connection, user: str) -> frozenset[str] | None:
        s = self.settings
        fields = {"user": user, "name": bare_name(user) or user}
        attributes = ["memberOf"] if s.groups_from == "member_of" else []
        entries = _search(conn, s.base, fill(s.user_filter, fields), ldap3.SUBTREE, attributes,
                          size_limit=2)  # fmt: skip
        if len(entries) != 1:
            if entries:  # two entries for one user: the filter is too wide; trust neither
                _log(logging.WARNING, "directory_user_ambiguous", filter=s.user_filter)
            return None
        dn = entries[0]["dn"]
        if s.groups_from == "member_of":
            return self._from_member_of(conn, entries[0]["attributes"].get("memberOf") or [])
        return self._from_search(conn, {**fields, "dn": dn})

    def _from_search(self, conn: ldap3.Connection, fields: dict[str, str]) -> frozenset[str]:
        s = self.settings
        base = s.group_base or s.base
        template = s.group_filter
        if s.nested == "in_chain":
            template = DN_ASSERTION.sub(rf"(\1:{IN_CHAIN}:={{dn}})", template)
        names: dict[str, str] = {}  # group dn -> name
        frontier = [fields]
        depth = s.max_depth if s.nested == "iterative" else 1
        for _ in range(depth):
            found: list[str] = []
            for values in frontier:
                filled = fill(template, values)
                for entry in _search(conn, base, filled, ldap3.SUBTREE, [s.group_name]):
                    if entry["dn"] in names:
                        continue
                    names[entry["dn"]] = _first(entry["attributes"].get(s.group_name))
                    found.append(entry["dn"])
            if not found or len(names) >= MAX_GROUPS:
                break
            frontier = [{**fields, "dn": dn} for dn in found]
        return _lowered(names.values())

    def _from_member_of(self, conn: ldap3.Connection, dns: list[str]) -> frozenset[str]:
        s = self.settings
        names: dict[str, str] = {}
        frontier = list(dns)
        depth = s.max_depth if s.nested == "iterative" else 1
        for level in range(depth):
            found: list[str] = []
            for dn in frontier:
                if dn in names or len(names) >= MAX_GROUPS:
                    continue
                names[dn] = self._name_of(conn, dn)
                if s.nested == "iterative" and level + 1 < depth:
                    for entry in _search(conn, dn, "(objectClass=*)", ldap3.BASE, ["memberOf"]):
                        found += entry["attributes"].get("memberOf") or []
            frontier = found
            if not frontier:
                break
        return _lowered(names.values())

    def _name_of(self, conn: ldap3.Connection, dn: str) -> str:
        """A group's name: its first RDN when that is the name attribute (no query), else
        the attribute read from its entry."""
        attribute, value, _ = parse_dn(dn)[0]
        if attribute.lower() == self.settings.group_name.lower():
            return value
        name = self.settings.group_name
        for entry in _search(conn, dn, "(objectClass=*)", ldap3.BASE, [name]):
            return _first(entry["attributes"].get(name))
        return ""


def _search(
    conn: ldap3.Connection,
    base: str,
    query: str,
    scope: str,
    attributes: list[str],
    size_limit: int = 0,
) -> list[dict]:
    """The entries a search finds. An answer the server cut short (a size or time limit;
    ldap3 raises for the other errors) is no answer: groups left out of it could be the ones
    a rule blocks, so it counts as the directory failing. Only the user's search, which asks
    for at most `size_limit` entries to see whether it finds one, may be cut. A referral
    (a group another domain holds) is not followed: its groups are not this directory's."""
    conn.search(base, query, scope, attributes=attributes, size_limit=size_limit)
    code = conn.result.get("result")
    if code not in (0, 10) and not (size_limit and code == 4):
        why = conn.result.get("description") or code
        raise DirectoryUnavailable(f"an incomplete answer ({why}) from {conn.server.host}")
    return [e for e in conn.response or () if e.get("type") == "searchResEntry"]


def fill(template: str, values: dict[str, str]) -> str:
    """A filter template with each `{field}` replaced by its value escaped per RFC 4515, so
    that a name like `*` or `a)(uid=*` is a name, never filter syntax."""
    return re.sub(r"\{(\w+)\}", lambda m: escape_filter_chars(values[m.group(1)]), template)


def _first(value) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


def _lowered(names) -> frozenset[str]:
    return frozenset(n.lower() for n in names if n)


# -- answering on the event loop ---------------------------------------------------------------


@dataclass(slots=True)
class _Answer:
    groups: frozenset[str]  # empty for a user the directory does not have
    fetched: float  # monotonic time of the directory's answer
    known: bool  # whether the directory has the user


@dataclass(frozen=True, slots=True)
class Groups:
    """What a request is decided with: the groups, and where they came from (`outcome`:
    cache, directory, not_found, stale, on_error)."""

    groups: frozenset[str]
    outcome: str


class GroupCache:
    """Per process: each user's last answer, refreshed off the event loop."""

    def __init__(
        self,
        settings: DirectorySettings,
        count: Callable[[str, str], None],
        lookup: Callable[[str], frozenset[str] | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`count(metric, label)`: `("lookups", outcome)` for each answer, `("queries",
        result)` for each query of the directory (ok, not_found, failed)."""
        self.settings = settings
        self._count = count
        self._lookup = lookup or LdapGroups(settings)
        self._clock = clock
        self._answers: dict[str, _Answer] = {}
        self._pending: dict[str, asyncio.Future[_Answer]] = {}
        self._queries: set[asyncio.Task] = set()  # running, kept from the collector
        self._executor = ThreadPoolExecutor(THREADS, thread_name_prefix="aiwarden-directory")
        self.reachable: bool | None = None  # None: not asked yet

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def fresh(self, user: str) -> frozenset[str] | None:
        """The user's groups when an answer within its ttl is at hand, without waiting (the
        fast path); None otherwise."""
        answer = self._answers.get(user.lower())
        if answer is None or self._clock() - answer.fetched >= self.settings.ttl:
            return None
        return answer.groups

    def cached(self, user: str) -> Groups | None:
        """The user's answer within its ttl, counted, without waiting (an answer past three
        quarters of it is refreshed in the background); None when the directory must be
        asked (`groups_of`)."""
        key = user.lower()
        answer = self._answers.get(key)
        age = self._clock() - answer.fetched if answer is not None else None
        if age is None or age >= self.settings.ttl:
            return None
        if age >= self.settings.ttl * REFRESH_AT and key not in self._pending:
            self._start(key, user).add_done_callback(_consume)  # in the background
        self._count("lookups", "cache")
        return Groups(answer.groups, "cache")

    async def groups_of(self, user: str) -> Groups:
        """The user's groups: cached, or from the directory (one query for everyone who
        asks at once), or, when it fails, the last answer within `stale`, else on_error."""
        if (answer := self.cached(user)) is not None:
            return answer
        key = user.lower()
        pending = self._pending.get(key) or self._start(key, user)
        if self.reachable is False:  # known down: nobody waits for it; the query in the
            pending.add_done_callback(_consume)  # background notices its return
            return self._without_directory(key, "the directory is unreachable")
        try:
            answer = await asyncio.shield(pending)
        except DirectoryUnavailable as e:
            return self._without_directory(key, f"directory unreachable ({e})")
        outcome = "directory" if answer.known else "not_found"
        self._count("lookups", outcome)
        return Groups(answer.groups, outcome)

    def _without_directory(self, key: str, why: str) -> Groups:
        """The last answer within `stale` past its ttl, else on_error."""
        s, kept = self.settings, self._answers.get(key)
        if kept is not None and self._clock() - kept.fetched < s.ttl + s.stale:
            self._count("lookups", "stale")
            return Groups(kept.groups, "stale")
        self._count("lookups", "on_error")
        if s.on_error == "no_groups":
            return Groups(frozenset(), "on_error")
        return Groups(GroupsUnknown(why), "on_error")

    def _start(self, key: str, user: str) -> asyncio.Future[_Answer]:
        """One query for `user`, which concurrent requests for them share."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending[key] = future
        task = loop.create_task(self._query(key, user, future))
        self._queries.add(task)
        task.add_done_callback(self._queries.discard)
        return future

    async def _query(self, key: str, user: str, future: asyncio.Future[_Answer]) -> None:
        loop = asyncio.get_running_loop()
        bound = self.settings.timeout * (len(self.settings.servers) + self.settings.max_depth + 2)
        try:
            found = await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._lookup, user), bound
            )
        except (DirectoryUnavailable, TimeoutError, LDAPException, OSError) as e:
            why = str(e) if isinstance(e, DirectoryUnavailable) else type(e).__name__
            self._count("queries", "failed")
            self._state(False, why)
            future.set_exception(DirectoryUnavailable(why))
        except Exception as e:  # a bug here must not pass for an answer: the same as down
            logger.exception("directory look-up failed")
            self._count("queries", "failed")
            future.set_exception(DirectoryUnavailable(type(e).__name__))
        else:
            self._count("queries", "ok" if found is not None else "not_found")
            self._state(True, None)
            answer = _Answer(found or frozenset(), self._clock(), found is not None)
            self._keep(key, answer)
            future.set_result(answer)
        finally:  # cancelled (a reload replaced this cache): waiters get "no answer"
            self._pending.pop(key, None)
            if not future.done():
                future.set_exception(DirectoryUnavailable("the look-up was cancelled"))

    def _keep(self, key: str, answer: _Answer) -> None:
        if len(self._answers) >= MAX_USERS and key not in self._answers:
            limit = self._clock() - self.settings.ttl - self.settings.stale
            self._answers = {k: a for k, a in self._answers.items() if a.fetched > limit}
            if len(self._answers) >= MAX_USERS:  # all recent: the oldest half goes
                ordered = sorted(self._answers.items(), key=lambda item: item[1].fetched)
                self._answers = dict(ordered[len(ordered) // 2 :])
        self._answers[key] = answer

    def _state(self, reachable: bool, why: str | None) -> None:
        """Log the directory becoming unreachable or reachable again, once per change."""
        if reachable == self.reachable:
            return
        if reachable:
            if self.reachable is not None:
                _log(logging.WARNING, "directory_reachable")
        else:
            _log(logging.ERROR, "directory_unreachable", error=why,
                 stale_seconds=self.settings.stale, on_error=self.settings.on_error)  # fmt: skip
        self.reachable = reachable


def _log(level: int, name: str, **fields: object) -> None:
    """A JSON log event at `level` (observe/logs.py's `event` is for info)."""
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    logger.log(level, f"{name} {text}".rstrip(), extra={"event": name, "fields": fields})


def _consume(future: asyncio.Future) -> None:
    """A background refresh's failure is counted and logged by `_query`; nothing waits."""
    if not future.cancelled():
        future.exception()
