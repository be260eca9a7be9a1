"""Kerberos single sign-on (`Proxy-Authenticate: Negotiate`) against a real MIT KDC on
loopback (kdcharness.py), driven by real clients: curl --proxy-negotiate and headless
Chromium get through with the ticket in their credential cache, no password asked; the
principal is the user the rules and the audit log see; no ticket, a ticket for another
service principal, a replayed token and a skewed clock get a 407 with `Negotiate`, counted by
reason; Proxy-Authorization never reaches the upstream server.

The proxy's service principal is HTTP/localhost: curl and Chromium build the name they ask a
ticket for from the proxy's host name, and the clients here reach the proxy as `localhost`.
HTTP/127.0.0.1 exists in the realm but not in the proxy's keytab: a client that reaches the
proxy as 127.0.0.1 holds a real ticket for the wrong principal.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
from conftest import RESEARCH_MAY_POLICY, SHIPPED_CATALOG, local_ai_policy
from kdcharness import MISSING, REALM, WHY_MISSING, Realm
from proxyharness import (
    AIWARDEN,
    CHROMIUM,
    Browser,
    Proxy,
    Upstream,
    make_upstream_pki,
    metrics,
    mitmdump_proxy,
    spki_pin,
    value,
    write_policy,
)

from proxy import ca

try:
    import gssapi
except ImportError as e:  # built from source against libkrb5-dev (make install)
    gssapi = None
    WHY_NO_GSSAPI = (
        f"the gssapi package is not installed ({e}): it builds against libkrb5-dev, which "
        ".ci/run installs"
    )
CURL = shutil.which("curl")
FAKETIME = shutil.which("faketime")

pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=WHY_MISSING),
    pytest.mark.skipif(gssapi is None, reason=globals().get("WHY_NO_GSSAPI", "")),
    pytest.mark.skipif(CURL is None, reason="curl is not installed (.ci/run installs it)"),
]

POLICY = RESEARCH_MAY_POLICY


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    """The realm: alice and bob, and the proxy's HTTP/localhost in its keytab. KRB5_CONFIG
    (and a replay cache folder of the test's own) for every process started here."""
    work = tmp_path_factory.mktemp("kdc")
    realm = Realm(work / "realm")
    saved = {k: os.environ.get(k) for k in ("KRB5_CONFIG", "KRB5RCACHEDIR", "KRB5CCNAME")}
    os.environ["KRB5_CONFIG"] = str(realm.krb5_conf)
    (work / "rcache").mkdir()
    os.environ["KRB5RCACHEDIR"] = str(work / "rcache")
    os.environ["KRB5CCNAME"] = f"FILE:{work}/nobody.ccache"  # no ticket unless a test says
    try:
        realm.add_user("alice", "alice-password")
        realm.add_user("bob", "bob-password")
        realm.keytab = work / "proxy.keytab"
        realm.add_service("HTTP/localhost", realm.keytab)
        realm.add_service("HTTP/127.0.0.1")  # a real service, not the proxy's
        yield realm
    finally:
        realm.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    work = tmp_path_factory.mktemp("kerberos-pki")
    ca.init(work / "ca")
    upstream_ca, cert, key = make_upstream_pki(work)
    return {"confdir": work / "ca", "cafile": work / "ca" / "ca.pem", "upstream_ca": upstream_ca,
            "cert": cert, "key": key}  # fmt: skip


@pytest.fixture(scope="module")
def upstreams(pki):
    plain, tls = Upstream(), Upstream(tls=(pki["cert"], pki["key"]))
    yield plain, tls
    plain.close()
    tls.close()


@pytest.fixture(scope="module")
def proxy(realm, pki, tmp_path_factory):
    work = tmp_path_factory.mktemp("kerberos-proxy")
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    audit = work / "audit.jsonl"
    p = Proxy(policy, pki["confdir"], "--kerberos-keytab", str(realm.keytab),
              "--upstream-ca", str(pki["upstream_ca"]), "--audit-log", str(audit))  # fmt: skip
    p.audit = audit
    yield p
    assert p.stop() == 0


@pytest.fixture(scope="module")
def alice(realm):
    return realm.kinit("alice", "alice-password")


@pytest.fixture(scope="module")
def bob(realm):
    return realm.kinit("bob", "bob-password")


def localhost(proxy: Proxy) -> str:
    """The proxy's URL by the name its service principal has."""
    return f"http://localhost:{proxy.address.rsplit(':', 1)[1]}"


def negotiate_curl(cache: dict[str, str] | None, *args: str) -> subprocess.CompletedProcess:
    """curl with SPNEGO proxy authentication from the credential cache `cache` names (none:
    an empty cache); prints the status of the request and of any CONNECT."""
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    env.update(cache or {})
    r = subprocess.run(
        [CURL, "-sS", "--max-time", "30", "--proxy-negotiate", "-U", ":",
         "-w", "\n%{http_code} %{http_connect}", *args],
        capture_output=True, text=True, env=env, timeout=45,
    )  # fmt: skip
    return r


def statuses(r: subprocess.CompletedProcess) -> tuple[str, str]:
    code, connect = r.stdout.rsplit("\n", 1)[1].split()
    return code, connect


def audit_lines(proxy: Proxy) -> list[dict]:
    if not proxy.audit.exists():
        return []
    return [json.loads(line) for line in proxy.audit.read_text().splitlines() if line]


def wait_for_audit(proxy: Proxy, predicate) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in audit_lines(proxy):
            if predicate(line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no such audit line in {audit_lines(proxy)}")


def failures(proxy: Proxy, reason: str) -> float:
    return value(metrics(proxy), "aiwarden_kerberos_failures_total", reason=reason)


def spnego_token(cache: dict[str, str], service: str) -> str:
    """A real SPNEGO token (a Kerberos AP-REQ) from `cache` for HTTP@`service`, base64."""
    assert gssapi is not None
    creds = gssapi.Credentials(usage="initiate", store={"ccache": cache["KRB5CCNAME"]})
    name = gssapi.Name(f"HTTP@{service}", gssapi.NameType.hostbased_service)
    spnego = gssapi.Mechanism.from_sasl_name("SPNEGO")
    context = gssapi.SecurityContext(name=name, creds=creds, usage="initiate", mech=spnego)
    return base64.b64encode(context.step()).decode()


def raw_request(proxy: Proxy, upstream: Upstream, authorization: str | None) -> bytes:
    """A plain GET for the upstream on a new connection, with this Proxy-Authorization."""
    host = f"localhost:{upstream.port}"
    header = f"Proxy-Authorization: {authorization}\r\n" if authorization else ""
    address, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=15) as sock:
        sock.sendall(f"GET http://{host}/raw HTTP/1.1\r\nHost: {host}\r\n{header}"
                     "Connection: close\r\n\r\n".encode())  # fmt: skip
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def challenges(reply: bytes) -> list[str]:
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return [v.strip() for k, _, v in (h.partition(":") for h in head)
            if k.lower() == "proxy-authenticate"]  # fmt: skip


def no_proxy_authorization_reached(upstream: Upstream) -> None:
    for headers in upstream.header_lists:
        assert not any(k.lower() == "proxy-authorization" for k, _ in headers), headers


# -- curl ------------------------------------------------------------------------------------


def test_curl_with_alices_ticket_gets_through_plain_http_as_alice(proxy, upstreams, alice):
    plain, _ = upstreams
    before = len(plain.requests)
    r = negotiate_curl(alice, "--proxy", localhost(proxy), f"http://localhost:{plain.port}/alice")
    assert statuses(r)[0] == "200", (r.stdout, r.stderr)
    assert "hello from upstream" in r.stdout
    assert len(plain.requests) == before + 1
    line = wait_for_audit(proxy, lambda a: "/alice" in a.get("url", a.get("path", "")))
    assert (line["user"], line["rule"], line["action"]) == ("alice", "research-may", "monitor")
    no_proxy_authorization_reached(plain)


def test_curl_with_bobs_ticket_falls_to_the_block_rule(proxy, upstreams, bob):
    plain, _ = upstreams
    before = len(plain.requests)
    r = negotiate_curl(bob, "--proxy", localhost(proxy), f"http://localhost:{plain.port}/bob")
    assert statuses(r)[0] == "403", (r.stdout, r.stderr)
    assert "block-ai" in r.stdout
    assert len(plain.requests) == before
    line = wait_for_audit(proxy, lambda a: a.get("user") == "bob")
    assert (line["rule"], line["action"]) == ("block-ai", "block")


def test_curl_authenticates_the_connect_and_the_tunnel_is_alices(proxy, pki, upstreams, alice):
    """HTTPS through CONNECT: the CONNECT carries the token; the request inside the
    (intercepted) tunnel carries none and is alice's."""
    _, tls = upstreams
    before = len(tls.requests)
    r = negotiate_curl(alice, "--proxy", localhost(proxy), "--cacert", str(pki["cafile"]),
                       f"https://localhost:{tls.port}/tunnel-alice")  # fmt: skip
    assert statuses(r) == ("200", "200"), (r.stdout, r.stderr)
    assert len(tls.requests) == before + 1
    line = wait_for_audit(proxy, lambda a: "tunnel-alice" in json.dumps(a))
    assert (line["user"], line["rule"]) == ("alice", "research-may")
    no_proxy_authorization_reached(tls)


def test_bobs_tunnel_is_bobs_and_blocked_inside(proxy, pki, upstreams, bob):
    _, tls = upstreams
    before = len(tls.requests)
    r = negotiate_curl(bob, "--proxy", localhost(proxy), "--cacert", str(pki["cafile"]),
                       f"https://localhost:{tls.port}/tunnel-bob")  # fmt: skip
    assert statuses(r) == ("403", "200"), (r.stdout, r.stderr)
    assert len(tls.requests) == before


def test_a_tunnel_the_fast_path_would_relay_needs_a_ticket_too(proxy, upstreams, alice):
    """127.0.0.1 is no AI service: its CONNECT is relayed undecrypted, which `aiwarden run`
    does in its fast path, ahead of mitmproxy's hooks; with Kerberos on it goes through the
    hooks, and is authenticated, like every other."""
    _, tls = upstreams
    before = tls.connections
    url = f"https://127.0.0.1:{tls.port}/fast"
    r = negotiate_curl(None, "--proxy", localhost(proxy), "-k", url)
    assert statuses(r)[1] == "407", (r.stdout, r.stderr)
    assert tls.connections == before
    r = negotiate_curl(alice, "--proxy", localhost(proxy), "-k", url)
    assert statuses(r) == ("200", "200"), (r.stdout, r.stderr)
    assert "hello from upstream" in r.stdout


def test_no_ticket_gets_a_407_offering_negotiate(proxy, upstreams):
    plain, _ = upstreams
    before = len(plain.requests), failures(proxy, "no_token")
    refused = value(metrics(proxy), "aiwarden_bad_requests_total", reason="proxy_auth")
    r = negotiate_curl(None, "--proxy", localhost(proxy), f"http://localhost:{plain.port}/x")
    assert statuses(r)[0] == "407", (r.stdout, r.stderr)
    reply = raw_request(proxy, plain, None)
    assert reply.startswith(b"HTTP/1.1 407"), reply[:300]
    assert challenges(reply) == ["Negotiate"]  # no Basic: it is not configured
    r = negotiate_curl(None, "--proxy", localhost(proxy), "--cacert", "/dev/null",
                       f"https://localhost:{plain.port}/x")  # fmt: skip
    assert statuses(r)[1] == "407", (r.stdout, r.stderr)
    assert len(plain.requests) == before[0]
    assert failures(proxy, "no_token") >= before[1] + 3
    assert value(metrics(proxy), "aiwarden_bad_requests_total", reason="proxy_auth") >= refused + 3


def test_a_basic_login_is_no_kerberos_login(proxy, upstreams):
    plain, _ = upstreams
    basic = "Basic " + base64.b64encode(b"alice:alice-password").decode()
    reply = raw_request(proxy, plain, basic)
    assert reply.startswith(b"HTTP/1.1 407") and challenges(reply) == ["Negotiate"]


def test_a_ticket_for_another_service_principal_gets_a_407_and_says_why(proxy, upstreams, alice):
    """curl reaches the proxy as 127.0.0.1, so it holds a real ticket for HTTP/127.0.0.1,
    which the proxy's keytab does not hold."""
    plain, _ = upstreams
    before = len(plain.requests), failures(proxy, "wrong_principal")
    port = proxy.address.rsplit(":", 1)[1]
    r = negotiate_curl(alice, "-v", "--proxy", f"http://127.0.0.1:{port}",
                       f"http://localhost:{plain.port}/wrong")  # fmt: skip
    assert statuses(r)[0] == "407", (r.stdout, r.stderr)
    assert "Proxy-Authorization: Negotiate" in r.stderr  # it did send its ticket
    assert len(plain.requests) == before[0]
    assert failures(proxy, "wrong_principal") == before[1] + 1
    line = proxy.wait_for(lambda rec: rec.get("event") == "proxy_auth_failed"
                          and rec.get("reason") == "wrong_principal")  # fmt: skip
    assert "HTTP/127.0.0.1" in line["detail"]
    assert "Traceback" not in json.dumps(proxy.logs)


def test_a_token_is_good_once_a_replay_gets_a_407(proxy, upstreams, alice):
    plain, _ = upstreams
    token = spnego_token(alice, "localhost")
    first = raw_request(proxy, plain, f"Negotiate {token}")
    assert first.startswith(b"HTTP/1.1 200"), first[:300]
    before = failures(proxy, "replay")
    again = raw_request(proxy, plain, f"Negotiate {token}")
    assert again.startswith(b"HTTP/1.1 407"), again[:300]
    assert challenges(again) == ["Negotiate"]
    assert failures(proxy, "replay") == before + 1
    proxy.wait_for(lambda rec: rec.get("reason") == "replay")
    no_proxy_authorization_reached(plain)


def der(tag: int, body: bytes) -> bytes:
    """One DER element."""
    n = len(body)
    if n < 128:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


KRB5_OID = der(0x06, bytes.fromhex("2a864886f712010202"))  # 1.2.840.113554.1.2.2
SPNEGO_OID = der(0x06, bytes.fromhex("2b0601050502"))  # 1.3.6.1.5.5.2


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_second_leg_on_the_same_connection_completes_the_handshake(proxy, upstreams, alice):
    """SPNEGO in two legs (RFC 4559): the client first only offers Kerberos, without a
    ticket; the proxy answers 407 with its own token (Kerberos chosen), and the client's
    ticket, in the next request on the connection, completes it."""
    plain, _ = upstreams
    host = f"localhost:{plain.port}"
    offer = der(0x60, SPNEGO_OID + der(0xA0, der(0x30, der(0xA0, der(0x30, KRB5_OID)))))
    creds = gssapi.Credentials(usage="initiate", store={"ccache": alice["KRB5CCNAME"]})
    name = gssapi.Name("HTTP@localhost", gssapi.NameType.hostbased_service)
    ticket = gssapi.SecurityContext(name=name, creds=creds, usage="initiate",
                                    mech=gssapi.MechType.kerberos).step()  # fmt: skip
    answer = der(0xA1, der(0x30, der(0xA2, der(0x04, ticket))))  # NegTokenResp
    address, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=15) as sock:
        for token in (offer, answer):
            sock.sendall(f"GET http://{host}/two-legs HTTP/1.1\r\nHost: {host}\r\n"
                         f"Proxy-Authorization: Negotiate {base64.b64encode(token).decode()}"
                         "\r\n\r\n".encode())  # fmt: skip
            reply = read_response(sock)
            if token is offer:
                assert reply.startswith(b"HTTP/1.1 407"), reply[:300]
                (challenge,) = challenges(reply)
                assert challenge.startswith("Negotiate ") and len(challenge) > 20
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    line = wait_for_audit(proxy, lambda a: "two-legs" in json.dumps(a))
    assert line["user"] == "alice"


