"""aiwarden behind a parent proxy (`--upstream-proxy`, mitmproxy's upstream mode), with
Debian's Squid as the parent, on loopback: every connection aiwarden makes upstream goes
through Squid — the fast path's tunnels, intercepted HTTPS and plain HTTP — as Squid's own
access log shows, and the decisions are the same: blocks are answered by aiwarden without
contacting the parent.

As behind a real parent, the test names (*.aiwarden.test) do not resolve for aiwarden
(tests/loopback_names) and resolve to 127.0.0.1 for Squid alone (its hosts_file). The policy
denies loopback destinations: what aiwarden can still check — IP literals, names it resolves
— is refused, while the parent itself, on loopback too, is never refused."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import (
    AIWARDEN,
    SQUID,
    SQUID_MISSING,
    Proxy,
    Squid,
    Upstream,
    client_hello,
    connect_tunnel,
    curl,
    exchange,
    free_port,
    loopback_names,
    make_upstream_pki,
    metrics,
    mitmdump_proxy,
    proxy_environment,
    request_through_tunnel,
    value,
    write_policy,
)

from proxy import ca

pytestmark = pytest.mark.skipif(SQUID is None, reason=SQUID_MISSING)

TUNNEL = "tunnel.aiwarden.test"  # not an AI service: tunnelled
AI = "ai.aiwarden.test"  # an AI service the policy monitors: intercepted
BLOCKED = "blocked.aiwarden.test"  # an AI service the policy blocks
PLAIN = "plain.aiwarden.test"  # plain HTTP
REFUSED_BY_PARENT = "denied.aiwarden.test"  # Squid's own ACL refuses it
AI_REFUSED_BY_PARENT = "ai-denied.aiwarden.test"  # monitored by aiwarden, refused by Squid
NAMES = (TUNNEL, AI, BLOCKED, PLAIN, REFUSED_BY_PARENT, AI_REFUSED_BY_PARENT)
SQUID_ACL = (
    f"acl parent_denies dstdomain {REFUSED_BY_PARENT} {AI_REFUSED_BY_PARENT}\n"
    "http_access deny parent_denies"
)
POLICY = f"""
network:
  clients: [127.0.0.0/8]
  deny_destinations: [127.0.0.0/8, 169.254.0.0/16]
services:
  - {{id: local-ai, name: Local AI, vendor: Test, category: chat,
     hosts: [{AI}, {AI_REFUSED_BY_PARENT}],
     api_format: openai, source: test}}
  - {{id: blocked-ai, name: Blocked AI, vendor: Test, category: chat, hosts: [{BLOCKED}],
     api_format: openai, source: test}}
rules:
  - id: watch-local
    match: {{services: [local-ai]}}
    action: monitor
  - id: block-ai
    match: {{categories: [chat, api]}}
    action: block
