"""Recording (proxy/mitm/recording.py): the metrics, audit line and log line of each verdict,
and what they must never hold."""

from __future__ import annotations

import json
import socket

import pytest
from conftest import SHIPPED_CATALOG
from hookharness import Hooks
from mitmproxy import exceptions
from mitmproxy.test import tflow
from proxyharness import write_policy

from proxy.decide.verdict import Action, Decision, Mode, Stage
from proxy.policy.model import UNLISTED_RULE_ID

POLICY = "network: {clients: [127.0.0.0/8]}\nrules: []\n"
SECRET_QUERY = "/v1/chat/completions?key=sk-secret-in-query"


@pytest.fixture
def recording(tmp_path):
    """The pipeline's recorder, writing its audit log to a file."""
    hooks = Hooks(write_policy(tmp_path, POLICY, SHIPPED_CATALOG))
    audit = tmp_path / "audit.jsonl"
    hooks.context.configure(hooks.pipeline.recorder, aiwarden_audit_log=str(audit))
    recorder = hooks.pipeline.recorder

    def lines() -> list[dict]:
        recorder.audit.close()  # flushes the writer thread
        return [json.loads(line) for line in audit.read_text().splitlines()]

    return recorder, lines


def a_flow(user: str | None = None):
    f = tflow.tflow()
    f.request.host, f.request.path = "api.openai.com", SECRET_QUERY
    f.request.headers["authorization"] = "Bearer sk-secret-in-header"
    f.client_conn.peername = ("127.0.0.1", 50000)
    if user:
        f.metadata["proxyauth"] = (user, "the password")
    return f


def decision(action: Action, stage: Stage = Stage.REQUEST, **fields) -> Decision:
    fields.setdefault("service", "openai-api")
    return Decision(action, stage, "a-rule", "because", **fields)


def sample(recorder, name: str, **labels: str) -> float:
    return recorder.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_block_is_counted_and_audited_without_query_credentials_or_password(recording):
    recorder, lines = recording
    recorder.record(a_flow("alice"), decision(Action.BLOCK, category="api"), "api.openai.com", "R1")
    [line] = lines()
    assert (line["id"], line["user"], line["action"], line["rule"]) == (
        "R1",
        "alice",
        "block",
        "a-rule",
    )
    assert line["path"] == "/v1/chat/completions"  # no query string
    text = json.dumps(line)
    assert "sk-secret" not in text and "the password" not in text
    assert sample(recorder, "aiwarden_blocked_total", service="openai-api", rule="a-rule") == 1


def test_a_connect_stage_block_counts_a_refused_connection_and_no_path(recording):
    recorder, lines = recording
    refused = decision(Action.BLOCK, Stage.CONNECT, connect=Mode.REFUSE)
    recorder.record(a_flow(), refused, "api.openai.com")
    [line] = lines()
    assert line["path"] is None and line["stage"] == "connect"
    assert sample(recorder, "aiwarden_connections_total", mode="refuse") == 1


def test_redactions_are_counted_by_detector_and_only_their_types_written(recording):
    recorder, lines = recording
    counts = {"email": 2, "aws-access-key": 1}
    recorder.record(a_flow(), decision(Action.REDACT), "api.openai.com", redactions=counts)
    [line] = lines()
    assert line["redactions"] == counts
    assert (
        sample(recorder, "aiwarden_redactions_total", detector="email", service="openai-api") == 2
    )
    assert sample(recorder, "aiwarden_blocked_total", service="openai-api", rule="a-rule") == 0


def test_decided_counts_every_stage_under_its_own_label(recording):
    recorder, _ = recording
    recorder.decided(decision(Action.ALLOW, Stage.CONNECT, category="api"))
    recorder.decided(decision(Action.MONITOR, category="api"))
    labels = {"service": "openai-api", "category": "api"}
    assert (
        sample(recorder, "aiwarden_requests_total", action="allow", stage="connect", **labels) == 1
    )
    assert (
        sample(recorder, "aiwarden_requests_total", action="monitor", stage="request", **labels)
        == 1
    )


def test_an_unlisted_request_blocked_unread_says_why(recording, caplog):
    recorder, _ = recording
    unread = Decision(
        Action.BLOCK, Stage.REQUEST, UNLISTED_RULE_ID, "the body could not be checked (no_length)"
    )
    with caplog.at_level("INFO", logger="aiwarden"):
        recorder.record(a_flow(), unread, "relay.example.net")
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "block"]
    assert record.fields["note"] == "the body could not be checked (no_length)"


def test_shutdown_runs_the_last_steps_before_the_audit_log_closes(recording):
    recorder, _ = recording
    seen = []
    recorder.before_close.append(lambda: seen.append(recorder.audit.error is None))
    recorder.before_close.append(lambda: 1 / 0)  # a failing step stops nothing
    recorder.done()
    assert seen == [True]


def test_with_syslog_too_every_record_goes_to_both_as_the_same_json(tmp_path):
    """The recorder hands decisions and events to the file and to syslog alike; with syslog
    alone there is still an audit trail (discovery writes to it)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    url = f"udp://127.0.0.1:{receiver.getsockname()[1]}"
    hooks = Hooks(write_policy(tmp_path, POLICY, SHIPPED_CATALOG))
    recorder = hooks.pipeline.recorder
    audit = tmp_path / "audit.jsonl"
    try:
        hooks.context.configure(
            recorder, aiwarden_audit_log=str(audit), aiwarden_audit_syslog=url,
            aiwarden_audit_syslog_facility="local5",
        )  # fmt: skip
        recorder.record(a_flow("alice"), decision(Action.BLOCK), "api.openai.com", "R1")
        recorder.coaching("proceeded", "127.0.0.1", "alice", "openai-api", "r", "R2", "why")
        datagrams = [receiver.recv(65536), receiver.recv(65536)]
        recorder.audit.close()
        lines = [json.loads(line) for line in audit.read_text().splitlines()]
        sent = [json.loads(d.split(b"] ", 1)[1]) for d in datagrams]
        assert sent == lines and [line["id"] for line in lines] == ["R1", "R2"]
        assert [d.split(b">")[0] for d in datagrams] == [b"<172", b"<173"]  # local5 warning, notice
        assert "sk-secret" not in str(datagrams)
        hooks.context.configure(recorder, aiwarden_audit_log="")
        assert recorder.audit is not None and recorder.audit.file is None  # syslog alone
        hooks.context.configure(recorder, aiwarden_audit_syslog="")
        assert recorder.audit is None
    finally:
        if recorder.audit is not None:
            recorder.audit.close()
        receiver.close()


def test_a_wrong_syslog_url_is_an_options_error(tmp_path):
    hooks = Hooks(write_policy(tmp_path, POLICY, SHIPPED_CATALOG))
    with pytest.raises(exceptions.OptionsError, match="aiwarden_audit_syslog"):
        hooks.context.configure(hooks.pipeline.recorder, aiwarden_audit_syslog="tcp://")
