"""The addons, built together and in the order their hooks must run.

Each addon gets the objects it works with when it is built (the gate, the client facts, the
recorder, the answers); none looks another up by name. mitmproxy calls a hook on the addons
in the order they were added, which is the order of `Pipeline.addons`:

1. admin: binds its listener in `running` before the policy addon protects its address;
2. recorder: opens the audit log before anything is recorded, and on shutdown lets
   discovery write its last window before closing it;
3. policy: the policy is in the gate before the first connection;
4. kerberos: after mitmproxy's proxyauth (Basic), whose 407 it lifts for a good Negotiate
   token, and before anything reads the user;
5. identity: who is behind the CONNECT and each request (from proxy authentication, trusted
   headers or the address map), before anything decides them; then directory: that user's
   groups, from LDAP;
6. proxy TLS, then admission: TLS to the proxy itself (required?) before the client's first
   bytes are chosen a layer; the client, CONNECT, ClientHello and raw bytes;
7. coaching: answers the proxy's own /.aiwarden/ pages before anything decides them;
8. enforcement: each request at its headers; then tenant headers, on what it let through;
9. unlisted AI, then redaction: the body, once whole (a request is for one or the other);
10. upstream: server connections, server errors, protocol switches; it streams every answer,
    then restoration holds or reads the answers of requests redacted with `restore: true`;
11. deadlines: after admission (whose tunnel choice ends the client's header deadline) and
   after redaction (the server's deadline starts once the request is about to leave);
12. discovery: last, it counts what the others let through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from proxy.decide.gate import Gate
from proxy.mitm.admission import Admission
from proxy.mitm.answers import Answers
from proxy.mitm.coaching import Coaching
from proxy.mitm.deadlines import Deadlines
from proxy.mitm.directory_groups import DirectoryGroups
from proxy.mitm.discovery import Discovery
from proxy.mitm.enforcement import Enforcement
from proxy.mitm.identity import Identity
from proxy.mitm.kerberos import Kerberos
from proxy.mitm.policy_in_force import PolicyInForce
from proxy.mitm.proxy_tls import ProxyTLS
from proxy.mitm.recording import Recorder
from proxy.mitm.redaction import Redaction
from proxy.mitm.restoration import Restoration
from proxy.mitm.state import Clients
from proxy.mitm.tenants import TenantHeaders
from proxy.mitm.unlisted import UnlistedAI
from proxy.mitm.upstream import Upstream
from proxy.policy.model import Policy
from proxy.serve.admin import AdminServer


@dataclass
class Pipeline:
    gate: Gate
    clients: Clients
    recorder: Recorder
    answers: Answers
    admin: AdminServer | None
    policy: PolicyInForce
    kerberos: Kerberos
    identity: Identity
    directory: DirectoryGroups
    proxy_tls: ProxyTLS
    admission: Admission
    coaching: Coaching
    enforcement: Enforcement
    tenants: TenantHeaders
    unlisted: UnlistedAI
    redaction: Redaction
    upstream: Upstream
    restoration: Restoration
    deadlines: Deadlines
    discovery: Discovery

    @property
    def addons(self) -> list:
        """The addons, in hook order (see the module's docstring)."""
        ordered = [
            self.admin,
            self.recorder,
            self.policy,
            self.kerberos,
            self.identity,
            self.directory,
            self.proxy_tls,
            self.admission,
            self.coaching,
            self.enforcement,
            self.tenants,
            self.unlisted,
            self.redaction,
            self.upstream,
            self.restoration,
            self.deadlines,
            self.discovery,
        ]
        return [addon for addon in ordered if addon is not None]


def build(
    protect: Iterable[tuple[str, int]] = (),
    admin: bool = True,
    warns: bool = True,
    preloaded: tuple[str, Policy] | None = None,
) -> Pipeline:
    """Every addon of aiwarden, wired. `protect`: addresses besides its own listeners the
    proxy never connects to (a worker's supervisor's admin listener); `admin`: serve the
    admin listener from this process (a worker leaves it to its supervisor); `warns`: log
    the start's warnings about the options (`aiwarden run` logs them once, itself);
    `preloaded`: the policy path and the policy `aiwarden run` already loaded from it."""
    clients = Clients()
    recorder = Recorder(clients)
    gate = Gate(protect, timed=recorder.metrics.timed)
    answers = Answers(gate, recorder)
    coaching = Coaching(gate, clients, recorder, answers)
    identity = Identity(clients, lambda: gate.policy)
    admin_server = AdminServer(gate, recorder, coaching, identity) if admin else None
    unlisted = UnlistedAI(gate, recorder, answers)
    redaction = Redaction(gate, recorder, answers)
    return Pipeline(
        gate=gate,
        clients=clients,
        recorder=recorder,
        answers=answers,
        admin=admin_server,
        policy=PolicyInForce(gate, recorder, admin_server, preloaded),
        kerberos=Kerberos(clients, recorder),
        identity=identity,
        directory=DirectoryGroups(clients, recorder, lambda: gate.policy),
        proxy_tls=ProxyTLS(recorder, warns),
        admission=Admission(gate, clients, recorder, answers),
        coaching=coaching,
        enforcement=Enforcement(gate, clients, recorder, answers, unlisted, redaction, coaching),
        tenants=TenantHeaders(gate, recorder),
        unlisted=unlisted,
        redaction=redaction,
        upstream=Upstream(gate, clients, recorder, answers),
        restoration=Restoration(recorder.metrics),
        deadlines=Deadlines(recorder),
        discovery=Discovery(gate, recorder),
    )