def test_a_client_that_starts_over_is_not_held_to_its_unfinished_handshake(proxy, upstreams, alice):
    plain, _ = upstreams
    host = f"localhost:{plain.port}"
    offer = der(0x60, SPNEGO_OID + der(0xA0, der(0x30, der(0xA0, der(0x30, KRB5_OID)))))
    tokens = (base64.b64encode(offer).decode(), spnego_token(alice, "localhost"))
    address, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=15) as sock:
        replies = []
        for token in tokens:
            sock.sendall(f"GET http://{host}/start-over HTTP/1.1\r\nHost: {host}\r\n"
                         f"Proxy-Authorization: Negotiate {token}\r\n\r\n".encode())  # fmt: skip
            replies.append(read_response(sock))
    assert replies[0].startswith(b"HTTP/1.1 407") and replies[1].startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        ("Negotiate", "bad_token"),
        ("Negotiate !!!", "bad_token"),
        ("Negotiate AAAAAAAA", "bad_token"),  # base64, but no GSSAPI token
        ("Negotiate " + base64.b64encode(b"NTLMSSP\0\1").decode(), "ntlm"),
    ],
)
def test_a_malformed_token_gets_a_407_counted_by_its_reason(proxy, upstreams, garbage, reason):
    plain, _ = upstreams
    before = failures(proxy, reason)
    reply = raw_request(proxy, plain, garbage)
    assert reply.startswith(b"HTTP/1.1 407") and challenges(reply) == ["Negotiate"]
    assert failures(proxy, reason) == before + 1


