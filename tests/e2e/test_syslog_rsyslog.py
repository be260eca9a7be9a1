"""The audit stream to a real rsyslogd from Debian's packages (started here on loopback with a
config of its own: imudp, imtcp, and imtcp with GnuTLS and a test CA): the real proxy blocks a
request, and the block's audit record reaches rsyslog over UDP, TCP and TLS as RFC 5424 with
the right PRI, app-name and MSGID, its JSON the same as the file's line. Controls: rsyslog
receives `logger`'s messages and a plain TLS socket's, proving the set-up. A syslog server
that is down neither stops the proxy nor delays the block, and is reported until it is back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from conftest import SHIPPED_CATALOG, local_ai_policy
from proxyharness import (
    Proxy,
    curl,
    make_upstream_pki,
    metrics,
    mitmdump_proxy,
    value,
    write_policy,
)

from proxy import ca

RSYSLOGD = shutil.which("rsyslogd") or (
    "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None
)
GTLS = any(Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so"))
LOGGER = shutil.which("logger")

pytestmark = pytest.mark.skipif(
    RSYSLOGD is None, reason="rsyslogd not installed (apt-get install rsyslog; .ci/run does)"
)
needs_gtls = pytest.mark.skipif(
    not GTLS, reason="rsyslog's GnuTLS driver not installed (apt-get install rsyslog-gnutls)"
)

POLICY = local_ai_policy(
    rules="""
    - id: block-ai
      match: {categories: [chat, api]}
      action: block
    """,
)
TRANSPORTS = ("udp", "tcp", "tls")
# what rsyslog writes of each message, tab-separated; the message (JSON: no tabs) last
FIELDS = ("pri", "version", "timestamp", "hostname", "app", "procid", "msgid", "sd", "msg")
TEMPLATE = "\\t".join(
    f"%{p}%"
    for p in (
        "pri", "protocol-version", "timereported:::date-rfc3339", "hostname", "app-name",
        "procid", "msgid", "structured-data", "msg",
    )
) + "\\n"  # fmt: skip


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rsyslog:
    """rsyslogd in the foreground on loopback ports of its own, one file of what it received
    per transport."""

    def __init__(self, work: Path, ports: dict[str, int] | None = None) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.ca, cert, key = make_upstream_pki(work)  # a test CA and a cert for localhost
        self.ports = ports or {
            "udp": free_port(socket.SOCK_DGRAM), "tcp": free_port(), "tls": free_port(),
        }  # fmt: skip
        tls = self.ports.get("tls") and GTLS
        inputs = [
            f'input(type="imudp" address="127.0.0.1" port="{self.ports["udp"]}" ruleset="udp")'
            if "udp" in self.ports else "",
            f'input(type="imtcp" address="127.0.0.1" port="{self.ports["tcp"]}" ruleset="tcp")'
            if "tcp" in self.ports else "",
            f'input(type="imtcp" address="127.0.0.1" port="{self.ports["tls"]}" ruleset="tls" '
            'streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")'
            if tls else "",
        ]  # fmt: skip
        rulesets = "\n".join(
            f'ruleset(name="{t}") {{ action(type="omfile" file="{work / t}.tsv" '
            'template="fields") }'
            for t in TRANSPORTS
        )
        config = (
            textwrap.dedent(f"""\
            global(workDirectory="{work}" maxMessageSize="64k"
                   defaultNetstreamDriverCAFile="{self.ca}"
                   defaultNetstreamDriverCertFile="{cert}"
                   defaultNetstreamDriverKeyFile="{key}")
            module(load="imudp")
            module(load="imtcp")
            template(name="fields" type="string" string="{TEMPLATE}")
            """)
            + rulesets
            + "\n"
            + "\n".join(i for i in inputs if i)
            + "\n"
        )
        (work / "rsyslog.conf").write_text(config)
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(work / "rsyslog.conf"), "-i", str(work / "rsyslog.pid")],
            stdout=(work / "rsyslogd.out").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        for t in ("tcp", "tls"):
            if t in self.ports and (t == "tcp" or tls):
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", self.ports[t]), timeout=1).close()
                        break
                    except OSError as e:
                        if self.process.poll() is not None or time.monotonic() > deadline:
                            raise AssertionError(f"rsyslogd did not start: {self.output()}") from e
                        time.sleep(0.05)

    def url(self, transport: str) -> str:
        host = "localhost" if transport == "tls" else "127.0.0.1"  # the name the cert has
        return f"{transport}://{host}:{self.ports[transport]}"

    def received(self, transport: str) -> list[dict[str, str]]:
        path = self.work / f"{transport}.tsv"
        lines = path.read_text().splitlines() if path.exists() else []
        return [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in lines]

    def wait_for(self, transport: str, predicate, timeout: float = 10) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.received(transport) if predicate(m)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"rsyslog got no such message over {transport}: "
                    f"{self.received(transport)} {self.output()}"
                )
            time.sleep(0.05)

    def output(self) -> str:
        said = (self.work / "rsyslogd.out").read_text()
        return f"(rsyslogd: exit {self.process.poll()}, said: {said!r})"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("syslog")
    ca.init(work / "ca")
    write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    return work


@pytest.fixture(scope="module")
def rsyslog(work):
    server = Rsyslog(work / "rsyslog")
    yield server
    server.stop()


def by_tag(tag: str):
    return lambda m: tag in m["msg"]


# -- controls: the set-up receives what standard tools send --------------------------------


@pytest.mark.skipif(LOGGER is None, reason="logger (util-linux) not installed")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_control_rsyslog_receives_what_logger_sends(rsyslog, transport):
    tag = f"control-{transport}-{time.monotonic_ns()}"
    flags = ["--udp"] if transport == "udp" else ["--tcp", "--octet-count"]
    subprocess.run(
        [LOGGER, "--server", "127.0.0.1", "--port", str(rsyslog.ports[transport]), *flags,
         "--rfc5424", "-p", "local0.warning", "-t", "ctl", tag],
        check=True, timeout=10,
    )  # fmt: skip
    got = rsyslog.wait_for(transport, by_tag(tag))
    assert (got["pri"], got["app"]) == ("132", "ctl")


@needs_gtls
def test_control_rsyslog_receives_over_tls_from_a_plain_socket(rsyslog):
    tag = f"control-tls-{time.monotonic_ns()}"
    msg = f"<134>1 - - ctl - - - {tag}".encode()
    context = ssl.create_default_context(cafile=str(rsyslog.ca))
    raw = socket.create_connection(("127.0.0.1", rsyslog.ports["tls"]), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"%d %s" % (len(msg), msg))
    got = rsyslog.wait_for("tls", by_tag(tag))
    assert (got["pri"], got["app"]) == ("134", "ctl")


# -- the proxy's blocks ---------------------------------------------------------------------


def block_one(proxy: Proxy) -> str:
    """A blocked request through the proxy; its reference, as the user is shown it."""
    r = curl("-si", "--proxy", proxy.url, "http://claude.ai/api/append_message?k=secret-q")
    assert " 403 " in r.stdout.splitlines()[0], r.stdout
    [reference] = [
        line.split(": ", 1)[1].strip()
        for line in r.stdout.splitlines()
        if line.lower().startswith("x-aiwarden-reference")
    ]
    return reference


def file_line(path: Path, reference: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines() if path.exists() else []:
            if json.loads(line).get("id") == reference:
                return json.loads(line)
        time.sleep(0.05)
    raise AssertionError(f"no audit line {reference} in {path}")


@pytest.mark.parametrize("transport", [t if t != "tls" else pytest.param(t, marks=needs_gtls)
                                       for t in TRANSPORTS])  # fmt: skip
def test_a_block_reaches_rsyslog_as_rfc5424_with_the_files_json(work, rsyslog, transport):
    audit = work / f"audit-{transport}.jsonl"
    extra = ["--audit-syslog-ca", str(rsyslog.ca)] if transport == "tls" else []
    proxy = Proxy(
        work / "policy", work / "ca", "--audit-log", str(audit),
        "--audit-syslog", rsyslog.url(transport), *extra,
    )  # fmt: skip
    try:
        reference = block_one(proxy)
        got = rsyslog.wait_for(transport, lambda m: f'"id":"{reference}"' in m["msg"])
        line = file_line(audit, reference)
        record = json.loads(got["msg"])
        assert record == line  # the same record, field for field
        assert (record["rule"], record["service"], record["action"]) == (
            "block-ai", "claude", "block",
        )  # fmt: skip
        assert got["pri"] == "132"  # local0 (16) * 8 + warning (4)
        assert (got["version"], got["app"], got["msgid"]) == ("1", "aiwarden", "decision")
        assert got["procid"].isdigit()
        assert got["timestamp"].startswith(line["ts"][:19])  # rsyslog's parse of our ts
        assert '[origin software="aiwarden"' in got["sd"] and "[meta sequenceId=" in got["sd"]
        assert "secret-q" not in got["msg"]  # no query string, as in the file
        m = metrics(proxy)
        assert value(m, "aiwarden_audit_syslog_ok") == 1
        assert value(m, "aiwarden_audit_syslog_dropped_total", reason="send_error") == 0
    finally:
        assert proxy.stop() == 0


def test_a_syslog_server_that_is_down_delays_nothing_and_is_reported_until_back(work):
    port = free_port()  # nothing listens there yet
    audit = work / "audit-down.jsonl"
    proxy = Proxy(
        work / "policy", work / "ca", "--audit-log", str(audit),
        "--audit-syslog", f"tcp://127.0.0.1:{port}", "--audit-syslog-facility", "audit",
    )  # fmt: skip
    server = None
    try:
        start = time.monotonic()
        references = [block_one(proxy) for _ in range(3)]
        assert time.monotonic() - start < 3  # blocks answered at once, syslog or not
        for reference in references:
            file_line(audit, reference)  # the file is written all the same
        proxy.wait_for(lambda r: "audit syslog" in str(r.get("msg", "")))
        ready = httpx.get(f"http://{proxy.admin}/readyz")
        assert ready.status_code == 200  # still serving: one SIEM outage is no proxy outage
        assert "audit syslog not reached" in ready.text
        assert value(metrics(proxy), "aiwarden_audit_syslog_ok") == 0
        server = Rsyslog(work / "rsyslog-late", {"tcp": port})  # the server comes up
        for reference in references:  # what waited is sent once it is back
            got = server.wait_for("tcp", lambda m, r=reference: f'"id":"{r}"' in m["msg"], 40)
            assert got["pri"] == str(13 * 8 + 4)  # facility audit
        deadline = time.monotonic() + 10
        while value(metrics(proxy), "aiwarden_audit_syslog_ok") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert "audit syslog" not in httpx.get(f"http://{proxy.admin}/readyz").text
        said: dict[object, list] = {}  # by worker (--workers N: each sends its own)
        for r in proxy.drain():
            if "audit syslog" in str(r.get("msg", "")):
                said.setdefault(r.get("worker"), []).append(("cannot send" in r["msg"], r["level"]))
        assert said and all(
            lines == [(True, "error"), (False, "warning")] for lines in said.values()
        ), said  # one line when it failed, one when it worked again; no flood
    finally:
        assert proxy.stop() == 0
        if server is not None:
            server.stop()


def test_a_bad_syslog_url_stops_the_proxy_from_starting_with_a_clear_error(work):
    with pytest.raises(AssertionError, match="udp://, tcp://, tls://"):
        Proxy(work / "policy", work / "ca", "--audit-syslog", "http://127.0.0.1:514")


@needs_gtls
def test_a_tls_server_whose_certificate_is_not_trusted_gets_nothing_and_is_reported(work, rsyslog):
    proxy = Proxy(work / "policy", work / "ca", "--audit-syslog", rsyslog.url("tls"))
    try:  # no --audit-syslog-ca: the system's roots do not know the test CA
        before = len(rsyslog.received("tls"))
        start = time.monotonic()
        reference = block_one(proxy)
        assert time.monotonic() - start < 3
        said = proxy.wait_for(lambda r: "audit syslog" in str(r.get("msg", "")))
        assert "certificate" in said["msg"] and said["level"] == "error"
        assert "audit syslog not reached" in httpx.get(f"http://{proxy.admin}/readyz").text
        time.sleep(0.5)
        assert not [m for m in rsyslog.received("tls")[before:] if reference in m["msg"]]
    finally:
        assert proxy.stop() == 0


def test_under_mitmdump_the_option_is_set_with_set(work, rsyslog):
    """People who run mitmdump -s with the addon set it as `aiwarden_audit_syslog`."""
    proxy = mitmdump_proxy(
        work / "policy", work / "ca", f"aiwarden_audit_syslog={rsyslog.url('tcp')}",
        "aiwarden_audit_syslog_facility=local7",
    )  # fmt: skip
    try:
        reference = block_one(proxy)
        got = rsyslog.wait_for("tcp", lambda m: f'"id":"{reference}"' in m["msg"])
        assert got["pri"] == str(23 * 8 + 4) and got["app"] == "aiwarden"
        assert json.loads(got["msg"])["rule"] == "block-ai"
    finally:
        proxy.stop()
