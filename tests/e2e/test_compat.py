"""proxy/mitm/compat.py: each reliance on mitmproxy's internals, checked on mitmproxy itself.

Every test here fails when mitmproxy stops taking the path a patch or reliance assumes,
not only when aiwarden's own code changes: they drive a real mitmproxy master (in this
process, on a thread with its own event loop) or the real `aiwarden run`. The version
check's tests are at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, SHIPPED_CATALOG
from mitmproxy import http, master, options, version
from mitmproxy.addons import core, next_layer, proxyserver
from mitmproxy.net.http.http1 import read_request_head
from proxyharness import (
    Proxy,
    Upstream,
    client_hello,
    connect_tunnel,
    crafted_hello,
    curl,
    exchange,
    mitmdump_proxy,
    plain_request,
    proxy_environment,
    write_policy,
)

from proxy import ca
from proxy.mitm import compat, framing
from proxy.mitm.deadlines import Deadlines
from proxy.mitm.recording import Recorder
from proxy.mitm.state import Clients
from proxy.serve import run

# -- a real mitmproxy master in this process -------------------------------------------------


class Hooks:
    """Counts the hooks it is given."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.calls.append("requestheaders")

    def request(self, flow: http.HTTPFlow) -> None:
        self.calls.append("request")


class RecordingManager(compat.LeanAddonManager):
    """LeanAddonManager, noting every event mitmproxy hands to its trigger_event."""

    def __init__(self, m: master.Master) -> None:
        super().__init__(m)
        self.events: list[str] = []

    async def trigger_event(self, event) -> None:
        self.events.append(event.name)
        await super().trigger_event(event)


class RecordingGuard:
    """A DestinationGuard's check_resolved that notes the names it was asked about and
    refuses those in `deny`, as the real one refuses a denied address."""

    def __init__(self, deny: frozenset[str] = frozenset()) -> None:
        self.deny = deny
        self.checked: list[tuple[str, int]] = []

    def check_resolved(self, host: str, port: int, infos: list) -> list:
        self.checked.append((host, port))
        if host in self.deny:
            raise OSError(f"aiwarden: {host} is denied by this test")
        return infos


class InProcess:
    """mitmproxy's Master with its core, proxyserver and next_layer addons, the addons
    given and `manager`, on an event loop built by `loop_factory` in a thread of its own."""

    def __init__(
        self,
        tmp: Path,
        *addons: object,
        manager: Callable = compat.LeanAddonManager,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = compat.GuardedLoop,
        setup: Callable[[asyncio.AbstractEventLoop], None] = lambda loop: None,
        **settings: object,
    ) -> None:
        self.tmp, self.extra, self.manager = tmp, addons, manager
        self.setup, self.settings = setup, settings
        self.ready = threading.Event()
        self.master: master.Master | None = None
        self.port = 0
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self._main(), loop_factory=loop_factory), daemon=True
        )
        self.thread.start()
        assert self.ready.wait(20), "the in-process mitmproxy did not start"

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.setup(self.loop)
        opts = options.Options(
            listen_host="127.0.0.1", listen_port=0, mode=["regular"], confdir=str(self.tmp)
        )
        m = master.Master(opts, with_termlog=False)
        m.addons = self.manager(m)
        m.addons.add(core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(), *self.extra)
        m.addons.add(self)  # last: its running hook reads the listener
        opts.update(**self.settings)
        self.master = m
        await m.run()

    def running(self) -> None:
        self.port = self.master.addons.get("proxyserver").listen_addrs()[0][1]
        self.ready.set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.master.shutdown()
        self.thread.join(10)


def get(proxy_address: str, host: str, port: int) -> bytes:
    """A plain HTTP GET of http://host:port/ through the proxy; the whole reply."""
    return plain_request(
        proxy_address,
        f"GET http://{host}:{port}/ HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n",
    )


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


# -- 3. LeanAddonManager --------------------------------------------------------------------


def test_mitmproxy_dispatches_hooks_through_trigger_event(tmp_path, upstream):
    """A request through a master built with LeanAddonManager reaches an addon's hooks
    exactly once each, and mitmproxy handed them to trigger_event, the method it replaces.
    Were mitmproxy to dispatch flow hooks some other way (its base class would still call
    them), `events` would miss them."""
    hooks = Hooks()
    proxy = InProcess(tmp_path, hooks, manager=RecordingManager)
    try:
        reply = get(proxy.address, "localhost", upstream.port)
        events = list(proxy.master.addons.events)
    finally:
        proxy.stop()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert hooks.calls == ["requestheaders", "request"]
    for name in ("running", "client_connected", "requestheaders", "request", "response"):
        assert events.count(name) == 1, (name, events)


