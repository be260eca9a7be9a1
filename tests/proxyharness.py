"""Real parts for proxy tests: `aiwarden run` as a process, local upstream servers (plain and
TLS, with a CA of their own), and a raw CONNECT client for what curl cannot express.
Everything listens on and talks to loopback only."""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import gzip
import hashlib
import ipaddress
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from proxy import ca

AIWARDEN = str(Path(sys.executable).parent / "aiwarden")
ROOT = Path(__file__).resolve().parent.parent  # the checkout whose code the proxies run
START_TIMEOUT = 60  # a loaded CI machine starting several workers: failing takes this long
LOG_TIMEOUT = 30
# one process unless a test asks for more; AIWARDEN_TEST_WORKERS=2 runs every test on workers
WORKERS = os.environ.get("AIWARDEN_TEST_WORKERS", "1")


# -- certificates for the upstream servers -------------------------------------------------------


def make_upstream_pki(directory: Path, names: tuple[str, ...] = ()) -> tuple[Path, Path, Path]:
    """A CA of the upstream servers' own (not aiwarden's) and a certificate for localhost,
    127.0.0.1 and `names` (served on loopback, see loopback_names); returns (ca file, cert
    file, key file)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test upstream CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), *map(x509.DNSName, names),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("127.0.0.2"))]),
            critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = directory / "upstream-ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# -- TLS ClientHellos, real and crafted ----------------------------------------------------------


def client_hello(sni: str | None) -> bytes:
    """A real TLS ClientHello from Python's TLS stack naming `sni`, as a client's first bytes."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server's answer
        tls.do_handshake()
    return outgoing.read()


def crafted_hello(names: list[bytes] | None, record_version: bytes = b"\x03\x01") -> bytes:
    """A minimal TLS 1.2 ClientHello whose server_name extension lists `names` as they are
    (None: no extension), for what no TLS library would send."""
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x04\xc0\x2f\x00\x9c" + b"\x01\x00"
    extensions = b""
    if names is not None:
        entries = b"".join(b"\x00" + len(n).to_bytes(2) + n for n in names)
        sni = len(entries).to_bytes(2) + entries
        extensions += b"\x00\x00" + len(sni).to_bytes(2) + sni
    body += len(extensions).to_bytes(2) + extensions
    handshake = b"\x01" + len(body).to_bytes(3) + body
    return b"\x16" + record_version + len(handshake).to_bytes(2) + handshake


# -- upstream servers ----------------------------------------------------------------------------


@dataclass
class Upstream:
    """A local HTTP(S) server that records what reached it.

    GET /sse streams three events; the second waits for `sse_gate`, so a client that gets the
    first event before setting the gate proves the proxy streamed instead of buffering.
    POST /upload answers with the body's length and SHA-256 (PUT and PATCH are recorded and
    answered as POST is).
    GET /switch answers 101 Switching Protocols to a protocol that is not WebSocket, then
    records every byte that follows in `switched`.
    """

    tls: tuple[Path, Path] | None = None
    host: str = "127.0.0.1"
    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    header_lists: list[list[tuple[str, str]]] = field(default_factory=list)  # as sent, repeats kept
    bodies: list[bytes] = field(default_factory=list)  # POST bodies as received
    sse_gate: threading.Event = field(default_factory=threading.Event)
    connections: int = 0  # accepted, whether or not a request was read
    switched: list[bytes] = field(default_factory=list)  # bytes after a 101 from /switch

    def __post_init__(self) -> None:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def setup(self) -> None:
                upstream.connections += 1
                self.handshake_failed = False
                if isinstance(self.request, ssl.SSLSocket):  # here, not in the accept loop
                    try:
                        self.request.do_handshake()
                    except (ssl.SSLError, OSError):  # e.g. a client that refused our cert
                        self.handshake_failed = True
                super().setup()

            def handle(self) -> None:
                if not self.handshake_failed:
                    super().handle()

            def _record(self) -> None:
                upstream.requests.append((self.command, self.path, dict(self.headers)))
                upstream.header_lists.append(list(self.headers.items()))

            def do_GET(self) -> None:
                self._record()
                if self.path.startswith("/sse"):
                    return self._sse()
                if self.path.startswith("/switch"):
                    return self._switch()
                self._send(200, b"hello from upstream\n", "text/plain")

            def do_POST(self) -> None:
                self._record()
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                upstream.bodies.append(body)
                if self.path.endswith("/chat/completions"):
                    return self._chat(body)
                reply = json.dumps(
                    {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
                ).encode()
                self._send(200, reply, "application/json")

            do_PUT = do_PATCH = do_POST  # uploads to blob URLs, publishing a share

            def _chat(self, body: bytes) -> None:
                """An OpenAI-compatible stand-in: a fixed answer, streamed if asked."""
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                words = ["The", " answer", " is", " 42."]
                if not json.loads(body).get("stream"):
                    return self._send(
                        200, json.dumps(_completion("".join(words))).encode(), "application/json"
                    )
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                events = [_chunk(w) for w in words] + ["[DONE]"]
                for data in events:
                    payload = f"data: {data}\n\n".encode()
                    self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _switch(self) -> None:
                self.send_response(101)
                self.send_header("Upgrade", "x-raw")
                self.send_header("Connection", "Upgrade")
                self.end_headers()
                self.wfile.flush()
                self.close_connection = True
                while chunk := self.request.recv(65536):
                    upstream.switched.append(chunk)

            def _sse(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(3):
                    if i == 1 and not upstream.sse_gate.wait(20):
                        break  # the client never saw event 0: the proxy buffered
                    data = f"data: event {i}\n\n".encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        server_class = _HTTP6Server if ":" in self.host else ThreadingHTTPServer
        self.server = server_class((self.host, 0), Handler)
        self.server.daemon_threads = True
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            self.server.socket = context.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _HTTP6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _completion(text: str) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5},
    }


