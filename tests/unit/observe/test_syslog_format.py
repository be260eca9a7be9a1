"""The syslog sender (proxy/observe/syslog.py): RFC 5424 messages (PRI, timestamp, header
fields, structured data and its escaping), octet counting, URLs and facilities; and the
sender's thread against plain loopback sockets: a closed connection is made again, a server
that is away is logged once when it goes and once when it is back, a full queue drops and
counts. The real rsyslogd is in tests/e2e/test_syslog_rsyslog.py."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import threading
import time

import pytest

from proxy.observe.audit import AuditTrail, decision_fields, event_fields, json_line
from proxy.observe.syslog import (
    Destination,
    SyslogSender,
    facility_number,
    header_field,
    message,
    octet_counted,
    parse_url,
    sd_value,
    severity,
    structured_data,
)
from proxy.serve.workers import audit_trail

BLOCK = {"ts": "2026-01-02T03:04:05.678Z", "id": "R1", "action": "block", "rule": "no-ai"}


def test_a_block_is_one_rfc5424_message_with_the_records_json_as_msg():
    fields = decision_fields(dict(BLOCK))
    line = json_line(fields)
    msg = message(fields, line, facility=16, hostname="gw1", procid=42, sequence=7)
    assert msg == (
        b"<132>1 2026-01-02T03:04:05.678Z gw1 aiwarden 42 decision "
        b'[origin software="aiwarden" swVersion="'
        + _version()
        + b'"][meta sequenceId="7"] '
        + line.encode()
    )
    assert msg.isascii()  # no BOM needed: MSG is JSON with non-ASCII escaped
    assert json.loads(msg.split(b"] ", 1)[1]) == fields


@pytest.mark.parametrize(
    "fields, pri",
    [
        ({"action": "block"}, 16 * 8 + 4),  # warning
        ({"action": "redact"}, 16 * 8 + 5),  # notice
        ({"action": "monitor"}, 16 * 8 + 6),  # info
        ({"event": "coaching", "outcome": "proceeded"}, 16 * 8 + 5),
        ({"event": "coaching", "outcome": "warned"}, 16 * 8 + 6),
        ({"event": "discovery", "action": "block"}, 16 * 8 + 6),  # an event is not a decision
    ],
)
def test_pri_is_the_facility_times_eight_plus_the_severity(fields, pri):
    assert 4 <= severity(fields) <= 6
    msg = message({"ts": BLOCK["ts"], **fields}, "{}", 16, "h", 1, 1)
    assert msg.startswith(b"<%d>1 " % pri)


def test_msgid_is_decision_or_the_event():
    assert message({"action": "block"}, "{}", 16, "h", 1, 1).split()[5] == b"decision"
    fields = event_fields({"event": "discovery", "domain": "x.ai"})
    assert message(fields, json_line(fields), 16, "h", 1, 1).split()[5] == b"discovery"


def test_the_timestamp_is_the_records_own():
    fields = event_fields({"event": "coaching"})
    stamp = message(fields, "{}", 16, "h", 1, 1).split()[1].decode()
    assert stamp == fields["ts"] and stamp.endswith("Z") and len(stamp) == len(BLOCK["ts"])


def test_facilities_by_name_or_number():
    assert facility_number("local0") == 16 and facility_number("LOCAL7") == 23
    assert facility_number("audit") == 13 and facility_number("authpriv") == 10
    assert facility_number("3") == 3
    for bad in ("local8", "24", "-1", ""):
        with pytest.raises(ValueError):
            facility_number(bad)
    assert message({"action": "block"}, "{}", 13, "h", 1, 1).startswith(b"<108>1 ")


def test_header_fields_are_printable_ascii_without_spaces_or_nil():
    assert header_field("gw 1.corp", 255) == "gw1.corp"
    assert header_field("hôte", 255) == "hte"
    assert header_field("", 255) == header_field(None, 255) == header_field(" é", 255) == "-"
    assert header_field("x" * 300, 255) == "x" * 255
    msg = message({"action": "block"}, "{}", 16, "", 1, 1)
    assert msg.split()[2] == b"-"  # no hostname: NILVALUE


def test_structured_data_escapes_quote_backslash_and_bracket():
    assert sd_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'
    assert structured_data([("x@32473", [("k", 'say "hi"]')])]) == '[x@32473 k="say \\"hi\\"\\]"]'
    assert structured_data([]) == "-"
    assert structured_data([("a", []), ("b", [("p", "1")])]) == '[a][b p="1"]'


def test_octet_counting_counts_octets():
    assert octet_counted(b"<134>1 - - - - - - hi") == b"21 <134>1 - - - - - - hi"
    assert octet_counted("é".encode()) == b"2 \xc3\xa9"


def test_urls():
    assert parse_url("udp://siem.corp") == Destination("udp", "siem.corp", 514)
    assert parse_url("tcp://10.0.0.1") == Destination("tcp", "10.0.0.1", 601)
    assert parse_url("tls://siem.corp:10514") == Destination("tls", "siem.corp", 10514)
    assert parse_url("udp://[::1]:5514") == Destination("udp", "::1", 5514)
    assert str(parse_url("tls://[::1]")) == "tls://[::1]:6514"
    for bad in ("syslog://h", "h:514", "tcp://", "tcp://h/path", "tcp://h:99999", "tcp://u@h"):
        with pytest.raises(ValueError):
            parse_url(bad)


def _version() -> bytes:
    from proxy import __version__

    return __version__.encode()


# -- the thread, against plain loopback sockets -----------------------------------------------


class TcpSink:
    """A TCP server on loopback that reads octet-counted frames; `close_each` closes every
    connection after its first frame, as a server restarting would."""

    def __init__(self, port: int = 0, close_each: bool = False) -> None:
        self.frames: list[bytes] = []
        self.connections = 0
        self.close_each = close_each
        self.server = socket.create_server(("127.0.0.1", port))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                while b" " in buffer:
                    length, rest = buffer.split(b" ", 1)
                    if len(rest) < int(length):
                        break
                    self.frames.append(rest[: int(length)])
                    buffer = rest[int(length) :]
                    if self.close_each:
                        return

    def wait(self, count: int, timeout: float = 10) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.frames

    def close(self) -> None:
        self.server.close()


def test_tcp_frames_arrive_and_a_connection_the_server_closed_is_made_again():
    sink = TcpSink(close_each=True)
    sender = SyslogSender(f"tcp://127.0.0.1:{sink.port}")
    trail = AuditTrail(None, sender)
    try:
        for i in range(3):
            trail.write({"id": f"R{i}", "action": "block"})
            sink.wait(i + 1)
            time.sleep(0.1)  # the server's close arrives before the next message
        frames = sink.wait(3)
        assert [json.loads(f.split(b"] ", 1)[1])["id"] for f in frames] == ["R0", "R1", "R2"]
        assert sink.connections == 3 and sender.error is None
    finally:
        trail.close()
        sink.close()


def test_a_server_away_is_logged_once_and_once_when_back_and_messages_wait(caplog):
    placeholder = socket.create_server(("127.0.0.1", 0))
    port = placeholder.getsockname()[1]
    placeholder.close()  # nobody listens there now
    health: list[bool] = []
    drops: list[str] = []
    sender = SyslogSender(f"tcp://127.0.0.1:{port}", on_drop=drops.append, on_health=health.append)
    with caplog.at_level(logging.WARNING, logger="aiwarden"):
        for i in range(5):
            sender.put({"action": "block"}, json.dumps({"id": f"R{i}"}))
        deadline = time.monotonic() + 5
        while sender.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sender.error and health == [False]
        sink = TcpSink(port)  # the server comes back; the backoff's next try finds it
        try:
            frames = sink.wait(5)
            assert [json.loads(f.split(b"] ", 1)[1])["id"] for f in frames] == [
                f"R{i}" for i in range(5)
            ]  # nothing lost while it was away: the messages waited
            assert health == [False, True] and sender.error is None and drops == []
        finally:
            sender.close()
            sink.close()
    said = [r.getMessage() for r in caplog.records if "audit syslog" in r.getMessage()]
    assert len(said) == 2, said
    assert "cannot send" in said[0] and "sending again" in said[1]


def test_a_full_queue_drops_and_counts_without_blocking():
    placeholder = socket.create_server(("127.0.0.1", 0))
    port = placeholder.getsockname()[1]
    placeholder.close()
    drops: list[str] = []
    sender = SyslogSender(f"tcp://127.0.0.1:{port}", on_drop=drops.append, queue_size=2)
    start = time.monotonic()
    for _ in range(50):
        sender.put({"action": "block"}, "{}")
    assert time.monotonic() - start < 0.5  # never waits for the server
    assert drops.count("queue_full") >= 45
    start = time.monotonic()
    sender.close(timeout=0.5)
    assert time.monotonic() - start < 3  # stopping does not wait for the server either
    assert drops.count("queue_full") + drops.count("send_error") == 50


def test_udp_datagrams_arrive():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    sender = SyslogSender(f"udp://127.0.0.1:{receiver.getsockname()[1]}", facility="local3")
    trail = AuditTrail(None, sender)
    try:
        trail.write_event({"event": "discovery", "domain": "new-llm.ai"})
        datagram = receiver.recv(65536)
        assert datagram.startswith(b"<158>1 ") and b" discovery [origin " in datagram
        assert json.loads(datagram.split(b"] ", 1)[1])["domain"] == "new-llm.ai"
    finally:
        trail.close()
        receiver.close()


def test_a_bad_url_facility_or_ca_file_is_refused_at_once(tmp_path):
    with pytest.raises(ValueError):
        SyslogSender("http://siem.corp")
    with pytest.raises(ValueError):
        SyslogSender("udp://127.0.0.1", facility="nope")
    with pytest.raises(OSError):
        SyslogSender("tls://127.0.0.1", ca_file=str(tmp_path / "missing.pem"))


def test_the_supervisors_trail_for_its_revocations_goes_to_the_file_and_syslog(tmp_path):
    """`--workers N`: the supervisor writes the grants it revokes itself, to both."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    args = argparse.Namespace(
        audit_log=str(tmp_path / "audit.jsonl"),
        audit_syslog=f"udp://127.0.0.1:{receiver.getsockname()[1]}",
        audit_syslog_ca=None,
        audit_syslog_facility=None,  # local0
    )
    trail = audit_trail(args)
    assert trail is not None
    try:
        trail.write_event({"event": "coaching", "outcome": "revoked", "id": None})
        datagram = receiver.recv(65536)
    finally:
        trail.close()
        receiver.close()
    [line] = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert datagram.startswith(b"<134>1 ") and datagram.endswith(line.encode())
    assert audit_trail(argparse.Namespace(audit_log=None, audit_syslog=None)) is None