# -- 4, 5. the event loop: names resolved, listeners opened --------------------------------------


class WrapRecorder:
    """Stands in for the fast path: notes every listener's protocol factory, and every
    connection a protocol is made for, and then lets mitmproxy's protocol have it."""

    def __init__(self) -> None:
        self.listeners = 0
        self.connections = 0

    def wrap(self, factory: Callable) -> Callable:
        self.listeners += 1

        def protocol():
            self.connections += 1
            return factory()

        return protocol


def test_mitmproxy_resolves_upstream_names_through_the_loop(tmp_path, upstream):
    """mitmproxy connects to a request's upstream by name with the running loop's
    getaddrinfo (the guard sees the name and port at connect time), and opens its listener
    with the loop's create_server (the fast path's wrap gets mitmproxy's factory, and the
    client connection is made by it). If mitmproxy resolved names itself, or listened some
    other way, `checked` or `connections` would be empty."""
    guard, fast = RecordingGuard(), WrapRecorder()

    def setup(loop: compat.GuardedLoop) -> None:
        loop.gate = guard
        loop.fastpath = fast

    proxy = InProcess(tmp_path, setup=setup)
    try:
        reply = get(proxy.address, "localhost", upstream.port)
    finally:
        proxy.stop()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert ("localhost", upstream.port) in guard.checked
    assert fast.listeners >= 1 and fast.connections == 1


def test_a_name_the_guard_refuses_at_connect_is_never_connected_to(tmp_path, upstream):
    """No aiwarden addon here, so nothing decides before the connection: the loop's check is
    the only thing between mitmproxy and the upstream, and it holds. (The end-to-end case,
    a name rebound after the addon's own check passed, is
    test_a_name_rebound_after_the_decision_is_refused_at_connect.)"""
    guard = RecordingGuard(deny=frozenset({"localhost"}))

    def setup(loop: compat.GuardedLoop) -> None:
        loop.gate = guard

    proxy = InProcess(tmp_path, setup=setup)
    try:
        reply = get(proxy.address, "localhost", upstream.port)
    finally:
        proxy.stop()
    assert reply.startswith(b"HTTP/1.1 502"), reply[:200]
    assert b"aiwarden: localhost is denied by this test" in reply
    assert upstream.connections == 0


def test_workers_listen_with_so_reuseport(tmp_path):
    """SharedPortLoop: mitmproxy's listener is made by the loop's create_server, which adds
    reuse_port, so the workers of `--workers N` share one port."""
    servers: list[asyncio.Server] = []

    class Recording(compat.SharedPortLoop):
        async def create_server(self, *args, **kwargs):
            server = await super().create_server(*args, **kwargs)
            servers.append(server)
            return server

    proxy = InProcess(tmp_path, loop_factory=Recording)
    try:
        listeners = [
            sock
            for server in servers
            for sock in server.sockets
            if sock.getsockname()[1] == proxy.port
        ]
        assert listeners
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in listeners)
    finally:
        proxy.stop()


# -- 11. only the addons aiwarden run uses -------------------------------------------------


