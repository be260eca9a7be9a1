"""Directory groups from a real OpenLDAP slapd on loopback: rules naming directory groups
decide for a user who logged in with Basic against LDAP (mitmproxy's `ldap:` proxyauth) and
for users the address map names, nested groups included (slapd has no in-chain matching rule:
the groups are expanded a level at a time); a membership changed in the directory is seen
once the answer's ttl has passed, not before; with slapd stopped, the last answer serves for
`stale_seconds`, then on_error blocks the user's AI traffic and nothing else; a user the
directory does not have is in no group. Counted in aiwarden_directory_lookups_total."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import kdcharness
import ldapharness
import pytest
from conftest import SHIPPED_CATALOG, local_ai_policy
from ldapharness import ADMIN_DN, ADMIN_PASSWORD, SUFFIX, Slapd
from proxyharness import (
    AIWARDEN,
    Proxy,
    Upstream,
    curl,
    loopback_names,
    make_upstream_pki,
    metrics,
    proxy_environment,
    value,
    write_policy,
)

from proxy import ca
from proxy.identity.directory import DirectoryUnavailable, LdapGroups
from proxy.policy.directory import DirectorySettings

pytestmark = pytest.mark.skipif(
    not ldapharness.installed(),
    reason="OpenLDAP's slapd is not installed (.ci/run installs the slapd package)",
)

DATA = (
    """
dn: {suffix}
objectClass: dcObject
objectClass: organization
o: Corp
dc: corp

dn: ou=people,{suffix}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{suffix}
objectClass: organizationalUnit
ou: groups
"""
    + "".join(
        f"""
dn: uid={user},ou=people,{{suffix}}
objectClass: inetOrgPerson
uid: {user}
cn: {user}
sn: {user.title()}
userPassword: {user}-password
"""
        for user in ("alice", "bob", "carol", "dave")
    )
    + """
dn: cn=research,ou=groups,{suffix}
objectClass: groupOfNames
cn: research
member: uid=alice,ou=people,{suffix}

dn: cn=AI-Users,ou=groups,{suffix}
objectClass: groupOfNames
cn: AI-Users
member: cn=research,ou=groups,{suffix}

dn: cn=pilot,ou=groups,{suffix}
objectClass: groupOfNames
cn: pilot
member: uid=carol,ou=people,{suffix}

