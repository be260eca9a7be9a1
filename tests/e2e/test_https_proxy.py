"""The proxy served over TLS (an HTTPS proxy, proxy/mitm/proxy_tls.py): curl connects to the
proxy's port with TLS (`--proxy https://`) and speaks proxy HTTP inside. Tunnels, blocks,
plain HTTP and Basic authentication work as on plain HTTP, with the fast path on and off and
under `mitmdump -s`; `--require-proxy-tls` refuses plain HTTP to the proxy; the start warns
when Basic passwords would cross the network in clear."""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import BLOCK_AI_POLICY, SHIPPED_CATALOG
from proxyharness import (
    AIWARDEN,
    CHROMIUM,
    Proxy,
    Upstream,
    chromium_dom,
    curl,
    exchange,
    make_upstream_pki,
    metrics,
    mitmdump_proxy,
    proxy_environment,
    spki_pin,
    value,
    write_policy,
)

from proxy import ca

POLICY = BLOCK_AI_POLICY
MODES = {"fast": (), "mitmproxy": ("--no-fast-tunnels",), "mitmdump": None}
WARNING = "passwords cross the network in clear text"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("https_proxy")
    ca.init(work / "ca")
    upstream_ca, cert, key = make_upstream_pki(work)
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    proxies: dict[str, Proxy] = {}
    for mode, flags in MODES.items():
        audit = work / f"audit-{mode}.jsonl"
        if flags is None:
            proxies[mode] = mitmdump_proxy(policy, work / "ca", f"aiwarden_audit_log={audit}")
        else:
            proxies[mode] = Proxy(policy, work / "ca", "--audit-log", str(audit), *flags)
    tls, plain = Upstream(tls=(cert, key)), Upstream()
    yield {
        "work": work,
        "policy": policy,
        "proxies": proxies,
        "tls": tls,
        "plain": plain,
        "upstream_ca": upstream_ca,
        "server_pem": (cert, key),
        "ca": work / "ca" / "ca.pem",
    }
    for proxy in proxies.values():
        proxy.stop()
    tls.close()
    plain.close()


@pytest.fixture(params=list(MODES))
def mode(request):
    return request.param


def through_tls(proxy: Proxy, *args: str, name: str = "127.0.0.1", cafile: Path) -> str:
    """curl through the proxy as an HTTPS proxy, reached by `name`, trusting `cafile` for
    the proxy's certificate; its output (stdout, then stderr)."""
    port = proxy.address.rsplit(":", 1)[1]
    r = curl("--proxy", f"https://{name}:{port}", "--proxy-cacert", str(cafile), *args)
    return r.stdout + r.stderr


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_a_tunnel_to_an_allowed_server_through_tls_to_the_proxy(env, mode, name):
    """By address (no SNI) and by name (SNI `localhost`: a host the policy would tunnel,
    which must not turn the proxy's own TLS into a tunnel to nowhere)."""
    tls = env["tls"]
    before = tls.connections
    out = through_tls(
        env["proxies"][mode], "--cacert", str(env["upstream_ca"]),
        f"https://localhost:{tls.port}/", name=name, cafile=env["ca"],
    )  # fmt: skip
    assert out == "hello from upstream\n"
    assert tls.connections == before + 1


def blocks(proxy: Proxy) -> float:
    """Every request the proxy counted as blocked."""
    return sum(
        v for (name, labels), v in metrics(proxy).items()
        if name == "aiwarden_requests_total" and ("action", "block") in labels
    )  # fmt: skip


def test_an_ai_host_is_blocked_inside_with_its_clients_format(env, mode):
    proxy = env["proxies"][mode]
    before = blocks(proxy)
    out = through_tls(
        proxy, "-i", "--cacert", str(env["ca"]), "https://api.openai.com/v1/models",
        cafile=env["ca"],
    )  # fmt: skip
    assert re.search(r"^HTTP/[\d.]+ 403", out, re.MULTILINE), out
    assert "x-aiwarden-rule: block-ai" in out.lower()
    error = json.loads(out[out.index("{") :])["error"]  # OpenAI's error shape
    assert "block-ai" in json.dumps(error)
    through_tls_delta = blocks(proxy) - before
    plain = curl(
        "--proxy", proxy.url, "--cacert", str(env["ca"]), "https://api.openai.com/v1/models"
    )
    assert "block-ai" in plain.stdout
    assert through_tls_delta > 0  # counted, as on plain HTTP:
    assert blocks(proxy) - before == 2 * through_tls_delta
    reference = re.search(r"x-aiwarden-reference: (\w+)", out, re.IGNORECASE).group(1)
    records = [
        json.loads(x) for x in (env["work"] / f"audit-{mode}.jsonl").read_text().split("\n") if x
    ]
    record = next(r for r in records if r.get("id") == reference)  # and audited
    assert (record["action"], record["host"], record["rule"]) == (
        "block",
        "api.openai.com",
        "block-ai",
    )