def _chunk(text: str) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }
    )


# -- the proxy -------------------------------------------------------------------------------


class Proxy:
    """`aiwarden run` on free loopback ports; its JSON log lines are collected."""

    def __init__(
        self,
        policy_dir: Path,
        confdir: Path,
        *extra: str,
        command: list[str] | None = None,
        plain_mitmproxy: bool = False,
    ) -> None:
        """`command` replaces `aiwarden run`; with `plain_mitmproxy` (no aiwarden addon),
        mitmproxy's own "listening at" line gives the address."""
        self.logs: list[dict] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        cmd = command or [
            AIWARDEN,
            "run",
            "--policy",
            str(policy_dir),
            "--confdir",
            str(confdir),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            *(() if "--workers" in extra else ("--workers", WORKERS)),
            *extra,
        ]
        env = proxy_environment()
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        threading.Thread(target=self._read, daemon=True).start()
        listening = self.wait_for(
            _mitmproxy_listening if plain_mitmproxy else _is_listening, timeout=START_TIMEOUT
        )
        if "text" in listening:  # mitmdump's termlog
            text = listening["text"]
            if plain_mitmproxy:  # "HTTP(S) proxy listening at 127.0.0.1:PORT."
                listening = {"proxy": text.rsplit(" at ", 1)[1].rstrip(".")}
            else:  # our addon's line: "listening proxy=H:P admin=H:P"
                words = dict(w.split("=", 1) for w in text.split() if "=" in w)
                listening = {"proxy": words["proxy"], "admin": words.get("admin")}
        self.address = listening["proxy"]
        self.admin = listening.get("admin")
        self.url = f"http://{self.address}"

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, predicate, timeout: float = LOG_TIMEOUT) -> dict:
        """The first log record (JSON, or {'text': line}) matching `predicate`."""
        for record in self.logs:
            if predicate(record):
                return record
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"aiwarden did not log what was expected: {self.logs}"
                ) from None
            if line is None:
                raise AssertionError(f"aiwarden exited ({self.process.wait()}): {self.logs}")
            try:
                record = json.loads(line)
            except ValueError:
                record = {"text": line.rstrip()}
            self.logs.append(record)
            if predicate(record):
                return record

    def drain(self) -> list[dict]:
        """Every log record so far."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return self.logs
            if line is None:
                return self.logs
            try:
                self.logs.append(json.loads(line))
            except ValueError:
                self.logs.append({"text": line.rstrip()})

    def stop(self) -> int:
        terminate(self.process)
        return self.process.returncode


def proxy_environment() -> dict[str, str]:
    """The environment a proxy process starts with: no proxy settings of the caller's, and
    this checkout first on PYTHONPATH, after tests/loopback_names when a test put it there:
    the `aiwarden` script of a virtualenv may import the package from another checkout (an
    editable install), and the proxy must run the code under test."""
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    env.pop("AIWARDEN_PARENT", None)  # a parent proxy is the test's to give
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    first = [p for p in path if Path(p).name == "loopback_names"]
    rest = [p for p in path if p not in first and Path(p).resolve() != ROOT]
    env["PYTHONPATH"] = os.pathsep.join([*first, str(ROOT), *rest])
    return env


def metrics(proxy: Proxy) -> dict[tuple[str, tuple], float]:
    """The proxy's /metrics as (sample name, sorted labels) -> value."""
    text = httpx.get(f"http://{proxy.admin}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(m: dict, name: str, **labels: str) -> float:
    """One sample of metrics(); 0 when it is not there (yet)."""
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def by_label(proxy: Proxy, name: str, label: str) -> dict[str, float]:
    """Every sample of `name`, keyed by the value of one label."""
    return {dict(k)[label]: v for (n, k), v in metrics(proxy).items() if n == name}


def mitmdump_proxy(policy: Path, confdir: Path, *settings: str) -> Proxy:
    """Stock mitmdump on a free loopback port with the aiwarden addon loaded as a script, as
    people who already run mitmproxy use it; `settings` are more `--set` values."""
    addon = Path(__file__).resolve().parent.parent / "proxy" / "mitm" / "script.py"
    command = [str(Path(sys.executable).parent / "mitmdump"), "-s", str(addon),
               "--listen-host", "127.0.0.1", "--listen-port", "0"]  # fmt: skip
    settings = (f"confdir={confdir}", f"aiwarden_policy={policy}",
                "aiwarden_admin=127.0.0.1:0", "connection_strategy=lazy", *settings)  # fmt: skip
    for setting in settings:
        command += ["--set", setting]
    return Proxy(policy, confdir, command=command)


MODES = ("fast path", "no fast path", "mitmdump")  # how a test may run the proxy


def tls_upstream_pki(directory: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """A proxy CA in `directory`/ca and an upstream certificate for `names` from a CA of its
    own; `both` trusts the two (a tunnelled host shows the upstream's own certificate)."""
    ca.init(directory / "ca")
    upstream_ca, cert, key = make_upstream_pki(directory, names)
    both = directory / "both.pem"
    both.write_bytes((directory / "ca" / "ca.pem").read_bytes() + upstream_ca.read_bytes())
    return {"dir": directory, "ca": directory / "ca", "cafile": directory / "ca" / "ca.pem",
            "upstream_ca": upstream_ca, "cert": cert, "key": key, "both": both}  # fmt: skip


def proxy_in_mode(
    mode: str,
    policy: Path,
    pki: dict[str, Path],
    options: dict[str, str] | None = None,
    *flags: str,
) -> Proxy:
    """The proxy on `policy` in one of MODES, trusting the upstream CA of `pki`; `options`
    are mitmproxy option names and values (`aiwarden_audit_log`), given to `aiwarden run`
    as their flags (`--audit-log`); `flags` are more flags of `aiwarden run`."""
    options = options or {}
    if mode == "mitmdump":
        assert not flags, "flags are aiwarden run's; mitmdump takes options"
        settings = [f"{name}={value}" for name, value in options.items()]
        return mitmdump_proxy(
            policy, pki["ca"], f"ssl_verify_upstream_trusted_ca={pki['upstream_ca']}", *settings
        )
    args = []
    for name, value in options.items():
        args += [f"--{name.removeprefix('aiwarden_').replace('_', '-')}", value]
    fast = () if mode == "fast path" else ("--no-fast-tunnels",)
    return Proxy(policy, pki["ca"], "--upstream-ca", str(pki["upstream_ca"]), *args, *fast, *flags)


def _is_listening(record: dict) -> bool:
    """The whole proxy listens: one process, or the supervisor of its workers."""
    if "worker" in record:
        return False
    return record.get("event") == "listening" or " listening proxy=" in record.get("text", "")


def _mitmproxy_listening(record: dict) -> bool:
    return "proxy listening at " in record.get("text", "")


def write_policy(directory: Path, body: str, catalog: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.yaml").write_text(
        f"version: 1\ncatalog: [{catalog}]\n" + textwrap.dedent(body).lstrip("\n")
    )
    return directory


@contextlib.contextmanager
def loopback_names(names, unresolvable=()):
    """Proxies started inside resolve `names` to 127.0.0.1, and `unresolvable` names not at
    all (tests/loopback_names). The PYTHONPATH they inherit is kept, after that directory."""
    keys = ("PYTHONPATH", "AIWARDEN_TEST_LOOPBACK_NAMES", "AIWARDEN_TEST_UNRESOLVABLE_NAMES")
    saved = {k: os.environ.get(k) for k in keys}
    path = [str(Path(__file__).resolve().parent / "loopback_names"), saved["PYTHONPATH"]]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    os.environ["AIWARDEN_TEST_LOOPBACK_NAMES"] = ",".join(names)
    os.environ["AIWARDEN_TEST_UNRESOLVABLE_NAMES"] = ",".join(unresolvable)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- a parent proxy ---------------------------------------------------------------------------

SQUID = shutil.which("squid") or (
    "/usr/sbin/squid" if os.access("/usr/sbin/squid", os.X_OK) else None
)
SQUID_MISSING = "squid is not installed (apt-get install squid; .ci/run installs it)"
SQUID_CONF = """
http_port 127.0.0.1:{port}
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
logformat aiwarden %rm %ru %>Hs %{{Proxy-Authorization}}>h
access_log stdio:{dir}/access.log aiwarden
buffered_logs off
cache_store_log none
cache deny all
cache_mem 8 MB
coredump_dir {dir}
pinger_enable off
shutdown_lifetime 0 seconds
hosts_file {dir}/hosts
dns_nameservers 127.0.0.1
{extra}
acl clients src 127.0.0.0/8
http_access allow clients
http_access deny all
"""


def terminate(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL when it has not ended within 15 seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Squid:
    """Debian's squid as a parent proxy on loopback, one process (-N), caching nothing. The
    names in `hosts` resolve to 127.0.0.1 for it alone (its own hosts_file; it asks no other
    resolver than 127.0.0.1), `extra` is more configuration (ACLs), and each request it
    handles is one line of its access log: `METHOD URL STATUS PROXY-AUTHORIZATION` (the
    header URL-encoded, `-` when none), written when the request or tunnel ends. Its files
    are in a directory of its own under the system's temporary directory (squid drops root
    for its user, "proxy", which must reach them), removed by `stop`; `files` are written
    there before it starts (`{dir}` in `extra` names that directory)."""

    def __init__(
        self, hosts: tuple[str, ...], extra: str = "", files: dict[str, str] | None = None
    ) -> None:
        assert SQUID, SQUID_MISSING
        self.dir = Path(tempfile.mkdtemp(prefix="aiwarden-squid-"))
        self.port = free_port()
        (self.dir / "hosts").write_text("".join(f"127.0.0.1 {h}\n" for h in hosts))
        for name, text in (files or {}).items():
            (self.dir / name).write_text(text)
        extra = extra.replace("{dir}", str(self.dir))
        conf = SQUID_CONF.format(port=self.port, dir=self.dir, extra=extra)
        (self.dir / "squid.conf").write_text(conf)
        if os.geteuid() == 0:  # squid drops root for its cache_effective_user, "proxy"
            for path in (self.dir, *self.dir.iterdir()):
                shutil.chown(path, "proxy")
        self.process = subprocess.Popen(
            [SQUID, "-N", "-f", str(self.dir / "squid.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        log = self.dir / "cache.log"
        raise AssertionError(f"squid did not start: {log.read_text() if log.exists() else ''}")

    def log(self) -> list[str]:
        """The access log's lines so far."""
        path = self.dir / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def wait_for_line(self, fragment: str, timeout: float = 15) -> str:
        """The first access log line containing `fragment`, once it is written."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log() if fragment in line]
            if lines:
                return lines[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"squid never logged {fragment!r}: {self.log()}")
            time.sleep(0.1)

    def stop(self) -> int:
        terminate(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.process.returncode


# -- clients ----------------------------------------------------------------------------------


def curl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    r = subprocess.run(
        ["curl", "-sS", "--max-time", str(int(timeout)), *args],
        capture_output=True,
        timeout=timeout + 5,
        env=env,
    )
    # decoded here, not with text=True, which would turn the protocol's \r\n into \n
    return subprocess.CompletedProcess(
        r.args,
        r.returncode,
        r.stdout.decode("utf-8", "replace"),
        r.stderr.decode("utf-8", "replace"),
    )


def connect_tunnel(proxy_address: str, target: str) -> tuple[socket.socket, int, bytes]:
    """Send CONNECT target to the proxy; (socket, status, response head)."""
    host, port = proxy_address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=15)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return sock, status, head


def request_through_tunnel(
    proxy_address: str,
    target: str,
    sni: str | None,
    host_header: str,
    cafile: Path,
    path: str = "/",
) -> tuple[int, dict, bytes, dict]:
    """CONNECT to `target`, TLS with `sni` trusting `cafile`, GET `path` with `host_header`:
    (status, headers, body, peer certificate)."""
    sock, status, head = connect_tunnel(proxy_address, target)
    assert status == 200, head
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False
    with context.wrap_socket(sock, server_hostname=sni) as tls:
        cert = tls.getpeercert()
        data = exchange(
            tls,
            f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: */*\r\n"
            "Connection: close\r\n\r\n",
        )
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body, cert


def exchange(sock: socket.socket, request: str) -> bytes:
    """Send a whole request on a connection and read until the server closes it."""
    sock.sendall(request.encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def plain_request(proxy_address: str, request: str) -> bytes:
    """One request (proxy form, `Connection: close`) on a new connection to the proxy."""
    host, port = proxy_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        return exchange(sock, request)


# -- a real browser ----------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def spki_pin(cafile: Path) -> str:
    """Chromium's --ignore-certificate-errors-spki-list value for our CA. aiwarden's leaf
    certificates reuse the CA key, so this one pin trusts every intercepted site."""
    cert = x509.load_pem_x509_certificate(cafile.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chromium_dom(url: str, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    """Headless Chromium's DOM of `url`, with the flags this machine needs: no sandbox (root)
    and no background networking or QUIC (a closed network)."""
    assert CHROMIUM, "chromium is not installed"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
         *flags, "--dump-dom", url],
        capture_output=True, text=True, timeout=90)  # fmt: skip


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    it reads commands on fd 3 and writes on fd 4, NUL-separated JSON), so a test can click,
    type and read the page as a user would."""

    def __init__(self, profile: Path, *flags: str) -> None:
        assert CHROMIUM, "chromium is not installed"
        to_chromium, self._out = os.pipe()
        self._in, from_chromium = os.pipe()

        def wire() -> None:  # in the child: its fd 3 reads our commands, fd 4 answers
            reads = fcntl.fcntl(to_chromium, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4
            writes = fcntl.fcntl(from_chromium, fcntl.F_DUPFD, 10)
            os.dup2(reads, 3)  # inheritable, unlike the pipes' own descriptors
            os.dup2(writes, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-pipe",
             *flags, "about:blank"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_chromium)
        os.close(from_chromium)
        self._next_id = 0
        self._answers: dict[int, queue.Queue] = {}
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._in, 65536):
            buffer += chunk
            while b"\0" in buffer:
                message, buffer = buffer.split(b"\0", 1)
                data = json.loads(message)
                if "id" in data and data["id"] in self._answers:
                    self._answers[data["id"]].put(data)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        answer: queue.Queue = queue.Queue()
        self._answers[self._next_id] = answer
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        data = answer.get(timeout=60)
        assert "error" not in data, data
        return data["result"]

    def go(self, url: str) -> None:
        self.send("Page.navigate", self.session, url=url)

    def evaluate(self, expression: str):
        result = self.send(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True
        )
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> None:
        """Until `expression` is true in the page (or fail, showing the page's text)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"Boolean({expression})"):
                return
            time.sleep(0.1)
        text = self.evaluate("document.body ? document.body.innerText : ''")
        raise AssertionError(f"the page never had {expression}; it shows: {text!r}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._out)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            os.close(self._in)