@pytest.mark.skipif(not FAKETIME, reason="faketime is not installed (.ci/run installs it)")
def test_a_client_clock_an_hour_ahead_gets_a_407_and_says_clock_skew(
    proxy, realm, upstreams, alice
):
    """The service ticket is fetched at the real time; curl then writes its authenticator
    an hour ahead (libfaketime), as a laptop with a wrong clock would."""
    plain, _ = upstreams
    skewed = realm.kinit("alice", "alice-password")
    realm.kvno(skewed, "HTTP/localhost")
    before = failures(proxy, "clock_skew")
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()} | skewed
    r = subprocess.run(
        [FAKETIME, "-f", "+1h", CURL, "-sS", "--max-time", "30", "--proxy-negotiate", "-U", ":",
         "-w", "\n%{http_code} %{http_connect}", "--proxy", localhost(proxy),
         f"http://localhost:{plain.port}/skewed"],
        capture_output=True, text=True, env=env, timeout=45,
    )  # fmt: skip
    assert statuses(r)[0] == "407", (r.stdout, r.stderr)
    assert failures(proxy, "clock_skew") == before + 1
    line = proxy.wait_for(lambda rec: rec.get("reason") == "clock_skew")
    assert line["detail"] == "Clock skew too great"


def test_no_token_is_in_the_logs(proxy, alice):
    text = json.dumps(proxy.logs)
    assert "YII" not in text and "oYI" not in text  # how SPNEGO tokens start in base64
    assert "Negotiate " not in text
    assert "Traceback" not in text