def test_plain_http_through_tls_to_the_proxy(env, mode):
    plain = env["plain"]
    before = len(plain.requests)
    out = through_tls(
        env["proxies"][mode], f"http://localhost:{plain.port}/plain", cafile=env["ca"]
    )
    assert out == "hello from upstream\n"
    assert plain.requests[before:] and plain.requests[-1][1] == "/plain"


def test_the_proxy_shows_a_certificate_of_the_aiwarden_ca(env, mode):
    """Control for the tests above: a client that does not trust the aiwarden CA is refused
    at the handshake, so they did talk TLS to the proxy."""
    out = through_tls(
        env["proxies"][mode], f"http://localhost:{env['plain'].port}/", cafile=env["upstream_ca"]
    )
    assert "hello from upstream" not in out
    assert "certificate" in out.lower() or "ssl" in out.lower(), out


# -- Basic authentication inside TLS --------------------------------------------------------


@pytest.fixture(scope="module")
def authenticating(env):
    proxies = {
        "run": Proxy(env["policy"], env["work"] / "ca", "--proxyauth", "alice:s3cret-pw"),
        "mitmdump": mitmdump_proxy(env["policy"], env["work"] / "ca", "proxyauth=alice:s3cret-pw"),
    }
    yield proxies
    for proxy in proxies.values():
        proxy.stop()


@pytest.mark.parametrize("kind", ["run", "mitmdump"])
def test_basic_authentication_inside_tls(env, authenticating, kind):
    proxy, plain, tls = authenticating[kind], env["plain"], env["tls"]
    before = len(plain.requests)
    url = f"http://localhost:{plain.port}/auth"
    bad = through_tls(proxy, "-i", "--proxy-user", "alice:wrong", url, cafile=env["ca"])
    assert bad.startswith("HTTP/1.1 407"), bad
    assert len(plain.requests) == before  # nothing went on
    good = through_tls(proxy, "--proxy-user", "alice:s3cret-pw", url, cafile=env["ca"])
    assert good == "hello from upstream\n"
    headers = {k.lower() for k in plain.requests[-1][2]}
    assert "proxy-authorization" not in headers and plain.requests[-1][1] == "/auth"
    tunnel = through_tls(
        proxy, "--proxy-user", "alice:s3cret-pw", "--cacert", str(env["upstream_ca"]),
        f"https://localhost:{tls.port}/", cafile=env["ca"],
    )  # fmt: skip
    assert tunnel == "hello from upstream\n"
    blocked = through_tls(
        proxy, "-i", "--proxy-user", "alice:s3cret-pw", "--cacert", str(env["ca"]),
        "https://api.openai.com/v1/models", cafile=env["ca"],
    )  # fmt: skip
    assert "x-aiwarden-rule: block-ai" in blocked.lower()
    line = proxy.wait_for(lambda r: r.get("event") == "block" or " block reference=" in str(r))
    assert line.get("user") == "alice" or " user=alice " in line.get("text", "")
    logs = json.dumps(proxy.drain())
    assert "s3cret-pw" not in logs and "wrong" not in logs


def test_the_start_warns_when_basic_passwords_may_cross_in_clear(env, authenticating):
    for proxy in authenticating.values():
        proxy.wait_for(lambda r: WARNING in json.dumps(r))


def test_the_warning_is_one_line_with_workers(env):
    proxy = Proxy(env["policy"], env["work"] / "ca", "--workers", "2", "--proxyauth", "a:b")
    try:
        assert through_tls(proxy, "--proxy-user", "a:b", f"http://localhost:{env['plain'].port}/",
                           cafile=env["ca"]) == "hello from upstream\n"  # fmt: skip
        warnings = [r for r in proxy.drain() if WARNING in json.dumps(r)]
        assert len(warnings) == 1 and "worker" not in warnings[0]  # the supervisor's
    finally:
        proxy.stop()


@pytest.mark.parametrize("mode", ["fast", "mitmdump"])
def test_no_warning_without_basic_authentication(env, mode):
    proxy = env["proxies"][mode]
    assert through_tls(proxy, f"http://localhost:{env['plain'].port}/", cafile=env["ca"])
    assert WARNING not in json.dumps(proxy.drain())


# -- TLS required ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def requiring(env):
    work, policy = env["work"], env["policy"]
    proxies = {
        "run": Proxy(policy, work / "ca", "--require-proxy-tls", "--proxyauth", "alice:s3cret-pw"),
        "mitmdump": mitmdump_proxy(policy, work / "ca", "aiwarden_require_proxy_tls=true"),
    }
    yield proxies
    for proxy in proxies.values():
        proxy.stop()


