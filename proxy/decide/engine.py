"""Turns (client, user, method, host, path) into a decision, fast, and says why.

Everything is compiled when the engine is built: services are indexed by host pattern with
their path and activity patterns compiled per service; rules are indexed by the services they
can match and by their own host patterns, so a request only ever looks at the few rules that
could concern it.

Two stages:
- `decide_connect` sees only the CONNECT host (and SNI): it says whether the connection can be
  relayed without decryption (`tunnel`), must be opened because the decision needs the request
  or a block page must be shown (`intercept`), or can be refused outright (`refuse`).
- `decide_request` sees the whole request line and gives the final action.

One more look, at the body, for requests that no catalogued service and no rule naming the
host decided: `decide_unlisted` turns an LLM-shaped body (llm_shape.py) into the policy's
`unlisted_ai` decision.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

from proxy.decide.llm_shape import describe
from proxy.decide.verdict import Action, Decision, Mode, Stage
from proxy.identity.who import GroupsUnknown
from proxy.policy.catalog import Service
from proxy.policy.loader import gc_paused
from proxy.policy.model import DEFAULT_RULE_ID, UNLISTED_RULE_ID, Policy, Rule, services_matching
from proxy.policy.normalize import BadHost, IPAddress, normalize_host, normalize_path, parse_ip
from proxy.policy.patterns import HostIndex, HostPattern, compile_path_patterns
from proxy.policy.tenants import Tenant

UNLISTED_CATEGORY = "unlisted-ai"  # the category of an unlisted AI endpoint's decisions
_NO, _MAYBE, _YES = 0, 1, 2
DIRECTORY_RULE = "identity.directory"  # the rule id of a block for want of directory groups


class _Route:
    """A service as seen on one of its host patterns: where it applies and its activities.

    A request's activity is found with one regex: the path patterns of the activities that
    can apply to its method (and host, for activities limited to some hosts), one group each,
    in file order, so the first that matches names the activity. That regex is chosen at the
    first request of each method (and host) and remembered (bounded); each selection of
    activities is compiled once."""

    __slots__ = (
        "_by_host", "_by_method", "_compiled", "activities", "activity_names", "host_scoped",
        "path_re", "service",
    )  # fmt: skip

    HOSTS = 4096  # hosts whose choice of activities a route remembers
    METHODS = 16  # methods remembered per host
    _NONE = (None, ())  # no activity can apply

    def __init__(self, service: Service) -> None:
        self.service = service
        self.path_re = compile_path_patterns(service.paths) if service.paths else None
        self.activities = tuple(
            (a.name, a.methods, compile_path_patterns(a.paths).pattern, _host_index(a.hosts))
            for a in service.activities
        )
        self.activity_names = frozenset(a.name for a in service.activities)
        self.host_scoped = any(a.hosts for a in service.activities)
        self._by_method: dict[str, tuple[re.Pattern[str] | None, tuple[str, ...]]] = {}
        self._by_host: dict[str, dict[str, tuple[re.Pattern[str] | None, tuple[str, ...]]]] = {}
        self._compiled: dict[tuple[int, ...], tuple[re.Pattern[str] | None, tuple[str, ...]]] = {}

    def activity(self, method: str, host: str, path: str) -> str | None:
        """The activity of a request (method upper-case, host and path canonical), if any."""
        if not self.activities:
            return None
        if self.host_scoped:
            by_method = self._by_host.get(host)
            if by_method is None:
                by_method = {}
                if len(self._by_host) < self.HOSTS:
                    self._by_host[host] = by_method
        else:
            by_method = self._by_method
        matcher = by_method.get(method)
        if matcher is None:
            matcher = self._matcher(method, host)
            if len(by_method) < self.METHODS:  # a client may send any method name
                by_method[method] = matcher
        regex, names = matcher
        if regex is None:
            return None
        found = regex.fullmatch(path)
        return names[found.lastindex] if found else None

    def _matcher(self, method: str, host: str) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
        chosen = tuple(
            i
            for i, (_name, methods, _source, hosts) in enumerate(self.activities)
            if (methods is None or method in methods) and (hosts is None or hosts.lookup(host))
        )
        matcher = self._compiled.get(chosen)
        if matcher is None:
            if not chosen:
                matcher = self._NONE
            else:  # group n (1-based) is the n-th chosen activity; the patterns have no groups
                source = "|".join(f"({self.activities[i][2]})" for i in chosen)
                names = ("", *(self.activities[i][0] for i in chosen))
                matcher = (re.compile(source, re.IGNORECASE), names)
            self._compiled[chosen] = matcher
        return matcher


def _host_index(hosts: tuple[HostPattern, ...]) -> HostIndex[bool] | None:
    if not hosts:
        return None
    index: HostIndex[bool] = HostIndex()
    for host in hosts:
        index.add(host, True)
    return index


class _Who:
    __slots__ = ("directory", "networks", "users")

    def __init__(self, networks: tuple, users: frozenset[str], directory: frozenset[str]) -> None:
        self.networks, self.users, self.directory = networks, users, directory

    def contains(self, ip: IPAddress | None, user: str | None, groups: frozenset[str]) -> bool:
        """By address, by user name, or by a directory group the user is in (`groups`,
        lower-cased, as an identity source named them)."""
        if user is not None and user in self.users:
            return True
        if groups and not self.directory.isdisjoint(groups):
            return True
        return ip is not None and any(ip in net for net in self.networks)

    def unknown(self, ip: IPAddress | None, user: str | None, groups: frozenset[str]) -> bool:
        """Whether membership hinges on directory groups the directory could not give."""
        return (
            isinstance(groups, GroupsUnknown)
            and bool(self.directory)
            and not self.contains(ip, user, groups)
        )


class _CompiledRule:
    __slots__ = (
        "activities",
        "index",
        "matched",
        "methods",
        "path_re",
        "rule",
        "services",
        "summary",
        "who",
    )

    def __init__(self, index: int, rule: Rule, policy: Policy) -> None:
        m = rule.match
        self.index, self.rule, self.summary = index, rule, m.summary()
        self.matched = f"rule {rule.id!r} ({self.summary}) matched"
        by_service = any(v is not None for v in (m.services, m.vendors, m.countries, m.categories))
        self.services = (
            frozenset(s.id for s in services_matching(m, policy.services)) if by_service else None
        )
        self.activities = m.activities
        self.methods = m.methods
        self.path_re = compile_path_patterns(m.paths) if m.paths else None
        self.who = None
        if m.groups is not None or m.users is not None:
            groups = [policy.groups[g] for g in m.groups or ()]
            networks = tuple(net for g in groups for net in g.cidrs)
            users = frozenset(m.users or ()).union(*(g.users for g in groups))
            directory = frozenset().union(*(g.directory for g in groups))
            self.who = _Who(networks, users, directory)

    def matches(
        self,
        sid: str | None,
        activity: str | None,
        method: str,
        path: str,
        ip: IPAddress | None,
        user: str | None,
        groups: frozenset[str] = frozenset(),
    ) -> bool:
        return self._request_matches(sid, activity, method, path) and (
            self.who is None or self.who.contains(ip, user, groups)
        )

    def hinges_on_unknown_groups(
        self,
        sid: str | None,
        activity: str | None,
        method: str,
        path: str,
        ip: IPAddress | None,
        user: str | None,
        groups: frozenset[str],
    ) -> bool:
        """Whether the rule would match this request but for directory groups that are
        unknown (GroupsUnknown: the directory is down and its on_error is block)."""
        return (
            self.who is not None
            and self.who.unknown(ip, user, groups)
            and self._request_matches(sid, activity, method, path)
        )

    def _request_matches(
        self, sid: str | None, activity: str | None, method: str, path: str
    ) -> bool:
        return not (
            (self.services is not None and sid not in self.services)
            or (self.activities is not None and activity not in self.activities)
            or (self.methods is not None and method not in self.methods)
            or (self.path_re is not None and not self.path_re.fullmatch(path))
        )

    def could_match(
        self,
        possible: list[_Route | None],
        ip: IPAddress | None,
        user: str | None,
        groups: frozenset[str] = frozenset(),
    ) -> int:
        """Whether the rule matches some/all requests to a host whose routes are `possible`.
        Membership that hinges on unknown directory groups is a maybe: each request is
        decided (and blocked, if this rule would decide it)."""
        state = _YES
        if self.who is not None and not self.who.contains(ip, user, groups):
            if not self.who.unknown(ip, user, groups):
                return _NO
            state = _MAYBE
        if self.services is not None:
            hits = sum(1 for r in possible if r is not None and r.service.id in self.services)
            if not hits:
                return _NO
            if hits < len(possible):
                state = _MAYBE
        if self.activities is not None:
            if not any(r is not None and r.activity_names & self.activities for r in possible):
                return _NO
            state = _MAYBE
        if self.methods is not None or self.path_re is not None:
            state = _MAYBE
        return state


class Engine:
    """The compiled form of a Policy. Immutable: a new policy means a new Engine."""

    LOOKUP_CACHE = 1 << 16  # hosts whose index look-ups are remembered

    def __init__(self, policy: Policy) -> None:
        with gc_paused():
            self._build(policy)

    def _build(self, policy: Policy) -> None:
        self.policy = policy
        self.services = {s.id: s for s in policy.services}
        routes: HostIndex[_Route] = HostIndex()
        for service in policy.services:
            route = _Route(service)
            for host in service.hosts:
                routes.add(host, route)
        rules = [_CompiledRule(i, r, policy) for i, r in enumerate(policy.rules)]
        rules_by_host: HostIndex[_CompiledRule] = HostIndex()
        unhosted = []
        # a rule allowing hosts by name approves them, so it wins over the body check (one
        # monitoring them only looks inside: their bodies are still checked)
        self._host_allows = frozenset(
            r.rule.id for r in rules if r.rule.match.hosts and r.rule.action == "allow"
        )
        for rule in rules:
            if rule.rule.match.hosts:
                for host in rule.rule.match.hosts:
                    rules_by_host.add(host, rule)
            else:
                unhosted.append(rule)
        everywhere = tuple(r for r in unhosted if r.services is None)
        self._rules_by_service: dict[str | None, tuple[_CompiledRule, ...]] = {None: everywhere}
        for sid in self.services:
            self._rules_by_service[sid] = tuple(
                r for r in unhosted if r.services is None or sid in r.services
            )
        # Traffic goes to few hosts many times: remember their look-ups (bounded).
        self._routes_of = lru_cache(self.LOOKUP_CACHE)(lambda h: tuple(routes.lookup(h)))
        self._hosted_rules_of = (
            lru_cache(self.LOOKUP_CACHE)(lambda h: tuple(rules_by_host.lookup(h)))
            if rules_by_host
            else lambda h: ()
        )
        tenants: HostIndex[Tenant] = HostIndex()
        for tenant in policy.tenants:
            for pattern in tenant.control.host_patterns():
                tenants.add(pattern, tenant)
        self._tenants_of = (
            lru_cache(self.LOOKUP_CACHE)(lambda h: tuple(tenants.lookup(h)))
            if policy.tenants
            else lambda h: ()
        )
        self._decisions: dict[tuple, Decision] = {}
        d = policy.defaults
        self._no_rule_reason = f"no rule matched; the default action is {d.action}"

    # -- the request stage ----------------------------------------------------------------------

    def decide_request(
        self,
        method: str,
        host: str,
        path: str,
        client: str | None = None,
        user: str | None = None,
        groups: frozenset[str] = frozenset(),
    ) -> Decision:
        """The action for one HTTP request (plain, or inside an intercepted connection).
        `groups`: the user's directory groups, lower-cased, as an identity source named them."""
        try:
            host = normalize_host(host)
        except BadHost as e:
            return self.error_decision("request", f"unreadable host: {e}")
        path = normalize_path(path)
        method = method.upper()
        route = self._route(host, path)
        sid = route.service.id if route else None
        activity = route.activity(method, host, path) if route else None
        ip = parse_ip(client) if client else None
        decision = None
        unknown = isinstance(groups, GroupsUnknown)
        for rule in self._candidate_rules(host, (sid,)):
            if rule.matches(sid, activity, method, path, ip, user, groups):
                decision = self._decision(rule.rule, "request", route, activity, rule.matched)
                break
            if unknown and rule.hinges_on_unknown_groups(
                sid, activity, method, path, ip, user, groups
            ):
                decision = self._groups_unknown(rule.rule, route, activity, groups)
                break
        else:
            decision = self._decision(None, "request", route, activity, self._no_rule_reason)
        if decision.action is not Action.BLOCK and (tenants := self._tenants_of(host)):
            return self._tenant_anonymous(tenants, path, decision) or decision
        return decision

    def classify(self, method: str, host: str, path: str) -> tuple[Service | None, str | None]:
        """The catalogued service and activity of a request, if any (host and path raw)."""
        path, method, host = normalize_path(path), method.upper(), normalize_host(host)
        route = self._route(host, path)
        if route is None:
            return None, None
        return route.service, route.activity(method, host, path)

    def _route(self, host: str, path: str) -> _Route | None:
        for route in self._routes_of(host):
            if route.path_re is None or route.path_re.fullmatch(path):
                return route
        return None

    # -- the connect stage ------------------------------------------------------------------

    def decide_connect(
        self,
        host: str,
        client: str | None = None,
        user: str | None = None,
        groups: frozenset[str] = frozenset(),
    ) -> Decision:
        """How to handle a CONNECT (or a TLS ClientHello's SNI) to `host`. A host that gets
        a tenant-restriction header is never tunnelled: each request must carry it."""
        try:
            host = normalize_host(host)
        except BadHost as e:
            return self.error_decision("connect", f"unreadable host: {e}")
        decision = self._decide_connect(host, client, user, groups)
        if decision.connect is Mode.TUNNEL and (tenants := self._tenants_of(host)):
            key = ("tenant-intercept", decision, tenants)
            intercepted = self._decisions.get(key)
            if intercepted is None:
                headers = ", ".join(t.control.header for t in tenants)
                intercepted = self._decisions[key] = replace(
                    decision,
                    connect=Mode.INTERCEPT,
                    reason=f"{decision.reason}; intercepted to set the tenant header {headers}",
                )
            return intercepted
        return decision

    def tenants_of(self, host: str) -> tuple[Tenant, ...]:
        """The tenant restrictions whose header a request to this canonical host carries."""
        return self._tenants_of(host)

    def _tenant_anonymous(
        self, tenants: tuple[Tenant, ...], path: str, decided: Decision
    ) -> Decision | None:
        """Logged-out use of a service whose tenant is restricted bypasses the tenant: the
        block decision for such a path (`decided` otherwise), else None."""
        lower = path.lower()  # as the catalog's paths: any case, and no trailing slash
        for tenant in tenants:
            control = tenant.control
            if any(lower.startswith(p) or lower == p[:-1] for p in control.anonymous_paths):
                key = ("tenant-anonymous", control.vendor, decided)
                decision = self._decisions.get(key)
                if decision is None:
                    decision = self._decisions[key] = replace(
                        decided,
                        action=Action.BLOCK,
                        rule=f"tenants.{control.vendor}",
                        reason=f"logged-out use bypasses the company's tenant "
                        f"({control.header}); blocked while tenants.{control.vendor} is set",
                        message="Sign in with your company account: logged-out use of this "
                        "service is not allowed.",
                        contact=self.policy.defaults.contact,
                        profile=None,
                    )
                return decision
        return None

    def _decide_connect(
        self, host: str, client: str | None, user: str | None, groups: frozenset[str]
    ) -> Decision:
        possible: list[_Route | None] = []
        for route in self._routes_of(host):
            possible.append(route)
            if route.path_re is None:
                break
        else:
            possible.append(None)
        sids = tuple(r.service.id if r else None for r in possible)
        ip = parse_ip(client) if client else None
        maybe: list[_CompiledRule] = []
        final: _CompiledRule | None = None
        for rule in self._candidate_rules(host, sids):
            state = rule.could_match(possible, ip, user, groups)
            if state == _MAYBE:
                maybe.append(rule)
            elif state == _YES:
                final = rule
                break
        final_rule = final.rule if final else None
        final_action = final_rule.action if final_rule else self.policy.defaults.action
        single = possible[0] if len(possible) == 1 else None
        shared = None
        if len(possible) > 1:
            ids = ", ".join(r.service.id for r in possible if r)
            shared = f"shared host ({ids} on some paths only)"
        if maybe:
            depends = ", ".join(repr(r.rule.id) for r in maybe)
            if all(r.rule.action == "allow" for r in maybe) and final_action == "allow":
                mode, action = Mode.TUNNEL, Action.ALLOW
                reason = f"every rule that could apply ({depends}) allows; relayed undecrypted"
            else:
                mode, action = Mode.INTERCEPT, Action.INSPECT
                reason = f"the outcome depends on each request (rules {depends})"
            return self._decision(None, "connect", single, None, reason, action, mode, shared)
        if final_action == "allow":
            mode = Mode.TUNNEL
        elif final_action == "block":
            block_with = final_rule.block_with if final_rule else self.policy.defaults.block_with
            mode = Mode.REFUSE if block_with == "refuse" else Mode.INTERCEPT
        else:
            mode = Mode.INTERCEPT
        reason = (
            final.matched if final else f"no rule applies; the default action is {final_action}"
        )
        return self._decision(
            final_rule, "connect", single, None, reason, final_action, mode, shared
        )

    # -- the body, toward hosts nothing names -----------------------------------------------

    def checks_body(self, decision: Decision) -> bool:
        """Whether a request so decided has its body looked at for the shape of an LLM API
        call: `unlisted_ai` is not off, no catalogued service is concerned, the request
        would pass (allow or monitor), and no rule allowing its host by name decided it."""
        return (
            decision.service is None
            and decision.action in ("allow", "monitor")
            and decision.stage == "request"
            and decision.rule not in self._host_allows
            and self.policy.unlisted_ai.action != "off"
        )

    def decide_unlisted(
        self, decision: Decision, style: str | None, unchecked: str | None = None
    ) -> Decision | None:
        """The decision for a request whose body is an LLM API call of `style` (or could not
        be checked, and why), made by `decision` before the body was seen; None when the
        body changes nothing."""
        if not self.checks_body(decision):
            return None
        unlisted = self.policy.unlisted_ai
        if style is not None:
            action = unlisted.action
            reason = (
                f"unlisted AI endpoint: {describe(style)} to a host that no catalogued "
                f"service covers and no rule allows by name; unlisted_ai.action is {action}"
            )
        elif unchecked is not None and unlisted.unchecked == "block":
            action = "block"
            reason = (
                f"unlisted AI check: the body could not be checked ({unchecked}); "
                "unlisted_ai.unchecked is block"
            )
        else:
            return None
        defaults = self.policy.defaults
        blocked = action == "block"
        return Decision(
            action=Action(action),
            stage=Stage.REQUEST,
            rule=UNLISTED_RULE_ID,
            reason=reason,
            category=UNLISTED_CATEGORY if style else None,
            activity="prompt" if style else None,
            message=(unlisted.message or defaults.message) if blocked else None,
            contact=defaults.contact if blocked else None,
            style=style,
        )

    # -- shared ---------------------------------------------------------------------------------

    def _candidate_rules(
        self, host: str, sids: tuple[str | None, ...]
    ) -> tuple[_CompiledRule, ...] | list[_CompiledRule]:
        by_service = self._rules_by_service
        hosted = self._hosted_rules_of(host)
        if len(sids) == 1 and not hosted:
            return by_service[sids[0]]
        rules = {r for sid in sids for r in by_service[sid]}
        rules.update(hosted)
        return sorted(rules, key=lambda r: r.index)

    def _decision(
        self,
        rule: Rule | None,
        stage: str,
        route: _Route | None,
        activity: str | None,
        reason: str,
        action: str | None = None,
        connect: str | None = None,
        target: str | None = None,
    ) -> Decision:
        """The Decision for these facts; made once and then shared (decisions are immutable)."""
        # the rule by its id: unique in a policy, and hashing a string is cheaper than a Rule
        key = (rule.id if rule else None, stage, route, activity, reason, action, connect, target)
        decision = self._decisions.get(key)
        if decision is not None:
            return decision
        defaults = self.policy.defaults
        action = action or (rule.action if rule else defaults.action)
        service = route.service if route else None
        if target is None:
            target = f"service {service.id} ({service.category})" if service else "no AI service"
        if activity:
            target += f", activity {activity}"
        blocked = action in ("block", "warn")  # a warning shows the message too
        decision = Decision(
            action=Action(action),
            stage=Stage(stage),
            rule=rule.id if rule else DEFAULT_RULE_ID,
            reason=f"{target}: {reason}",
            service=service.id if service else None,
            category=service.category if service else None,
            vendor=service.vendor if service else None,
            country=service.country if service else None,
            activity=activity,
            connect=connect,
            message=(rule.message if rule else defaults.message) if blocked else None,
            contact=(rule.contact if rule else defaults.contact) if blocked else None,
            profile=rule.redact if rule and action == "redact" else None,
            coaching=rule.coaching if rule and action == "warn" else None,
            audit=bool(rule and rule.audit and action == "allow"),
        )
        if len(self._decisions) < 100_000:  # bounded: reasons can name many rule sets
            self._decisions[key] = decision
        return decision

    def _groups_unknown(
        self, rule: Rule, route: _Route | None, activity: str | None, groups: GroupsUnknown
    ) -> Decision:
        """A request that `rule` would decide if the user were in its directory groups, which
        the directory could not give: blocked (the directory's on_error is block), as the
        rule might have refused it; requests no group rule could decide pass as usual."""
        defaults = self.policy.defaults
        service = route.service if route else None
        return Decision(
            action=Action.BLOCK,
            stage=Stage.REQUEST,
            rule=DIRECTORY_RULE,
            reason=f"rule {rule.id!r} names directory groups, and the user's are unknown: "
            f"{groups.why}; on_error is block",
            service=service.id if service else None,
            category=service.category if service else None,
            vendor=service.vendor if service else None,
            country=service.country if service else None,
            activity=activity,
            message=defaults.message,
            contact=defaults.contact,
        )

    def error_decision(self, stage: str, why: str) -> Decision:
        """The decision when deciding failed: the policy's on_error action."""
        d = self.policy.defaults
        blocks = d.on_error == "block"
        connect = (Mode.REFUSE if blocks else Mode.TUNNEL) if stage == Stage.CONNECT else None
        return Decision(
            action=Action(d.on_error),
            stage=Stage(stage),
            rule=DEFAULT_RULE_ID,
            reason=f"{why}; on_error is {d.on_error}",
            connect=connect,
            message=d.message if d.on_error == "block" else None,
            contact=d.contact if d.on_error == "block" else None,
        )