"""
PARENT_USER, PARENT_PASSWORD = "aiw", "p@ss:word"  # '@' and ':' URL-quoted in the flag
PARENT_AUTH = "Basic%20" + base64.b64encode(f"{PARENT_USER}:{PARENT_PASSWORD}".encode()).decode()
AIWARDEN_CA = Path()  # set by Env
CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


class Env:
    def __init__(self, work: Path) -> None:
        global AIWARDEN_CA
        self.work = work
        ca.init(work / "ca")
        AIWARDEN_CA = work / "ca" / "ca.pem"
        self.upstream_ca, cert, key = make_upstream_pki(work, NAMES)
        self.policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
        self.tls = Upstream(tls=(cert, key))
        self.plain = Upstream()
        self.squid = Squid(NAMES, SQUID_ACL)
        self.proxies: list[Proxy] = []

    def proxy(self, parent: str | None, *flags: str) -> Proxy:
        """aiwarden with `--upstream-proxy parent` (None: none), for which the test names do
        not resolve."""
        chained = ("--upstream-proxy", parent) if parent else ()
        with loopback_names((), unresolvable=NAMES):
            proxy = Proxy(
                self.policy, self.work / "ca", *chained,
                "--upstream-ca", str(self.upstream_ca), "--log-level", "debug",
                "--upstream-timeout", "20", *flags,
            )  # fmt: skip
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        """Everything stopped (squid too, whatever failed before); each proxy exited 0."""
        try:
            codes = [proxy.stop() for proxy in self.proxies]
        finally:
            self.squid.stop()
            self.tls.close()
            self.plain.close()
        assert codes == [0] * len(codes)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    env = Env(tmp_path_factory.mktemp("parent"))
    yield env
    env.close()


@pytest.fixture(scope="module")
def proxy(env):
    """Behind Squid, named `localhost`: a name aiwarden resolves into a denied range, which
    it must not refuse for the parent."""
    return env.proxy(f"http://localhost:{env.squid.port}")


@pytest.fixture(scope="module")
def proxies(env, proxy):
    """The same, with tunnels relayed by the fast path and by mitmproxy."""
    return {"fast": proxy, "mitmproxy": env.proxy(env.squid.url, "--no-fast-tunnels")}


def through(proxy: Proxy, url: str, *args: str) -> tuple[int, str]:
    """curl through the proxy, trusting aiwarden's CA (every proxy here shares it)."""
    r = curl("-x", proxy.url, "--cacert", str(AIWARDEN_CA), "-w", "\n%{http_code}", url, *args)
    body, _, status = r.stdout.rpartition("\n")
    return int(status or 0), body


def refused_connect(proxy: Proxy, target: str) -> tuple[int, str]:
    """CONNECT target: (status, the whole answer) of an answer that ends the connection."""
    sock, status, head = connect_tunnel(proxy.address, target)
    with sock:
        sock.settimeout(10)
        while chunk := sock.recv(4096):
            head += chunk
    return status, head.decode()


def mark(env: Env, proxy: Proxy) -> str:
    """A plain request through the proxy and Squid whose log line is then written: every
    transaction before it that reached Squid and ended is in the log by then."""
    path = f"/mark-{time.monotonic_ns()}"
    status, _ = through(proxy, f"http://{PLAIN}:{env.plain.port}{path}")
    assert status == 200
    return env.squid.wait_for_line(path)


# -- controls: the upstreams answer, and only Squid can resolve their names ------------------


def test_controls_the_upstreams_answer_and_squid_reaches_them(env):
    status, _, body, _ = request_through_tunnel(
        env.squid.address, f"{TUNNEL}:{env.tls.port}", TUNNEL, TUNNEL, env.upstream_ca
    )
    assert (status, body) == (200, b"hello from upstream\n")
    r = curl("-x", env.squid.url, f"http://{PLAIN}:{env.plain.port}/control")
    assert r.stdout == "hello from upstream\n", r.stderr
    env.squid.wait_for_line(f"GET http://{PLAIN}:{env.plain.port}/control 200")


def test_control_without_the_parent_aiwarden_cannot_reach_the_test_names(env):
    proxy = env.proxy(None)
    status, body = through(proxy, f"http://{PLAIN}:{env.plain.port}/direct")
    assert status == 502 and "does not resolve" in body, body
    sock, status, _ = connect_tunnel(proxy.address, f"{TUNNEL}:{env.tls.port}")
    with sock:  # answered, then closed when the connection fails
        sock.settimeout(10)
        sock.sendall(client_hello(TUNNEL))
        assert sock.recv(1024) == b""
    assert not [line for line in env.squid.log() if "/direct" in line]


# -- (a) (b) (c): every kind of connection goes through the parent -------------------------------