dn: cn=sales,ou=groups,{suffix}
objectClass: groupOfNames
cn: sales
member: uid=bob,ou=people,{suffix}
"""
)
USERS_MAP = """
127.0.0.4 alice
127.0.0.5 bob
127.0.0.6 carol
127.0.0.7 dave
127.0.0.8 mallory
"""
NAMES = ("tunnel.test",)
MEMBEROF = """
moduleload memberof
overlay memberof
"""


SEARCH = f"""group_base: ou=groups,{SUFFIX}
            group_filter: (member={{dn}})"""  # OpenLDAP's groupOfNames, without overlays


def policy(port: int, ttl: int, stale: int, address_map: bool = True, groups: str = SEARCH):
    source = "address_map: {file: users.map}" if address_map else ""
    return local_ai_policy(
        sections=f"""
        identity:
          {source}
          directory:
            servers: [ldap://127.0.0.1:{port}]
            base: ou=people,{SUFFIX}
            user_filter: (uid={{name}})
            bind_dn: {ADMIN_DN}
            password_file: ldap.password
            {groups}
            nested: iterative
            ttl_seconds: {ttl}
            stale_seconds: {stale}
        groups:
          ai-users: {{directory: [AI-Users]}}
          pilot: {{directory: [pilot]}}
        """,
        rules="""
        - id: ai-users-may
          match: {groups: [ai-users], services: [local-ai]}
          action: allow
        - id: pilot-may
          match: {groups: [pilot], services: [local-ai]}
          action: allow
        - id: block-ai
          match: {categories: [chat]}
          action: block
        - id: ai-users-tunnel
          match: {groups: [ai-users], hosts: [tunnel.test]}
          action: allow
        - id: no-tunnel
          match: {hosts: [tunnel.test]}
          action: block
          block_with: refuse
        """,
    )


def start_proxy(work: Path, slapd: Slapd, *extra: str, ttl: int = 3600, stale: int = 3600,
                address_map: bool = True, groups: str = SEARCH) -> Proxy:  # fmt: skip
    text = policy(slapd.port, ttl, stale, address_map, groups)
    directory = write_policy(work / "policy", text, SHIPPED_CATALOG)
    (directory / "users.map").write_text(USERS_MAP)
    (directory / "ldap.password").write_text(ADMIN_PASSWORD + "\n")
    ca.init(work / "ca")
    with loopback_names(NAMES):
        return Proxy(directory, work / "ca", "--identity-store", str(work / "identity.db"),
                     *extra)  # fmt: skip


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    server = Slapd(tmp_path_factory.mktemp("ldap"), DATA)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def upstream():
    server = Upstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def by_address(slapd, tmp_path_factory):
    """Users named by the address map; answers kept for 3 seconds."""
    proxy = start_proxy(tmp_path_factory.mktemp("by-address"), slapd, ttl=3)
    yield proxy
    assert proxy.stop() == 0


def status(proxy: Proxy, url: str, address: str = "127.0.0.1", *args: str) -> str:
    r = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy.url,
             "--interface", address, *args, url)  # fmt: skip
    return r.stdout


def lookups(proxy: Proxy, outcome: str) -> float:
    return value(metrics(proxy), "aiwarden_directory_lookups_total", outcome=outcome)


def ai(upstream: Upstream) -> str:
    return f"http://localhost:{upstream.port}/page"  # the catalogued local-ai service


def basic_request(proxy: Proxy, url: str, credentials: str) -> bytes:
    token = base64.b64encode(credentials.encode()).decode()
    host = url.split("/")[2]
    address, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=15) as sock:
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}\r\nProxy-Authorization: Basic "
                     f"{token}\r\nConnection: close\r\n\r\n".encode())  # fmt: skip
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_groups_decide_for_a_user_logged_in_with_basic_against_ldap(slapd, upstream, tmp_path):
    spec = f"ldap:127.0.0.1:{slapd.port}:{ADMIN_DN}:{ADMIN_PASSWORD}:ou=people,{SUFFIX}"
    proxy = start_proxy(tmp_path, slapd, "--proxyauth", spec, address_map=False)
    try:
        # alice is in AI-Users through research (nested); bob is in sales only
        assert basic_request(proxy, ai(upstream), "alice:alice-password").startswith(
            b"HTTP/1.1 200"
        )
        blocked = basic_request(proxy, ai(upstream), "bob:bob-password")
        assert blocked.startswith(b"HTTP/1.1 403") and b"block-ai" in blocked
        assert lookups(proxy, "directory") == 2
    finally:
        assert proxy.stop() == 0


def test_groups_decide_for_users_the_address_map_names(by_address, upstream):
    assert status(by_address, ai(upstream), "127.0.0.4") == "200"  # alice: nested AI-Users
    assert status(by_address, ai(upstream), "127.0.0.6") == "200"  # carol: pilot
    assert status(by_address, ai(upstream), "127.0.0.5") == "403"  # bob: sales only


def test_a_user_the_directory_does_not_have_is_in_no_group(by_address, upstream):
    before = lookups(by_address, "not_found")
    assert status(by_address, ai(upstream), "127.0.0.8") == "403"  # mallory
    assert lookups(by_address, "not_found") == before + 1


def test_a_tunnel_is_decided_with_the_groups_by_the_fast_path_too(slapd, upstream, tmp_path):
    proxy = start_proxy(tmp_path, slapd)  # answers kept for an hour

    def connect(address: str) -> str:
        url = f"https://tunnel.test:{upstream.port}/"  # the CONNECT is the test (no TLS there)
        return curl("-s", "-o", "/dev/null", "-w", "%{http_connect}", "--proxy", proxy.url,
                    "--interface", address, url).stdout  # fmt: skip

    def asked() -> float:
        return sum(v for (name, _), v in metrics(proxy).items()
                   if name == "aiwarden_directory_lookups_total")  # fmt: skip

    try:
        assert connect("127.0.0.4") == "200"  # alice, through mitmproxy, which looks her up
        assert connect("127.0.0.5") == "403"  # bob
        before = asked()
        assert connect("127.0.0.4") == "200"  # the fast path, with her groups from the cache
        assert asked() == before  # (mitmproxy's hooks would have counted a cached answer)
        assert connect("127.0.0.5") == "403"
    finally:
        assert proxy.stop() == 0


def test_a_membership_change_is_seen_after_the_ttl_and_not_before(by_address, slapd, upstream):
    assert status(by_address, ai(upstream), "127.0.0.7") == "403"  # dave: in no group
    slapd.modify(f"cn=pilot,ou=groups,{SUFFIX}",
                 {"member": [("MODIFY_ADD", [f"uid=dave,ou=people,{SUFFIX}"])]})  # fmt: skip
    cached, asked = lookups(by_address, "cache"), lookups(by_address, "directory")
    answer = status(by_address, ai(upstream), "127.0.0.7")
    if lookups(by_address, "directory") == asked:  # within the ttl: the cached answer holds
        assert lookups(by_address, "cache") == cached + 1 and answer == "403"
    else:  # a machine so slow that the ttl ran out since: the directory's new answer
        assert answer == "200"
    deadline = time.monotonic() + 30
    while status(by_address, ai(upstream), "127.0.0.7") != "200":
        assert time.monotonic() < deadline, "dave's new group was never seen"
        time.sleep(0.2)
    slapd.modify(f"cn=pilot,ou=groups,{SUFFIX}",
                 {"member": [("MODIFY_DELETE", [f"uid=dave,ou=people,{SUFFIX}"])]})  # fmt: skip
    while status(by_address, ai(upstream), "127.0.0.7") != "403":
        assert time.monotonic() < deadline, "dave's removal was never seen"
        time.sleep(0.2)


class KeptTunnel:
    """An intercepted tunnel from a client address, kept open for one request after another."""

    def __init__(self, proxy: Proxy, address: str, target: str, cafile: Path) -> None:
        host, port = proxy.address.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=15,
                                        source_address=(address, 0))  # fmt: skip
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096) or b"\r\n\r\n"
        assert head.startswith(b"HTTP/1.1 200"), head
        context = ssl.create_default_context(cafile=str(cafile))
        self.tls = context.wrap_socket(sock, server_hostname=target.rsplit(":", 1)[0])
        self.target = target

    def status(self) -> int:
        """GET /page on the same connection: its status (the body read to its length)."""
        self.tls.sendall(f"GET /page HTTP/1.1\r\nHost: {self.target}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.tls.recv(65536)
            assert chunk, "the proxy closed the tunnel"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(body) < length:
            body += self.tls.recv(65536)
        return int(head.split()[1])

    def close(self) -> None:
        self.tls.close()


def test_a_stopped_directory_keeps_the_last_answer_for_stale_then_on_error(upstream, tmp_path):
    slapd = Slapd(tmp_path / "ldap", DATA)
    upstream_ca, cert, key = make_upstream_pki(tmp_path)
    tls_upstream = Upstream(tls=(cert, key))
    # one worker: answers are kept per worker process
    proxy = start_proxy(tmp_path / "proxy", slapd, "--workers", "1",
                        "--upstream-ca", str(upstream_ca), ttl=1, stale=4)  # fmt: skip
    not_ai = f"http://127.0.0.1:{upstream.port}/page"
    tunnel = None
    try:
        assert status(proxy, ai(upstream), "127.0.0.6") == "200"  # carol, from the directory
        slapd.stop()
        deadline = time.monotonic() + 30
        while lookups(proxy, "stale") == 0:  # past the ttl: the directory fails, the last
            assert status(proxy, ai(upstream), "127.0.0.6") == "200"  # answer serves
            assert time.monotonic() < deadline, "the stale answer was never used"
            time.sleep(0.2)
        while status(proxy, ai(upstream), "127.0.0.6") == "200":  # until stale runs out
            assert time.monotonic() < deadline, "the stale answer served for ever"
            time.sleep(0.2)
        assert lookups(proxy, "on_error") > 0
        blocked = curl("-s", "--proxy", proxy.url, "--interface", "127.0.0.6",
                       ai(upstream)).stdout  # fmt: skip
        assert "identity.directory" in blocked  # the rule that blocked: groups unknown
        assert status(proxy, not_ai, "127.0.0.6") == "200"  # the rest of the web passes
        assert status(proxy, ai(upstream), "127.0.0.5") == "403"  # bob: blocked either way
        logged = [e for e in proxy.drain() if e.get("event") == "directory_unreachable"]
        assert len(logged) == 1  # once per change, not per request
        assert logged[0]["level"] == "error" and ADMIN_PASSWORD not in str(proxy.logs)
        # a tunnel opened while the groups are unknown is intercepted, each request blocked
        tunnel = KeptTunnel(proxy, "127.0.0.6", f"localhost:{tls_upstream.port}",
                            tmp_path / "proxy" / "ca" / "ca.pem")  # fmt: skip
        assert tunnel.status() == 403
        slapd.start()
        while tunnel.status() != 200:  # back: carol's group, in the same tunnel
            assert time.monotonic() < deadline + 30, "the directory's return was never seen"
            time.sleep(0.2)
        assert status(proxy, ai(upstream), "127.0.0.6") == "200"
        assert [e for e in proxy.drain() if e.get("event") == "directory_reachable"]
    finally:
        if tunnel is not None:
            tunnel.close()
        slapd.stop()
        assert proxy.stop() == 0
        tls_upstream.close()


def test_a_broken_directory_block_never_replaces_a_good_one(slapd, upstream, tmp_path):
    proxy = start_proxy(tmp_path, slapd, "--policy-watch", "1", "--workers", "1")
    directory = tmp_path / "policy"
    good = (directory / "policy.yaml").read_text()

    def rewrite(text: str) -> None:
        (directory / "next.yaml").write_text(text)
        os.replace(directory / "next.yaml", directory / "policy.yaml")

    def events(name: str) -> list[dict]:
        deadline = time.monotonic() + 15
        while not (found := [e for e in proxy.drain() if e.get("event") == name]):
            assert time.monotonic() < deadline, f"no {name}"
            time.sleep(0.1)
        return found

    try:
        assert status(proxy, ai(upstream), "127.0.0.4") == "200"  # alice, nested
        rewrite(good.replace(f"ldap://127.0.0.1:{slapd.port}", "http://127.0.0.1"))
        rejected = events("policy_rejected")[0]
        line = good.splitlines().index(f"    servers: [ldap://127.0.0.1:{slapd.port}]") + 1
        assert rejected["errors"] == [
            f"{directory / 'policy.yaml'}:{line}: identity.directory: 'http://127.0.0.1' is "
            "not an ldap:// or ldaps:// URL"
        ]
        assert status(proxy, ai(upstream), "127.0.0.4") == "200"  # the good block stays
        rewrite(good.replace("nested: iterative", "nested: off"))  # good: taken
        deadline = time.monotonic() + 15
        while status(proxy, ai(upstream), "127.0.0.4") != "403":  # alice's AI-Users is nested
            assert time.monotonic() < deadline, "the new directory settings were never used"
            time.sleep(0.2)
    finally:
        assert proxy.stop() == 0


def test_groups_decide_for_a_user_signed_on_with_kerberos(slapd, upstream, tmp_path):
    """alice@REALM and bob@REALM sign on with tickets (no password to the proxy); their
    groups come from the directory by the realm-stripped name."""
    if kdcharness.MISSING:
        pytest.skip(kdcharness.WHY_MISSING)
    pytest.importorskip("gssapi", reason="the gssapi package (the kerberos extra)")
    realm = kdcharness.Realm(tmp_path / "realm")
    saved = {k: os.environ.get(k) for k in ("KRB5_CONFIG", "KRB5RCACHEDIR")}
    os.environ["KRB5_CONFIG"] = str(realm.krb5_conf)  # for the proxy and curl
    (tmp_path / "rcache").mkdir()
    os.environ["KRB5RCACHEDIR"] = str(tmp_path / "rcache")
    proxy = None
    try:
        realm.add_user("alice", "alice-password")
        realm.add_user("bob", "bob-password")
        realm.add_service("HTTP/localhost", tmp_path / "proxy.keytab")
        proxy = start_proxy(tmp_path / "proxy", slapd, "--kerberos-keytab",
                            str(tmp_path / "proxy.keytab"), address_map=False)  # fmt: skip
        by_name = f"http://localhost:{proxy.address.rsplit(':', 1)[1]}"  # the SPN's name

        def signed_on(user: str) -> str:
            env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
            env.update(realm.kinit(user, f"{user}-password"))
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "--proxy-negotiate", "-U", ":", "--proxy", by_name,
                                ai(upstream)], capture_output=True, text=True, env=env,
                               timeout=45)  # fmt: skip
            return r.stdout

        asked = lookups(proxy, "directory")
        assert signed_on("alice") == "200"  # nested AI-Users
        assert signed_on("bob") == "403"  # sales only
        assert lookups(proxy, "directory") == asked + 2
    finally:
        if proxy is not None:
            assert proxy.stop() == 0
        realm.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_groups_from_member_of_as_active_directory_keeps_them(upstream, tmp_path):
    """memberOf on the user's entry (and on each group's, for nesting), as Active Directory
    keeps it; slapd's memberof overlay maintains it for entries added over LDAP."""
    people = DATA[: DATA.index("dn: cn=research")]
    slapd = Slapd(tmp_path / "ldap", people, overlays=MEMBEROF)
    proxy = None
    try:
        for name, members in (("research", "uid=alice,ou=people"),
                              ("AI-Users", "cn=research,ou=groups"),
                              ("sales", "uid=bob,ou=people")):  # fmt: skip
            slapd.add(f"cn={name},ou=groups,{SUFFIX}", "groupOfNames",
                      {"cn": name, "member": f"{members},{SUFFIX}"})  # fmt: skip
        proxy = start_proxy(tmp_path / "proxy", slapd, groups="groups_from: member_of")
        assert status(proxy, ai(upstream), "127.0.0.4") == "200"  # alice: research, AI-Users
        assert status(proxy, ai(upstream), "127.0.0.5") == "403"  # bob: sales
        assert lookups(proxy, "directory") == 2
    finally:
        if proxy is not None:
            assert proxy.stop() == 0
        slapd.stop()