# -- Chromium --------------------------------------------------------------------------------


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_chromium_signs_on_with_the_ticket_in_its_cache(
    proxy, pki, upstreams, realm, alice, bob, tmp_path, who
):
    """Headless Chromium with the user's ticket, no password: alice reaches the service, bob
    gets the block page. No --auth-server-allowlist: Chromium uses integrated
    authentication with a proxy without it (the allowlist is for web servers)."""
    _, tls = upstreams
    cache = alice if who == "alice" else bob
    saved = os.environ.get("KRB5CCNAME")
    os.environ["KRB5CCNAME"] = cache["KRB5CCNAME"]  # Chromium's GSSAPI library reads it
    try:
        browser = Browser(
            tmp_path / "profile",
            f"--proxy-server={localhost(proxy)}",
            "--proxy-bypass-list=<-loopback>",  # localhost too goes through the proxy
            f"--ignore-certificate-errors-spki-list={spki_pin(pki['cafile'])}",
        )
    finally:
        os.environ["KRB5CCNAME"] = saved or ""
    before = len(tls.requests)
    try:
        browser.go(f"https://localhost:{tls.port}/chromium-{who}")
        if who == "alice":
            browser.wait_for("document.body && document.body.innerText.includes('hello')")
            line = wait_for_audit(proxy, lambda a: "chromium-alice" in json.dumps(a))
            assert (line["user"], line["rule"]) == ("alice", "research-may")
            paths = [path for _, path, _ in tls.requests[before:]]
            assert paths.count("/chromium-alice") == 1, paths  # and perhaps /favicon.ico
        else:
            browser.wait_for("document.body && document.body.innerText.includes('block-ai')")
            assert len(tls.requests) == before
    finally:
        browser.close()
    no_proxy_authorization_reached(tls)