@pytest.mark.parametrize("mode", ["fast", "mitmproxy"])
def test_an_allowed_tunnel_goes_through_the_parent(env, proxies, mode):
    proxy = proxies[mode]
    status, _, body, cert = request_through_tunnel(
        proxy.address, f"{TUNNEL}:{env.tls.port}", TUNNEL, TUNNEL, env.upstream_ca
    )
    assert (status, body) == (200, b"hello from upstream\n")
    issuer = dict(x[0] for x in cert["issuer"])
    assert issuer["commonName"] == "test upstream CA"  # relayed undecrypted
    line = env.squid.wait_for_line(f"CONNECT {TUNNEL}:{env.tls.port} 200")
    assert line.endswith(" -")  # no credentials configured
    relayed = [r for r in proxy.drain() if "fast path: relaying" in r.get("msg", "")]
    assert bool(relayed) == (mode == "fast")


def test_an_allowed_intercepted_request_goes_through_the_parent(env, proxy):
    before = len(env.tls.requests)
    status, body = through(proxy, f"https://{AI}:{env.tls.port}/v1/models")
    assert (status, body) == (200, "hello from upstream\n")
    assert env.tls.requests[before][:2] == ("GET", "/v1/models")
    env.squid.wait_for_line(f"CONNECT {AI}:{env.tls.port} 200")
    monitored = proxy.wait_for(lambda r: r.get("rule") == "watch-local")
    assert monitored["host"] == AI


def test_plain_http_goes_through_the_parent(env, proxy):
    status, body = through(proxy, f"http://{PLAIN}:{env.plain.port}/plain?q=1")
    assert (status, body) == (200, "hello from upstream\n")
    # (squid logs no query string: strip_query_terms)
    env.squid.wait_for_line(f"GET http://{PLAIN}:{env.plain.port}/plain? 200 -")


@pytest.mark.parametrize("mode", ["fast", "mitmproxy"])
def test_plain_http_inside_a_tunnel_is_decided_and_goes_through_the_parent(env, proxies, mode):
    """Not TLS after the CONNECT: mitmproxy reads it as HTTP and decides each request by its
    Host; an allowed one goes on through the tunnel to the parent."""
    proxy = proxies[mode]
    path = f"/in-tunnel-{mode}"
    sock, status, _ = connect_tunnel(proxy.address, f"{TUNNEL}:{env.plain.port}")
    assert status == 200
    with sock:
        data = exchange(sock, f"GET {path} HTTP/1.1\r\nHost: {TUNNEL}\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello from upstream\n"), data
    assert env.plain.requests[-1][1] == path
    sock, status, _ = connect_tunnel(proxy.address, f"{TUNNEL}:{env.plain.port}")
    with sock:
        data = exchange(sock, "GET / HTTP/1.1\r\nHost: chatgpt.com\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 403"), data[:200]
    assert env.plain.requests[-1][1] == path
    env.squid.wait_for_line(f"CONNECT {TUNNEL}:{env.plain.port} 200")


# -- (d): blocks never reach the parent ---------------------------------------------------------


def test_a_blocked_ai_request_never_reaches_the_parent(env, proxy):
    tls_before, plain_before = len(env.tls.requests), len(env.plain.requests)
    status, body = through(
        proxy, f"https://{BLOCKED}:{env.tls.port}/v1/chat/completions",
        "-H", "Authorization: Bearer sk-test", "-H", "Content-Type: application/json",
        "-d", CHAT,
    )  # fmt: skip
    assert status == 403 and "block-ai" in body, body
    status, body = through(proxy, "https://chatgpt.com/")  # the shipped catalog's
    assert status == 403, body
    status, body = through(
        proxy, f"http://{BLOCKED}:{env.plain.port}/v1/chat/completions", "-d", CHAT
    )  # plain HTTP, blocked before its body
    assert status == 403 and "block-ai" in body, body
    mark(env, proxy)
    log = "\n".join(env.squid.log())
    assert BLOCKED not in log and "chatgpt.com" not in log and "aiwarden-blocked" not in log
    assert len(env.tls.requests) == tls_before
    assert len(env.plain.requests) == plain_before + 1  # the mark only