def test_aiwarden_run_imports_only_the_addons_it_uses():
    """In a new process, as `aiwarden run` starts: mitmproxy's master and the addons run.py
    names import with the addons package's `__init__` not run (no onboarding app, no Flask);
    without the reliance, the same imports load them (the control)."""
    probe = (
        "import sys\n"
        "from proxy.mitm.compat import import_only_the_addons_used\n"
        "if sys.argv[1] == 'lean': import_only_the_addons_used()\n"
        "import proxy.serve.run\n"
        "from mitmproxy.addons import core, proxyserver\n"
        "print(sorted(m for m in ('flask', 'mitmproxy.addons.onboarding') if m in sys.modules))"
    )
    env = proxy_environment()

    def imported(mode: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", probe, mode]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    lean, control = imported("lean"), imported("control")
    assert lean.returncode == 0 and lean.stdout.strip() == "[]", lean.stderr
    assert control.stdout.strip() == "['flask', 'mitmproxy.addons.onboarding']", control.stderr


# -- 7. closing a connection from outside ----------------------------------------------------


def test_a_deadline_closes_a_slow_client_through_its_connection_handler(tmp_path, monkeypatch):
    """Deadlines closes a client that is too slow with its headers through
    compat.close_connection, and mitmproxy's connection handler really closes it. Were the
    handler registry or its close_connection gone, close_connection would answer False and
    the client would stay connected until mitmproxy's 600 s idle timeout."""
    results: list[bool] = []
    close = compat.close_connection

    def spy(m, client, conn) -> bool:
        results.append(close(m, client, conn))
        return results[-1]

    monkeypatch.setattr(compat, "close_connection", spy)
    deadlines = Deadlines(Recorder(Clients()))
    proxy = InProcess(tmp_path, deadlines, aiwarden_client_header_timeout=1)
    try:
        host, port = proxy.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET http://localhost:1/ HTTP/1.1\r\nHost: local")
            start = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the proxy
        assert time.monotonic() - start < 6
    finally:
        proxy.stop()
    assert results == [True]


# -- 2. the message type checks ----------------------------------------------------------------


def test_mitmproxy_builds_its_messages_through_the_patched_post_init(monkeypatch):
    """Requests mitmproxy parses and responses it makes are built through
    MessageData.__post_init__, the method compat replaces; and that method is the type
    check (a wrong type raises TypeError before, nothing after). If mitmproxy's RequestData
    or ResponseData got a __post_init__ of their own, or stopped being dataclasses, `built`
    would stay empty."""
    monkeypatch.setattr(http.MessageData, "__post_init__", http.MessageData.__post_init__)
    fields = {f.name: f for f in dataclasses.fields(http.RequestData)}
    assert "http_version" in fields
    wrong = read_request_head([b"GET / HTTP/1.1\r\n", b"Host: x\r\n"]).data
    with pytest.raises(TypeError):  # mitmproxy's own check
        dataclasses.replace(wrong, http_version="HTTP/1.1")  # str, not bytes

    built: list[str] = []
    monkeypatch.setattr(compat, "_no_check", lambda self: built.append(type(self).__name__))
    compat.skip_message_type_checks()
    request = read_request_head([b"GET / HTTP/1.1\r\n", b"Host: x\r\n"])
    http.Response.make(200, b"ok")
    assert built == ["RequestData", "ResponseData"]
    dataclasses.replace(request.data, http_version="HTTP/1.1")  # no longer checked


# -- 6. every server name ---------------------------------------------------------------------


def test_sni_entries_reads_every_server_name():
    """Two server names (mitmproxy's `sni` gives none then) and a name of another type:
    sni_entries yields each as it was sent, from mitmproxy's own parse."""
    hello = framing.read_client_hello(crafted_hello([b"a.example", b"chatgpt.com"]))
    assert hello.sni is None  # why compat reads the parse itself
    assert list(compat.sni_entries(hello)) == [(0, b"a.example"), (0, b"chatgpt.com")]
    assert framing.server_names(hello) == ["a.example", "chatgpt.com"]
    odd = crafted_hello([b"a.example"]).replace(b"\x00\x00\x09a.example", b"\x01\x00\x09a.example")
    assert list(compat.sni_entries(framing.read_client_hello(odd))) == [(1, b"a.example")]
    assert list(compat.sni_entries(framing.read_client_hello(crafted_hello(None)))) == []
    real = framing.read_client_hello(client_hello("api.openai.com"))
    assert list(compat.sni_entries(real)) == [(0, b"api.openai.com")]


# -- the real proxy: error answers, error pages, rebinding, the fast path ------------------------

# gateway.test is an approved AI gateway the proxy intercepts; rebind.test answers an allowed
# address when the proxy decides and a denied one when mitmproxy connects
POLICY = """
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16, 198.51.100.0/24]
services:
  - {id: gateway, name: AI gateway, vendor: Corp, category: api, hosts: [gateway.test],
     api_format: openai, source: test}
rules:
  - id: watch-gateway
    match: {services: [gateway]}
    action: monitor
"""
DENIED = "198.51.100.7"
RESOLVER = f'''
"""Test names for the proxy of tests/test_compat.py: gateway.test is 127.0.0.1; rebind.test
is 127.0.0.1 the first time it is looked up (for each port) and {DENIED} after."""
import socket
import threading

_getaddrinfo = socket.getaddrinfo
_seen = set()
_lock = threading.Lock()


def getaddrinfo(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name == "gateway.test":
        host = "127.0.0.1"
    elif name == "rebind.test":
        with _lock:
            host = "{DENIED}" if (name, port) in _seen else "127.0.0.1"
            _seen.add((name, port))
    return _getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = getaddrinfo
'''


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """`aiwarden run` with the test names, at debug level (the fast path logs its relays)."""
    work = tmp_path_factory.mktemp("compat")
    ca.init(work / "ca")
    (work / "names").mkdir()
    (work / "names" / "sitecustomize.py").write_text(RESOLVER)
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    with pytest.MonkeyPatch.context() as mp:
        path = [str(work / "names"), os.environ.get("PYTHONPATH", "")]
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in path if p))
        proxy = Proxy(policy, work / "ca", "--log-level", "debug")
    yield proxy
    assert proxy.stop() == 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_upstream_failure_gets_aiwardens_answer(real):
    """mitmproxy sends its own HTML page after the error hook; compat's wrap of
    HttpStream.handle_protocol_error sends the hook's answer instead: the gateway's API
    error JSON. Were the wrap not on mitmproxy's path, the client would get HTML."""
    r = curl("-si", "--proxy", real.url, f"http://gateway.test:{closed_port()}/v1/models")
    head, _, body = r.stdout.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 502"), r.stdout[:300]
    assert "application/json" in head.lower() and "x-aiwarden-reference:" in head.lower()
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "refused")
    assert "<html" not in body.lower()