# -- with Basic too, and under mitmdump ------------------------------------------------------


def test_with_basic_too_both_are_offered_and_both_work(realm, pki, upstreams, alice, tmp_path):
    plain, _ = upstreams
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    p = Proxy(policy, pki["confdir"], "--kerberos-keytab", str(realm.keytab),
              "--proxyauth", "carol:carol-password", "--upstream-ca", str(pki["upstream_ca"]),
              "--audit-log", str(tmp_path / "audit.jsonl"))  # fmt: skip
    p.audit = tmp_path / "audit.jsonl"
    try:
        reply = raw_request(p, plain, None)
        assert reply.startswith(b"HTTP/1.1 407"), reply[:300]
        assert challenges(reply) == ["Negotiate", 'Basic realm="mitmproxy"']
        basic = "Basic " + base64.b64encode(b"carol:carol-password").decode()
        assert raw_request(p, plain, basic).startswith(b"HTTP/1.1 403")  # carol: block-ai
        wrong = "Basic " + base64.b64encode(b"carol:wrong").decode()
        reply = raw_request(p, plain, wrong)
        assert reply.startswith(b"HTTP/1.1 407")
        assert challenges(reply) == ["Negotiate", 'Basic realm="mitmproxy"']
        r = negotiate_curl(alice, "--proxy", localhost(p), f"http://localhost:{plain.port}/both")
        assert statuses(r)[0] == "200", (r.stdout, r.stderr)
        r = negotiate_curl(alice, "--proxy", localhost(p), "--cacert", str(pki["cafile"]),
                           f"https://localhost:{upstreams[1].port}/both")  # fmt: skip
        assert statuses(r) == ("200", "200"), (r.stdout, r.stderr)
        line = wait_for_audit(p, lambda a: "both" in json.dumps(a) and a.get("user"))
        assert line["user"] == "alice"  # inside the tunnel, past proxyauth's own 407
    finally:
        assert p.stop() == 0
    no_proxy_authorization_reached(plain)
    no_proxy_authorization_reached(upstreams[1])