def test_a_request_blocked_before_its_body_never_reaches_the_parent(env, proxy):
    """An intercepted POST blocked at its headers, its body never read: the sink the body is
    sent to is refused by aiwarden, not asked of the parent (compat.sink_directly)."""
    status, body = through(
        proxy, f"https://{AI}:{env.tls.port}/v1/chat/completions",
        "-H", f"Host: {BLOCKED}", "-H", "Content-Type: application/json", "-d", CHAT,
    )  # fmt: skip
    assert status == 403, body
    mark(env, proxy)
    assert not [line for line in env.squid.log() if "aiwarden-blocked" in line]


def test_destinations_aiwarden_can_check_are_refused_before_the_parent(env, proxy):
    """IP literals in a denied range, and names aiwarden resolves into one, are refused by
    aiwarden itself: the parent resolving names does not open the denied ranges."""
    for target in (f"127.0.0.1:{env.tls.port}", f"localhost:{env.tls.port}"):
        sock, status, head = connect_tunnel(proxy.address, target)
        sock.close()
        assert status == 403, head
    status, body = through(proxy, f"http://127.0.0.1:{env.plain.port}/literal")
    assert status == 403, body
    mark(env, proxy)
    log = "\n".join(env.squid.log())
    assert "127.0.0.1" not in log and "localhost" not in log and "/literal" not in log


# -- the parent's answers ----------------------------------------------------------------------


def test_a_tunnel_the_parent_refuses_gets_a_clear_502(env, proxy):
    status, text = refused_connect(proxy, f"{REFUSED_BY_PARENT}:{env.tls.port}")
    assert status == 502, text
    assert "parent proxy" in text and "403" in text, text
    env.squid.wait_for_line(f"CONNECT {REFUSED_BY_PARENT}:{env.tls.port} 403")


def test_a_tunnel_mitmproxy_relays_to_a_parent_that_is_down_is_closed_and_recorded(env):
    """mitmproxy answers the CONNECT before asking the parent (its upstream mode): the client
    sees its tunnel close, and the log line names the destination, not the parent."""
    proxy = env.proxy(f"http://127.0.0.1:{free_port()}", "--no-fast-tunnels")
    sock, status, _ = connect_tunnel(proxy.address, f"{TUNNEL}:{env.tls.port}")
    assert status == 200
    with sock:
        sock.settimeout(10)
        sock.sendall(client_hello(TUNNEL))
        assert sock.recv(1024) == b""
    line = proxy.wait_for(lambda r: r.get("event") == "upstream_error")
    assert (line["host"], line["kind"], line["tunnel"]) == (TUNNEL, "refused", True), line


def test_an_intercepted_request_the_parent_refuses_gets_a_502_in_its_format(env, proxy):
    """mitmproxy's CONNECT to the parent, for a request it intercepted, refused by Squid:
    the client already talks TLS with aiwarden, so the 502 comes in the API's format."""
    before = value(metrics(proxy), "aiwarden_upstream_errors_total", kind="parent")
    status, body = through(
        proxy, f"https://{AI_REFUSED_BY_PARENT}:{env.tls.port}/v1/chat/completions",
        "-H", "Authorization: Bearer sk-test", "-H", "Content-Type: application/json",
        "-d", CHAT,
    )  # fmt: skip
    assert status == 502, body
    message = json.loads(body)["error"]["message"]
    assert "through the parent proxy localhost:" in message, message
    assert "the parent proxy refused to connect to it" in message, message
    after = value(metrics(proxy), "aiwarden_upstream_errors_total", kind="parent")
    assert after - before == 1
    env.squid.wait_for_line(f"CONNECT {AI_REFUSED_BY_PARENT}:{env.tls.port} 403")


def test_domain_fronting_through_the_parent_is_intercepted_and_blocked(env, proxy):
    """The fast path opened the tunnel through the parent for an allowed CONNECT host; the
    ClientHello names an AI service: mitmproxy takes the connection, the tunnel through the
    parent is closed having carried nothing, and the request gets the block page."""
    requests = len(env.tls.requests)
    sock, status, _ = connect_tunnel(proxy.address, f"{TUNNEL}:{env.tls.port}")
    assert status == 200
    context = ssl.create_default_context(cafile=str(AIWARDEN_CA))
    context.check_hostname = False
    with context.wrap_socket(sock, server_hostname="chatgpt.com") as tls:
        data = exchange(tls, "GET / HTTP/1.1\r\nHost: chatgpt.com\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 403"), data[:200]
    mark(env, proxy)
    assert len(env.tls.requests) == requests
    assert "chatgpt.com" not in "\n".join(env.squid.log())


