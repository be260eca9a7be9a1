"""Integrity: a connection whose destination is not tunnel+allow for every name it claims
carries no byte upstream that a decision did not see.

Each technique here once walked around the proxy (issue 15). Every test drives the real
proxy three ways — `aiwarden run` with the fast path, without it, and stock mitmdump with the
addon as a script — against local upstreams that count every connection they accept. The
`control` tests prove those upstreams are reachable where the policy allows, so a refusal
test cannot pass just because nothing was listening.

The policy: `localhost` is a blocked AI service (the blocked service of these tests),
`127.0.0.2` a shared host where only /copilot_internal/ is a blocked code assistant, and
`127.0.0.1` an ordinary site (tunnelled undecrypted). Loopback is not a denied destination
here, so only the decisions stand between the client and the upstreams.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
import ssl
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from conftest import SHIPPED_CATALOG, local_ai_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxyharness import (
    Proxy,
    Upstream,
    by_label,
    client_hello,
    connect_tunnel,
    crafted_hello,
    exchange,
    make_upstream_pki,
    mitmdump_proxy,
    write_policy,
)

from proxy import ca
from proxy.decide.destinations import DestinationGuard

POLICY = local_ai_policy(
    clients=("127.0.0.0/8", "::1/128"),
    services="""
    - {id: shared-assistant, name: Shared assistant, vendor: Test, category: code-assistant,
       hosts: [127.0.0.2], paths: [/copilot_internal/**], source: test}
    """,
    rules="""
    - id: block-ai
      match: {categories: [chat, api, code-assistant]}
      action: block
    """,
)
MODES = ("fast", "no-fast", "mitmdump")
REFUSED = (b"HTTP/1.1 403", b"HTTP/1.1 400")  # blocked by the policy, or refused unread
GET = "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"


class Env:
    def __init__(self, work: Path) -> None:
        ca.init(work / "ca")
        self.aiwarden_ca = work / "ca" / "ca.pem"
        self.upstream_ca, cert, key = make_upstream_pki(work)
        self.plain = Upstream()
        self.tls = Upstream(tls=(cert, key))
        self.shared_plain = Upstream(host="127.0.0.2")
        self.shared_tls = Upstream(tls=(cert, key), host="127.0.0.2")
        policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
        run = (work / "ca", "--upstream-ca", str(self.upstream_ca))
        self.proxies = {
            "fast": Proxy(policy, *run),
            "no-fast": Proxy(policy, *run, "--no-fast-tunnels"),
            "mitmdump": mitmdump_proxy(
                policy, work / "ca", f"ssl_verify_upstream_trusted_ca={self.upstream_ca}"
            ),
        }

    def upstreams(self) -> tuple[int, ...]:
        """Connections every upstream has accepted so far."""
        return tuple(
            u.connections for u in (self.plain, self.tls, self.shared_plain, self.shared_tls)
        )

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
        for upstream in (self.plain, self.tls, self.shared_plain, self.shared_tls):
            upstream.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    env = Env(tmp_path_factory.mktemp("integrity"))
    yield env
    env.close()


@pytest.fixture(params=MODES)
def proxy(request, env) -> Proxy:
    return env.proxies[request.param]


def settled(env: Env, before: tuple[int, ...]) -> tuple[int, ...]:
    """The upstreams' counts once a late connection would have been accepted (a connection
    the proxy made is counted by the upstream's thread a moment after it is made)."""
    deadline = time.monotonic() + 0.25
    while env.upstreams() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    return env.upstreams()


def send_in_pieces(sock: socket.socket, pieces: list[bytes], pause: float = 0.05) -> bytes:
    """Write each piece as its own TCP segment, half-close, and read until the proxy closes."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(5)
    reply = b""
    try:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(pause)
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(65536):
            reply += chunk
    except OSError:  # reset, or closed by the proxy before all was sent
        pass
    finally:
        sock.close()
    return reply


def tunnel(proxy: Proxy, target: str) -> socket.socket:
    sock, status, head = connect_tunnel(proxy.address, target)
    assert status == 200, head
    return sock


def refusals(proxy: Proxy) -> float:
    return sum(by_label(proxy, "aiwarden_bad_requests_total", "reason").values())


def tls_inside(sock: socket.socket, cafile: Path, sni: str | None) -> ssl.SSLSocket:
    """TLS over an answered tunnel, without ALPN (as many scripts and SDKs do)."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False
    tls = context.wrap_socket(sock, server_hostname=sni)
    tls.settimeout(5)
    return tls


# -- controls: the upstreams are reachable where the policy allows ----------------------------


def test_control_allowed_paths_reach_every_upstream(env, proxy):
    before = env.upstreams()
    # an ordinary site, tunnelled (TLS end to end, then plain HTTP), and the shared host on a
    # path that is not the assistant's: intercepted, decided, forwarded
    for upstream, cafile, sni, path in (
        (env.tls, env.upstream_ca, None, "/"),
        (env.plain, None, None, "/"),
        (env.shared_tls, env.aiwarden_ca, "127.0.0.2", "/repos"),
        (env.shared_plain, None, None, "/repos"),
    ):
        sock = tunnel(proxy, f"{upstream.host}:{upstream.port}")
        with tls_inside(sock, cafile, sni) if cafile else sock as conn:
            reply = exchange(conn, GET.format(path=path, host=upstream.host))
        assert reply.startswith(b"HTTP/1.1 200"), (upstream.host, reply[:200])
    assert [b - a for a, b in zip(before, env.upstreams(), strict=True)] == [1, 1, 1, 1]


def test_control_raw_tcp_to_an_allowed_host_is_relayed(env, proxy):
    """Raw TCP (here an SSH greeting) to a host the policy tunnels is still relayed."""
    before = env.upstreams()
    send_in_pieces(tunnel(proxy, f"127.0.0.1:{env.plain.port}"), [b"SSH-2.0-OpenSSH_9.6\r\n"])
    assert settled(env, before)[0] == before[0] + 1


@pytest.mark.parametrize("names", [None, [b"127.0.0.1:443"]], ids=["no SNI", "SNI with a port"])
def test_control_a_crafted_clienthello_to_an_allowed_host_is_tunnelled(env, proxy, names):
    """The crafted ClientHellos below are good enough to be tunnelled when nothing in them
    is blocked, so a refusal below is the proxy's, not a parse failure. (Some clients, hey
    among them, put the port in the SNI.)"""
    before = env.upstreams()
    send_in_pieces(tunnel(proxy, f"127.0.0.1:{env.tls.port}"), [crafted_hello(names)])
    assert settled(env, before)[1] == before[1] + 1


# -- 1. mitmproxy's raw-TCP fallback ------------------------------------------------------------


def test_plain_http_whose_first_write_is_two_bytes_is_decided(env, proxy):
    """CONNECT to a blocked host, then `GE` + `T /v1/models ...`: mitmproxy took two bytes
    for raw TCP and relayed the request undecided."""
    before = env.upstreams()
    reply = send_in_pieces(
        tunnel(proxy, f"localhost:{env.plain.port}"),
        [b"GE", b"T /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"],
    )
    assert settled(env, before) == before
    assert reply == b"" or reply.startswith(b"HTTP/1.1 403"), reply[:200]


@pytest.mark.parametrize(
    "pieces",
    [
        [b"\r\nGET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"],
        [b"GE", b"T /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"],
    ],
    ids=["leading CRLF", "first write two bytes"],
)
def test_a_request_inside_tls_without_alpn_is_decided(env, proxy, pieces):
    before = env.upstreams()
    conn = tls_inside(tunnel(proxy, f"localhost:{env.tls.port}"), env.aiwarden_ca, "localhost")
    reply = send_tls_pieces(conn, pieces)
    assert settled(env, before) == before
    assert reply == b"" or reply.startswith(REFUSED), reply[:200]


def test_a_request_inside_tls_on_a_shared_host_is_decided(env, proxy):
    before = env.upstreams()
    conn = tls_inside(
        tunnel(proxy, f"127.0.0.2:{env.shared_tls.port}"), env.aiwarden_ca, "127.0.0.2"
    )
    request = b"GET /copilot_internal/v2/token HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n"
    reply = send_tls_pieces(conn, [b"\r\n" + request])
    assert settled(env, before) == before
    assert reply == b"" or reply.startswith(REFUSED), reply[:200]
    conn = tls_inside(
        tunnel(proxy, f"127.0.0.2:{env.shared_tls.port}"), env.aiwarden_ca, "127.0.0.2"
    )
    reply = send_tls_pieces(conn, [b"GE", request[2:]])
    assert settled(env, before) == before
    assert reply == b"" or reply.startswith(b"HTTP/1.1 403"), reply[:200]


def send_tls_pieces(conn: ssl.SSLSocket, pieces: list[bytes]) -> bytes:
    reply = b""
    try:
        for piece in pieces:
            conn.sendall(piece)
            time.sleep(0.05)
        while chunk := conn.recv(65536):
            reply += chunk
    except (ssl.SSLError, OSError):
        pass
    finally:
        conn.close()
    return reply


@pytest.mark.parametrize("split", ["first segment 2 bytes", "record version 0x0304"])
def test_end_to_end_tls_to_a_blocked_host_is_not_relayed(env, proxy, split):
    hello = client_hello("localhost")
    if split.startswith("first"):
        pieces = [hello[:2], hello[2:]]
    else:
        pieces = [hello[:2] + b"\x04" + hello[3:]]
    before = env.upstreams()
    send_in_pieces(tunnel(proxy, f"localhost:{env.tls.port}"), pieces)
    assert settled(env, before) == before


def test_domain_fronting_with_an_odd_record_version_is_refused(env, proxy):
    """CONNECT an ordinary site, SNI the blocked service, record version 0x0304 (which TLS
    1.3 servers ignore): mitmproxy did not see TLS and tunnelled it."""
    hello = client_hello("localhost")
    before, refused = env.upstreams(), refusals(proxy)
    send_in_pieces(tunnel(proxy, f"127.0.0.1:{env.tls.port}"), [hello[:2] + b"\x04" + hello[3:]])
    assert settled(env, before) == before
    assert refusals(proxy) == refused + 1


def test_unknown_framing_to_a_blocked_host_is_refused_and_counted(env, proxy):
    before, refused = env.upstreams(), refusals(proxy)
    send_in_pieces(tunnel(proxy, f"localhost:{env.plain.port}"), [b"\x00\x01binary protocol"])
    assert settled(env, before) == before
    assert refusals(proxy) == refused + 1


def test_a_101_that_is_not_websocket_ends_the_connection(env, proxy):
    """On the shared host an allowed request gets `101 Switching Protocols` to a protocol
    that is not WebSocket: mitmproxy relayed whatever followed, undecided."""
    switched = len(env.shared_plain.switched)
    sock = tunnel(proxy, f"127.0.0.2:{env.shared_plain.port}")
    sock.settimeout(5)
    sock.sendall(b"GET /switch HTTP/1.1\r\nHost: 127.0.0.2\r\nConnection: Upgrade\r\n"
                 b"Upgrade: x-raw\r\n\r\n")  # fmt: skip
    head = sock.recv(65536)
    assert not head.startswith(b"HTTP/1.1 101"), head[:200]
    assert head.startswith(b"HTTP/1.1 502"), head[:200]
    send_in_pieces(sock, [b"GET /copilot_internal/v2/token HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n"])
    time.sleep(0.2)
    assert env.shared_plain.switched[switched:] == []


# -- 2. every name a request claims ---------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_absolute_form_target_inside_a_tunnel_is_decided(env, proxy, scheme):
    request = (
        f"POST {scheme}://localhost/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.2\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    before = env.upstreams()
    if scheme == "http":
        reply = exchange(tunnel(proxy, f"127.0.0.2:{env.shared_plain.port}"), request)
    else:
        sock = tunnel(proxy, f"127.0.0.2:{env.shared_tls.port}")
        with tls_inside(sock, env.aiwarden_ca, "127.0.0.2") as conn:
            reply = exchange(conn, request)
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
    assert settled(env, before) == before


def test_plain_http_behind_an_empty_line_is_refused_even_toward_an_allowed_host(env, proxy):
    """mitmproxy relays `\r\nGET ...` as raw TCP; toward an ordinary site its Host header,
    naming the blocked service, would reach a front end that serves both. (Refused with a
    400; or, when the empty line arrives with the CONNECT, mitmproxy's reader of the CONNECT
    skips it and the request gets the block page.)"""
    before = env.upstreams()
    reply = exchange(
        tunnel(proxy, f"127.0.0.1:{env.plain.port}"),
        "\r\n" + GET.format(path="/v1/models", host="localhost"),
    )
    assert reply.startswith(REFUSED), reply[:200]
    assert settled(env, before) == before


def h2_request(headers: list[tuple[str, str]]) -> tuple[h2.connection.H2Connection, bytes]:
    """An HTTP/2 client connection's first bytes: the preface, settings, one GET."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
    )
    conn.initiate_connection()
    conn.send_headers(1, headers, end_stream=True)
    return conn, conn.data_to_send()


def h2_status(conn: h2.connection.H2Connection, sock) -> int | None:
    """The status of stream 1, or None when the connection ends without one."""
    while data := sock.recv(65536):
        for received in conn.receive_data(data):
            if isinstance(received, h2.events.ResponseReceived):
                return int(dict(received.headers)[b":status"])
        sock.sendall(conn.data_to_send())
    return None


def test_http2_authority_and_host_header_are_both_decided(env, proxy):
    """HTTP/2 on the shared host: `:authority` an allowed name, a `host` header the blocked
    service."""
    before = env.upstreams()
    context = ssl.create_default_context(cafile=str(env.aiwarden_ca))
    context.check_hostname = False
    context.set_alpn_protocols(["h2"])
    sock = tunnel(proxy, f"127.0.0.2:{env.shared_tls.port}")
    with context.wrap_socket(sock, server_hostname="127.0.0.2") as tls:
        tls.settimeout(5)
        assert tls.selected_alpn_protocol() == "h2"
        conn, data = h2_request([(":method", "GET"), (":scheme", "https"),
                                 (":authority", "127.0.0.2"), (":path", "/repos"),
                                 ("host", "localhost")])  # fmt: skip
        tls.sendall(data)
        try:
            status = h2_status(conn, tls)
        except (OSError, h2.exceptions.ProtocolError):
            status = None
    assert status in (None, 400, 403)
    assert settled(env, before) == before


def test_http2_prior_knowledge_to_a_blocked_host_is_decided(env, proxy):
    before = env.upstreams()
    _, data = h2_request([(":method", "GET"), (":scheme", "http"),
                             (":authority", "localhost"), (":path", "/v1/models")])  # fmt: skip
    reply = send_in_pieces(tunnel(proxy, f"localhost:{env.plain.port}"), [data])
    assert settled(env, before) == before
    assert b"hello from upstream" not in reply


def test_a_connect_inside_a_tunnel_is_not_followed(env, proxy):
    before = env.upstreams()
    reply = send_in_pieces(
        tunnel(proxy, f"127.0.0.1:{env.plain.port}"),
        [f"CONNECT localhost:{env.plain.port} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode(),
         b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n"],
    )  # fmt: skip
    assert not reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert settled(env, before) == before


# -- 3. an SNI the proxy cannot read -------------------------------------------------------------

UNREADABLE_SNI = {  # a port is read as its host (hey and others send one); the rest are not
    "with a port": [b"localhost:443"],
    "a character no name holds": [b"local!host"],
    "a 64-character label": [b"a" * 64 + b".example"],
    "two names": [b"example.com", b"localhost"],
}


@pytest.mark.parametrize("names", UNREADABLE_SNI.values(), ids=UNREADABLE_SNI)
def test_an_sni_mitmproxy_drops_is_never_tunnelled(env, proxy, names):
    before = env.upstreams()
    send_in_pieces(tunnel(proxy, f"127.0.0.1:{env.tls.port}"), [crafted_hello(names)])
    assert settled(env, before) == before


# -- 4. the proxy's own host -------------------------------------------------------------------


def test_this_host_is_refused_in_every_spelling(env, proxy):
    """`::` and `0.0.0.0` are this machine to Linux; neither is in this policy's deny list."""
    v6 = Upstream(host="::1")
    try:
        before = v6.connections, env.upstreams()
        admin_port = proxy.admin.rsplit(":", 1)[1]
        for target in (f"[::]:{v6.port}", f"0.0.0.0:{env.plain.port}", f"0.0.0.0:{admin_port}"):
            request = f"GET http://{target}/metrics HTTP/1.1\r\nHost: {target}\r\n"
            host, port = proxy.address.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=15) as sock:
                reply = exchange(sock, request + "Connection: close\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 403"), (target, reply[:300])
        sock, status, _ = connect_tunnel(proxy.address, f"[::]:{v6.port}")
        sock.close()
        assert status == 403
        assert (v6.connections, env.upstreams()) == before
    finally:
        v6.close()


def test_the_proxys_own_port_is_refused_by_any_address_of_this_host():
    """A proxy listening on every address is reached through each address of the machine,
    not only loopback (a UDP socket finds this host's address and sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # documentation range: only the route is read
        except OSError:
            pytest.skip("this machine has no IPv4 route besides loopback")
        local = ipaddress.ip_address(probe.getsockname()[0])
    guard = DestinationGuard(())
    guard.protect("0.0.0.0", 3128)
    assert "is the proxy itself" in guard.why_denied_ip(local, 3128)
    assert "is the proxy itself" in guard.why_denied_ip(ipaddress.ip_address("127.0.0.9"), 3128)
    assert guard.why_denied_ip(local, 3129) is None  # another port of this host
    assert guard.why_denied_ip(ipaddress.ip_address("198.51.100.7"), 3128) is None  # elsewhere


# -- 6. what the proxy itself says and passes on ---------------------------------------------------


def test_proxy_credentials_and_hop_headers_are_not_forwarded(env, proxy):
    request = (
        f"GET http://127.0.0.1:{env.plain.port}/ HTTP/1.1\r\nHost: 127.0.0.1:{env.plain.port}\r\n"
        "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\nProxy-Connection: keep-alive\r\n"
        "Connection: close\r\n\r\n"
    )
    host, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        assert exchange(sock, request).startswith(b"HTTP/1.1 200")
    headers = {k.lower() for k in env.plain.requests[-1][2]}
    assert "proxy-authorization" not in headers and "proxy-connection" not in headers


def test_error_pages_do_not_name_mitmproxy(env, proxy):
    host, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        reply = exchange(sock, "NOT A REQUEST\x01\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"mitmproxy" not in reply.lower()


# -- properties: arbitrary bytes and segmentations ---------------------------------------------

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def pieces_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@PROPERTY
@given(data=st.binary(min_size=1, max_size=400), cuts=st.lists(st.integers(0, 400), max_size=4))
@pytest.mark.parametrize("mode", MODES)
def test_no_byte_stream_after_a_connect_to_a_blocked_host_reaches_it(env, mode, data, cuts):
    before = env.upstreams()
    send_in_pieces(tunnel(env.proxies[mode], f"localhost:{env.plain.port}"),
                   pieces_of(data, cuts), pause=0.01)  # fmt: skip
    assert settled(env, before) == before


@PROPERTY
@given(
    version=st.binary(min_size=2, max_size=2),
    cuts=st.lists(st.integers(0, 600), max_size=3),
)
@pytest.mark.parametrize("mode", MODES)
def test_no_split_or_record_version_of_a_fronting_clienthello_reaches_it(env, mode, version, cuts):
    hello = client_hello("localhost")
    hello = hello[:1] + version + hello[3:]
    before = env.upstreams()
    send_in_pieces(tunnel(env.proxies[mode], f"127.0.0.1:{env.tls.port}"),
                   pieces_of(hello, cuts), pause=0.01)  # fmt: skip
    assert settled(env, before) == before