def test_mitmproxys_own_error_page_does_not_name_it(real):
    """mitmproxy's error pages read version.MITMPROXY when they are made: a request it
    cannot parse gets a 400 whose Server header says aiwarden."""
    host, port = real.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        reply = exchange(sock, "NOT A REQUEST\x01\r\n\r\n")
    head = reply.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 400"), reply[:200]
    assert b"\r\nserver: aiwarden\r\n" in head + b"\r\n"
    assert b"mitmproxy" not in reply.lower()


def test_a_name_rebound_after_the_decision_is_refused_at_connect(real, upstream):
    """DNS rebinding end to end: rebind.test resolves to an allowed address when the addon
    decides and checks it (request and server_connect), and into a denied range when
    mitmproxy resolves it again to connect. Only the loop's getaddrinfo sees that second
    answer, so the refusal can only come from it: had mitmproxy resolved the name some other
    way, it would have connected to 198.51.100.7, and the client would get "unreachable"
    or wait for a timeout. (test_bypass.py checks the loop itself, with asyncio.)"""
    r = curl("-si", "--proxy", real.url, f"http://rebind.test:{upstream.port}/")
    head = r.stdout.partition("\r\n\r\n")[0]
    assert "x-aiwarden-reference:" in head.lower(), r.stdout[:300]
    # the refusal of the loop's guard is our own: the block page of network.deny_destinations
    assert head.startswith("HTTP/1.1 403"), r.stdout[:300]
    assert "x-aiwarden-rule: network.deny_destinations" in head.lower(), r.stdout[:300]
    assert upstream.connections == 0