def test_a_silent_parent_gets_a_502_at_the_upstream_timeout(env):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts, never answers
    try:
        proxy = env.proxy(f"http://127.0.0.1:{silent.getsockname()[1]}", "--upstream-timeout", "2")
        start = time.monotonic()
        status, text = refused_connect(proxy, f"{TUNNEL}:{env.tls.port}")
        assert status == 502 and "no answer in 2 s" in text, text
        assert time.monotonic() - start < 10
    finally:
        silent.close()


def test_the_parent_down_gives_a_clear_502_not_a_hang(env):
    proxy = env.proxy(f"http://127.0.0.1:{free_port()}")  # nobody listens there
    # the fast path's tunnel: a 502 to the CONNECT, saying why
    start = time.monotonic()
    status, text = refused_connect(proxy, f"{TUNNEL}:{env.tls.port}")
    assert status == 502 and "through the parent proxy 127.0.0.1:" in text, text
    assert "Connect call failed" in text, text
    # an intercepted API call: the 502 in the API's own format
    status, body = through(
        proxy, f"https://{AI}:{env.tls.port}/v1/chat/completions",
        "-H", "Authorization: Bearer sk-test", "-H", "Content-Type: application/json",
        "-d", CHAT,
    )  # fmt: skip
    assert status == 502, body
    error = json.loads(body)["error"]
    assert "through the parent proxy 127.0.0.1:" in error["message"], error
    assert error["type"] == "upstream_error"
    # plain HTTP
    status, body = through(proxy, f"http://{PLAIN}:{env.plain.port}/")
    assert status == 502 and "through the parent proxy" in body, body
    assert time.monotonic() - start < 20


# -- credentials: the parent's are sent, the client's never --------------------------------------