@pytest.fixture(scope="module")
def tls_slapd(tmp_path_factory):
    work = tmp_path_factory.mktemp("ldap-tls")
    ca_file, cert, key = make_upstream_pki(work)  # for localhost (and 127.0.0.1)
    server = Slapd(work / "slapd", DATA, tls=(cert, key))
    server.ca_file = ca_file
    yield server
    server.stop()


def tls_settings(url: str, **changes) -> DirectorySettings:
    return DirectorySettings(servers=(url,), base=f"ou=people,{SUFFIX}",
                             user_filter="(uid={name})", bind_dn=ADMIN_DN,
                             password=ADMIN_PASSWORD, group_base=f"ou=groups,{SUFFIX}",
                             nested="iterative", **changes)  # fmt: skip


@pytest.mark.parametrize("how", ["ldaps", "start_tls"])
def test_ldaps_and_start_tls_verify_the_server_with_the_ca_file(tls_slapd, how):
    if how == "ldaps":
        url, extra = f"ldaps://localhost:{tls_slapd.tls_port}", {}
    else:
        url, extra = f"ldap://localhost:{tls_slapd.port}", {"start_tls": True}
    found = LdapGroups(tls_settings(url, ca_file=str(tls_slapd.ca_file), **extra))("alice")
    assert found == {"research", "ai-users"}
    with pytest.raises(DirectoryUnavailable):  # the system's roots do not know this server
        LdapGroups(tls_settings(url, **extra))("alice")