def test_mitmproxys_listener_gets_the_fast_path(real):
    """A CONNECT the policy tunnels is relayed by the fast path, which stands in front of
    mitmproxy's listener only because mitmproxy listens with the loop's create_server."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            got.append(conn.recv(65536))
            conn.sendall(b"answer")

    threading.Thread(target=serve, daemon=True).start()
    try:
        sock, status, _ = connect_tunnel(real.address, f"localhost:{port}")
        with sock:
            assert status == 200
            hello = client_hello("localhost")
            sock.sendall(hello)
            assert sock.recv(64) == b"answer"
    finally:
        server.close()
    assert got and got[0].startswith(hello[:5])
    real.wait_for(lambda r: f"fast path: relaying localhost:{port}" in r.get("msg", ""))


# -- the version check -------------------------------------------------------------------------


def test_a_tested_version_passes(monkeypatch):
    monkeypatch.delenv(compat.ALLOW_ENV, raising=False)
    for tested in ("12.3", "12.3.0", "12.3.1", "12.3.17"):
        monkeypatch.setattr(version, "VERSION", tested)
        assert compat.check_mitmproxy_version() is None


def test_another_version_is_refused_unless_accepted_exactly(monkeypatch):
    monkeypatch.delenv(compat.ALLOW_ENV, raising=False)
    for other in ("12.4.0", "12.30.1", "13.0.0", "12.2.9"):
        monkeypatch.setattr(version, "VERSION", other)
        with pytest.raises(compat.UntestedMitmproxy) as refused:
            compat.check_mitmproxy_version()
        assert str(refused.value).startswith(
            f"mitmproxy {other} is not a version aiwarden was tested with (12.3.x)"
        )
        assert f"{compat.ALLOW_ENV}={other}" in str(refused.value)
    monkeypatch.setenv(compat.ALLOW_ENV, "12.4.0")
    with pytest.raises(compat.UntestedMitmproxy):  # 13.0.0 is still set
        compat.check_mitmproxy_version()
    monkeypatch.setattr(version, "VERSION", "12.4.0")
    assert compat.check_mitmproxy_version() == "12.4.0"


def test_aiwarden_run_refuses_an_untested_mitmproxy_in_one_line(monkeypatch, capsys):
    monkeypatch.delenv(compat.ALLOW_ENV, raising=False)
    monkeypatch.setattr(version, "VERSION", "13.0.0")
    refusal = run.check_flags(argparse.Namespace())  # before it reads any option
    assert isinstance(refusal, str) and "\n" not in refusal
    assert refusal.startswith("mitmproxy 13.0.0 is not a version aiwarden was tested with (12.3.x)")
    out, err = capsys.readouterr()
    assert out == err == ""  # (cmd_run prints it, as "aiwarden run: ...")


def pretend_mitmproxy(tmp_path: Path, installed: str, allow: str | None = None) -> dict:
    """An environment in which processes started by the test see mitmproxy `installed`."""
    site = tmp_path / "pretend"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        f"import mitmproxy.version\nmitmproxy.version.VERSION = {installed!r}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != compat.ALLOW_ENV and "PROXY" not in k}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    if allow is not None:
        env[compat.ALLOW_ENV] = allow
    return env


def test_the_aiwarden_command_refuses_an_untested_mitmproxy(tmp_path):
    """`aiwarden run` as people start it: exit 2, one line, no traceback."""
    policy = write_policy(tmp_path / "policy", "rules: []\n", SHIPPED_CATALOG)
    r = subprocess.run(
        [str(Path(sys.executable).parent / "aiwarden"), "run", "--policy", str(policy),
         "--confdir", str(tmp_path / "ca"), "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, env=pretend_mitmproxy(tmp_path, "13.0.0"),
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert r.stderr.startswith(
        "aiwarden run: mitmproxy 13.0.0 is not a version aiwarden was tested with (12.3.x)"
    )
    assert r.stderr.count("\n") == 1
    assert not (tmp_path / "ca").exists()  # nothing was started, not even the CA made


def test_mitmdump_refuses_to_run_the_script_on_an_untested_mitmproxy(tmp_path):
    """What someone who runs `mitmdump -s proxy/mitm/script.py` sees: our one line, then
    mitmproxy's own, and an exit; no traceback."""
    script = ROOT / "proxy" / "mitm" / "script.py"
    r = subprocess.run(
        [str(Path(sys.executable).parent / "mitmdump"), "-s", str(script),
         "--listen-host", "127.0.0.1", "--listen-port", "0",
         "--set", f"confdir={tmp_path / 'conf'}"],
        capture_output=True, text=True, timeout=60, env=pretend_mitmproxy(tmp_path, "13.0.0"),
    )  # fmt: skip
    output = r.stdout + r.stderr
    assert r.returncode != 0, output
    assert "aiwarden: mitmproxy 13.0.0 is not a version aiwarden was tested with (12.3.x)" in (
        output
    )
    assert "Traceback" not in output


@pytest.mark.parametrize("how", ["aiwarden run", "mitmdump -s"])
def test_an_accepted_untested_version_runs_and_says_so(tmp_path, monkeypatch, how):
    """AIWARDEN_ACCEPT_MITM_VERSION naming the installed version exactly: the proxy starts,
    and its log says the version is untested."""
    for name, value in pretend_mitmproxy(tmp_path, "13.0.0", allow="13.0.0").items():
        monkeypatch.setenv(name, value)
    ca.init(tmp_path / "ca")
    policy = write_policy(tmp_path / "policy", "rules: []\n", SHIPPED_CATALOG)
    if how == "aiwarden run":
        proxy = Proxy(policy, tmp_path / "ca")
        said = proxy.wait_for(lambda r: r.get("event") == "mitmproxy_untested")
        assert said["version"] == "13.0.0"
    else:
        proxy = mitmdump_proxy(policy, tmp_path / "ca")
        proxy.wait_for(lambda r: "mitmproxy 13.0.0 is untested" in r.get("text", ""))
    assert proxy.stop() == 0