def command_lines(pid: int) -> list[str]:
    """The command line of a process and of each of its children."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        for p in (pid, *map(int, children))
    ]


def test_the_parents_credentials_are_sent_and_never_the_clients_nor_logged(env):
    """On two workers: the URL reaches them through their environment, not their command
    line."""
    user, password = PARENT_USER, PARENT_PASSWORD.replace("@", "%40").replace(":", "%3A")
    proxy = env.proxy(f"http://{user}:{password}@{env.squid.address}", "--workers", "2")
    workers = command_lines(proxy.process.pid)[1:]
    assert len(workers) == 2 and all("--worker " in line for line in workers), workers
    # (the user name alone, "aiw", is in any path of a checkout named aiwarden)
    leaked = (f"{PARENT_USER}:", PARENT_PASSWORD, password, "upstream-proxy")
    assert not [line for line in workers if any(s in line for s in leaked)]
    client_auth = ("-U", "client:client-secret")  # the client's own, for no proxy of ours
    status, _, body, _ = request_through_tunnel(
        proxy.address, f"{TUNNEL}:{env.tls.port}", TUNNEL, TUNNEL, env.upstream_ca, "/creds-1"
    )
    assert (status, body) == (200, b"hello from upstream\n")
    status, body = through(proxy, f"https://{AI}:{env.tls.port}/creds-2", *client_auth)
    assert status == 200, body
    status, body = through(proxy, f"http://{PLAIN}:{env.plain.port}/creds-3", *client_auth)
    assert status == 200, body
    # a CONNECT with the client's Proxy-Authorization: mitmproxy's to relay, not the fast path
    r = curl("-x", proxy.url, *client_auth, "--cacert", str(env.upstream_ca),
             f"https://{TUNNEL}:{env.tls.port}/creds-4")  # fmt: skip
    assert r.stdout == "hello from upstream\n", r.stderr
    assert env.squid.wait_for_line(f"{PLAIN}:{env.plain.port}/creds-3").endswith(PARENT_AUTH)
    assert proxy.stop() == 0  # every tunnel closed: squid logs them
    time.sleep(1)
    tunnels = [line for line in env.squid.log() if line.startswith(f"CONNECT {TUNNEL}:")]
    assert len([line for line in tunnels if line.endswith(" " + PARENT_AUTH)]) == 2, tunnels
    env.squid.wait_for_line(f"CONNECT {AI}:{env.tls.port} 200 {PARENT_AUTH}")
    client = base64.b64encode(b"client:client-secret").decode()
    assert client not in "\n".join(env.squid.log())
    assert env.tls.header_lists and not any(
        k.lower() == "proxy-authorization" for h in env.tls.header_lists for k, _ in h
    )
    logs = json.dumps(proxy.drain())
    for secret in (PARENT_PASSWORD, password, PARENT_AUTH.removeprefix("Basic%20")):
        assert secret not in logs
    assert " ".join(proxy.process.args).count("--upstream-proxy") == 1


def test_the_proxies_run_this_checkouts_code():
    """The `aiwarden` script may import another checkout's package (an editable install):
    the harness puts this one first, so what is tested is the code here (that checkout's
    `aiwarden run` knows no --upstream-proxy)."""
    r = subprocess.run([AIWARDEN, "run", "--help"], capture_output=True, text=True,
                       env=proxy_environment(), timeout=60)  # fmt: skip
    assert "--upstream-proxy" in r.stdout, r.stdout + r.stderr


def test_a_bad_parent_url_is_refused_without_repeating_its_credentials(env):
    for url, problem in (
        ("https://u:topsecret@127.0.0.1:3128", "only http://"),
        ("http://u:topsecret@127.0.0.1", "host and port"),
        ("socks5://127.0.0.1:1080", "only http://"),
    ):
        r = subprocess.run(
            [AIWARDEN, "run", "--policy", str(env.policy), "--confdir", str(env.work / "ca"),
             "--upstream-proxy", url, "--listen", "127.0.0.1:0", "--admin", ""],
            capture_output=True, text=True, timeout=60, env=proxy_environment(),
        )  # fmt: skip
        assert r.returncode == 2 and problem in r.stderr, r.stderr
        assert "topsecret" not in r.stderr + r.stdout


# -- mitmdump -s, with mitmproxy's own upstream mode ----------------------------------------------


def test_mitmdump_users_chain_with_mitmproxys_upstream_mode(env):
    with loopback_names((), unresolvable=NAMES):
        proxy = mitmdump_proxy(
            env.policy, env.work / "ca", f"mode=upstream:{env.squid.url}",
            f"ssl_verify_upstream_trusted_ca={env.upstream_ca}",
            f"upstream_auth={PARENT_USER}:{PARENT_PASSWORD}",
        )  # fmt: skip
    env.proxies.append(proxy)
    status, body = through(proxy, f"https://{AI}:{env.tls.port}/mitmdump-1")
    assert (status, body) == (200, "hello from upstream\n")
    status, body = through(
        proxy, f"http://{PLAIN}:{env.plain.port}/mitmdump-2", "-U", "client:client-secret"
    )
    assert (status, body) == (200, "hello from upstream\n")
    line = env.squid.wait_for_line(f"http://{PLAIN}:{env.plain.port}/mitmdump-2")
    assert line.endswith(" " + PARENT_AUTH), line
    status, body = through(proxy, f"https://{BLOCKED}:{env.tls.port}/v1/models")
    assert status == 403, body
    status, body = through(proxy, f"http://127.0.0.1:{env.plain.port}/mitmdump-literal")
    assert status == 403, body
    proxy.stop()
    env.squid.wait_for_line(f"CONNECT {AI}:{env.tls.port} 200 {PARENT_AUTH}")
    log = "\n".join(env.squid.log())
    assert BLOCKED not in log and "mitmdump-literal" not in log