def test_a_certificate_for_another_name_is_refused(tls_slapd):
    name = socket.gethostname()  # this host's own name, when it is the loopback's too
    try:
        loopback = socket.gethostbyname(name) == "127.0.0.1"
    except OSError:
        loopback = False
    if not loopback or name == "localhost":
        pytest.skip(f"this host's name {name!r} does not resolve to 127.0.0.1")
    url = f"ldaps://{name}:{tls_slapd.tls_port}"  # the same server; the certificate names
    with pytest.raises(DirectoryUnavailable):  # localhost and 127.0.0.1 only
        LdapGroups(tls_settings(url, ca_file=str(tls_slapd.ca_file)))("alice")


def test_explain_shows_the_groups_the_directory_gives(slapd, upstream, tmp_path):
    def explain(port: int, user: str) -> dict:
        directory = write_policy(tmp_path / str(port), policy(port, 60, 60), SHIPPED_CATALOG)
        (directory / "users.map").write_text(USERS_MAP)
        (directory / "ldap.password").write_text(ADMIN_PASSWORD + "\n")
        r = subprocess.run([AIWARDEN, "explain", "--policy", str(directory), "--json",
                            "--user", user, ai(upstream)], capture_output=True, text=True,
                           env=proxy_environment(), timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    alice = explain(slapd.port, "alice")
    assert (alice["groups"], alice["rule"]) == (["ai-users", "research"], "ai-users-may")
    assert "groups from the directory" in alice["identity_source"]
    mallory = explain(slapd.port, "mallory")
    assert (mallory["groups"], mallory["rule"]) == ([], "block-ai")
    assert "not in the directory" in mallory["identity_source"]
    down = explain(ldapharness.free_port(), "alice")  # nothing listens there
    assert down["rule"] == "identity.directory" and "unreachable" in down["identity_source"]
    assert ADMIN_PASSWORD not in json.dumps(down)


def test_an_answer_the_server_cut_short_is_no_answer(tmp_path):
    """slapd's size limit of 1 entry (for anonymous binds) cuts the search of carol's two
    groups: a part of her groups could leave out one a rule blocks, so it is a failure."""
    slapd = Slapd(tmp_path / "ldap", DATA, overlays="sizelimit 1\n")
    try:
        slapd.add(f"cn=extra,ou=groups,{SUFFIX}", "groupOfNames",
                  {"cn": "extra", "member": f"uid=carol,ou=people,{SUFFIX}"})  # fmt: skip
        anonymous = DirectorySettings(servers=(slapd.url,), base=f"ou=people,{SUFFIX}",
                                      user_filter="(uid={name})",
                                      group_base=f"ou=groups,{SUFFIX}")  # fmt: skip
        assert LdapGroups(anonymous)("bob") == {"sales"}  # one group: within the limit
        with pytest.raises(DirectoryUnavailable, match="incomplete answer"):
            LdapGroups(anonymous)("carol")
    finally:
        slapd.stop()


def test_a_new_password_in_the_file_is_taken_without_a_restart(slapd, upstream, tmp_path):
    proxy = start_proxy(tmp_path, slapd, "--policy-watch", "1", "--workers", "1")
    try:
        (tmp_path / "policy" / "ldap.password").write_text("not-the-password\n")
        deadline = time.monotonic() + 15
        while lookups(proxy, "on_error") == 0:  # the bind is refused: groups unknown
            assert status(proxy, ai(upstream), "127.0.0.4") in ("200", "403")
            assert time.monotonic() < deadline, "the wrong password was never used"
            time.sleep(0.2)
        assert status(proxy, ai(upstream), "127.0.0.4") == "403"
        (tmp_path / "policy" / "ldap.password").write_text(ADMIN_PASSWORD + "\n")
        while status(proxy, ai(upstream), "127.0.0.4") != "200":  # alice again
            assert time.monotonic() < deadline + 15, "the right password was never used"
            time.sleep(0.2)
        logs = json.dumps(proxy.drain())
        assert "not-the-password" not in logs and ADMIN_PASSWORD not in logs
    finally:
        assert proxy.stop() == 0