@pytest.mark.parametrize("kind", ["run", "mitmdump"])
def test_require_tls_refuses_plain_http(env, requiring, kind):
    proxy, plain, tls = requiring[kind], env["plain"], env["tls"]
    auth = ("--proxy-user", "alice:s3cret-pw") if kind == "run" else ()
    url = f"http://localhost:{plain.port}/"
    assert through_tls(proxy, *auth, url, cafile=env["ca"]) == "hello from upstream\n"  # control
    before_plain, before_tls = len(plain.requests), tls.connections
    refused_before = value(metrics(proxy), "aiwarden_bad_requests_total",
                           reason="proxy_tls_required")  # fmt: skip
    r = curl("-i", "--proxy", proxy.url, *auth, url)
    assert r.stdout.startswith("HTTP/1.1 403"), r
    assert "this proxy takes TLS only" in r.stdout
    tunnel = curl("--proxy", proxy.url, "--cacert", str(env["upstream_ca"]),
                  f"https://localhost:{tls.port}/")  # fmt: skip
    assert tunnel.returncode != 0 and "403" in tunnel.stderr, tunnel
    assert len(plain.requests) == before_plain and tls.connections == before_tls
    after = value(metrics(proxy), "aiwarden_bad_requests_total", reason="proxy_tls_required")
    assert after == refused_before + 2


def test_no_warning_when_tls_is_required(requiring):
    proxy = requiring["run"]
    assert WARNING not in json.dumps(proxy.drain())


def test_a_load_balancers_proxy_header_comes_before_the_tls(env):
    """Behind a balancer (`--proxy-protocol-from`), its PROXY header, then the client's TLS
    to the proxy: the client is the header's, inside the TLS too."""
    proxy = Proxy(env["policy"], env["work"] / "ca", "--proxy-protocol-from", "127.0.0.0/8",
                  "--require-proxy-tls")  # fmt: skip
    try:
        host, port = proxy.address.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=15)
        sock.sendall(f"PROXY TCP4 127.0.0.9 {host} 5555 {port}\r\n".encode())
        context = ssl.create_default_context(cafile=str(env["ca"]))
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            answer = exchange(tls, "GET http://chatgpt.com/ HTTP/1.1\r\nHost: chatgpt.com\r\n"
                              "Connection: close\r\n\r\n")  # fmt: skip
        assert answer.startswith(b"HTTP/1.1 403") and b"block-ai" in answer
        line = proxy.wait_for(lambda r: r.get("event") == "block")
        assert line["client"] == "127.0.0.9"
    finally:
        proxy.stop()


# -- the proxy's own certificate --------------------------------------------------------------


def test_an_operator_certificate_for_the_proxys_name(env, tmp_path):
    cert, key = env["server_pem"]
    pem = tmp_path / "proxy.pem"
    pem.write_bytes(key.read_bytes() + cert.read_bytes())
    proxy = Proxy(env["policy"], env["work"] / "ca", "--proxy-cert", str(pem))
    try:
        url = f"http://localhost:{env['plain'].port}/"
        for name in ("localhost", "127.0.0.1"):  # a DNS and an IP name of the certificate
            assert through_tls(proxy, url, name=name, cafile=env["upstream_ca"]) == (
                "hello from upstream\n"
            )
        # control: not the aiwarden CA's any more, for the names the certificate holds
        assert "hello" not in through_tls(proxy, url, name="localhost", cafile=env["ca"])
    finally:
        proxy.stop()


def test_a_certificate_without_its_key_stops_the_start_with_one_line(env, tmp_path):
    cert, _ = env["server_pem"]
    r = subprocess.run(
        [AIWARDEN, "run", "--policy", str(env["policy"]), "--confdir", str(env["work"] / "ca"),
         "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--proxy-cert", str(cert)],
        capture_output=True, text=True, timeout=60, env=proxy_environment(),
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"aiwarden run: --proxy-cert {cert}: holds no private key: put the key and the chain "
        "in one PEM file"
    ]


# -- PAC ----------------------------------------------------------------------------------------


def test_the_pac_file_names_an_https_proxy(env, requiring):
    proxy = requiring["run"]
    pac = httpx.get(f"http://{proxy.admin}/proxy.pac").text
    assert f'var PROXIES = ["HTTPS {proxy.address}"];' in pac  # TLS required: HTTPS by default


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (.ci/run installs Debian's chromium package)",
)
def test_chromium_follows_a_pac_file_to_the_https_proxy(env, tmp_path):
    proxy = Proxy(env["policy"], env["work"] / "ca", "--require-proxy-tls")
    try:
        before = value(metrics(proxy), "aiwarden_bad_requests_total", reason="proxy_tls_required")
        dom = chromium_dom(
            "https://chatgpt.com/", tmp_path / "profile",
            f"--proxy-pac-url=http://{proxy.admin}/proxy.pac",
            f"--ignore-certificate-errors-spki-list={spki_pin(env['ca'])}",
        ).stdout  # fmt: skip
        assert "ChatGPT is blocked by company policy" in dom
        # it came over TLS: plain HTTP to this proxy would have been refused and counted
        after = value(metrics(proxy), "aiwarden_bad_requests_total", reason="proxy_tls_required")
        assert after == before
    finally:
        proxy.stop()