def test_the_realm_is_kept_when_asked(realm, pki, upstreams, alice, tmp_path):
    plain, _ = upstreams
    policy = write_policy(tmp_path / "policy", POLICY.replace("[alice]", f"[alice@{REALM}]"),
                          SHIPPED_CATALOG)  # fmt: skip
    p = Proxy(policy, pki["confdir"], "--kerberos-keytab", str(realm.keytab),
              "--kerberos-keep-realm")  # fmt: skip
    try:
        r = negotiate_curl(alice, "--proxy", localhost(p), f"http://localhost:{plain.port}/k")
        assert statuses(r)[0] == "200", (r.stdout, r.stderr)
    finally:
        assert p.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_keytab_that_cannot_be_used_stops_the_start_in_one_line(pki, tmp_path, workers):
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    (tmp_path / "empty.keytab").write_bytes(b"")
    for keytab, words in ((tmp_path / "empty.keytab", "nonexistent or empty"),
                          (tmp_path / "none.keytab", "no such file")):  # fmt: skip
        r = subprocess.run(
            [AIWARDEN, "run", "--policy", str(policy), "--confdir", str(pki["confdir"]),
             "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", workers,
             "--kerberos-keytab", str(keytab)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 2, (r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aiwarden run: --kerberos-keytab: "), lines
        assert words in lines[0] and "Traceback" not in r.stderr


def test_a_replay_cache_folder_that_cannot_be_written_stops_the_start(realm, pki, tmp_path):
    """Without its replay cache krb5 refuses every ticket: said at the start, not per user."""
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    env = {**os.environ, "KRB5RCACHEDIR": str(tmp_path / "gone")}
    r = subprocess.run(
        [AIWARDEN, "run", "--policy", str(policy), "--confdir", str(pki["confdir"]),
         "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
         "--kerberos-keytab", str(realm.keytab)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip() == (
        f"aiwarden run: --kerberos-keytab: krb5's replay cache folder {tmp_path / 'gone'} is "
        "not writable (set KRB5RCACHEDIR to one that is); every ticket would be refused"
    )


def test_under_mitmdump_too(realm, pki, upstreams, alice, bob, tmp_path):
    plain, _ = upstreams
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    p = mitmdump_proxy(policy, pki["confdir"], f"aiwarden_kerberos_keytab={realm.keytab}")
    try:
        r = negotiate_curl(alice, "--proxy", localhost(p), f"http://localhost:{plain.port}/m")
        assert statuses(r)[0] == "200", (r.stdout, r.stderr)
        r = negotiate_curl(bob, "--proxy", localhost(p), f"http://localhost:{plain.port}/m")
        assert statuses(r)[0] == "403", (r.stdout, r.stderr)
        r = negotiate_curl(None, "--proxy", localhost(p), f"http://localhost:{plain.port}/m")
        assert statuses(r)[0] == "407", (r.stdout, r.stderr)
    finally:
        p.stop()


def test_kerberos_principal_accepts_that_principal_only(realm, pki, upstreams, alice, tmp_path):
    """A keytab with two service principals: both accepted by default; with
    --kerberos-principal only the one it names, the other being a wrong principal."""
    plain, _ = upstreams
    both = tmp_path / "both.keytab"
    for principal in ("HTTP/localhost", "HTTP/127.0.0.1"):  # the keys as they are
        realm.kadmin(f"ktadd -norandkey -k {both} {principal}")
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    url = f"http://localhost:{plain.port}/principal"
    for only, by_ip in ((None, "200"), (f"HTTP/localhost@{REALM}", "407")):
        extra = ("--kerberos-principal", only) if only else ()
        p = Proxy(policy, pki["confdir"], "--kerberos-keytab", str(both), *extra)
        try:
            port = p.address.rsplit(":", 1)[1]
            r = negotiate_curl(alice, "--proxy", f"http://localhost:{port}", url)
            assert statuses(r)[0] == "200", (only, r.stdout, r.stderr)
            r = negotiate_curl(alice, "--proxy", f"http://127.0.0.1:{port}", url)
            assert statuses(r)[0] == by_ip, (only, r.stdout, r.stderr)
            if by_ip == "407":
                assert failures(p, "wrong_principal") == 1
        finally:
            assert p.stop() == 0


def test_a_new_key_in_the_keytab_is_used_without_a_restart(realm, pki, upstreams, tmp_path):
    """msktutil --auto-update (or ktadd) adds the service's new key to the keytab: tickets
    under the new key are accepted at once, and those under the old one until they expire.
    (HTTP/127.0.0.1 here, whose key no other test relies on.)"""
    plain, _ = upstreams
    keytab = tmp_path / "rotating.keytab"
    realm.kadmin(f"ktadd -norandkey -k {keytab} HTTP/127.0.0.1")
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    p = Proxy(policy, pki["confdir"], "--kerberos-keytab", str(keytab))
    try:
        proxy_url = f"http://127.0.0.1:{p.address.rsplit(':', 1)[1]}"
        url = f"http://localhost:{plain.port}/rotation"
        old = realm.kinit("alice", "alice-password")
        assert statuses(negotiate_curl(old, "--proxy", proxy_url, url))[0] == "200"
        realm.kadmin(f"ktadd -k {keytab} HTTP/127.0.0.1")  # a new key, a new version
        new = realm.kinit("alice", "alice-password")
        for cache in (new, old):
            r = negotiate_curl(cache, "--proxy", proxy_url, url)
            assert statuses(r)[0] == "200", (r.stdout, r.stderr)
    finally:
        assert p.stop() == 0


COACHING = local_ai_policy(
    rules="""
    - id: coach-local
      match: {services: [local-ai]}
      action: warn
      justification: none
    """,
)
LINK = re.compile(r"https?://[\w.-]+:\d+/\.aiwarden/ack/[\w-]+")


def test_a_coaching_grant_is_the_kerberos_users_own(realm, pki, upstreams, alice, bob, tmp_path):
    """alice is warned, proceeds through the link (signed on all along) and then passes; bob,
    from the same address, is still warned: the grant is for the user the ticket named."""
    plain, _ = upstreams
    policy = write_policy(tmp_path / "policy", COACHING, SHIPPED_CATALOG)
    p = Proxy(policy, pki["confdir"], "--kerberos-keytab", str(realm.keytab),
              "--coaching-store", str(tmp_path / "coaching.sqlite3"))  # fmt: skip
    try:
        url = f"http://localhost:{plain.port}/coached"
        via = ("--proxy", localhost(p))
        r = negotiate_curl(alice, *via, url)
        assert statuses(r)[0] == "403", (r.stdout, r.stderr)
        link = LINK.search(r.stdout).group(0)
        page = negotiate_curl(alice, *via, link)
        token = re.search(r'name="token" value="([^"]+)"', page.stdout).group(1)
        origin = link.split("/.aiwarden/")[0]
        done = negotiate_curl(alice, *via, "-d", f"token={token}", f"{origin}/.aiwarden/proceed")
        assert statuses(done)[0] == "200", (done.stdout, done.stderr)
        before = len(plain.requests)
        r = negotiate_curl(alice, *via, url)
        assert statuses(r)[0] == "200", (r.stdout, r.stderr)
        assert len(plain.requests) == before + 1
        r = negotiate_curl(bob, *via, url)
        assert statuses(r)[0] == "403" and LINK.search(r.stdout), (r.stdout, r.stderr)
        assert len(plain.requests) == before + 1
    finally:
        assert p.stop() == 0
