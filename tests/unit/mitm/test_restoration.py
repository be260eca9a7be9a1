"""The Restoration addon's hooks on mitmproxy's test flows: what it holds, streams or leaves
alone, and the answers it cannot restore (sent on as they came, with placeholders)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging

import pytest
from mitmproxy.test import tflow, tutils

from proxy.mitm.answers import OFFLOAD_BYTES
from proxy.mitm.decoding import decoder_for
from proxy.mitm.restoration import MAX_HELD_BYTES, Restoration, RestoringStream
from proxy.mitm.state import state_of
from proxy.observe.metrics import Metrics
from proxy.redact.eventstream import EventStreamRestorer, Frame
from proxy.redact.ndjson import NdjsonRestorer
from proxy.redact.sse import SseRestorer

ORIGINALS = {"<EMAIL_1>": "bob@corp.example"}


def flow(ctype: str, body: bytes = b"", restoring: bool = True, **headers: str):
    f = tflow.tflow(resp=tutils.tresp(content=body))
    f.response.headers["content-type"] = ctype
    for name, value in headers.items():
        f.response.headers[name.replace("_", "-")] = value
    if restoring:
        state_of(f).originals = dict(ORIGINALS)
    f.response.stream = True  # as the Upstream addon leaves every answer
    return f


def test_a_json_answer_is_held_then_restored_and_re_encoded():
    body = gzip.compress(json.dumps({"text": "to <EMAIL_1>"}).encode())
    f = flow("application/json", content_encoding="gzip")
    f.response.raw_content = body
    Restoration(Metrics()).responseheaders(f)
    assert f.response.stream is False
    Restoration(Metrics()).response(f)
    assert json.loads(f.response.content) == {"text": "to bob@corp.example"}
    assert f.response.headers["content-encoding"] == "gzip"
    assert f.response.headers["content-length"] == str(len(f.response.raw_content))


def test_flows_without_placeholders_are_left_streaming():
    f = flow("application/json", b'{"t": "<EMAIL_1>"}', restoring=False)
    Restoration(Metrics()).responseheaders(f)
    Restoration(Metrics()).response(f)
    assert f.response.stream is True and f.response.content == b'{"t": "<EMAIL_1>"}'


@pytest.mark.parametrize(
    "ctype, headers",
    [
        ("image/png", {}),
        ("application/json", {"content_length": str(MAX_HELD_BYTES + 1)}),
        ("text/event-stream", {"content_encoding": "compress"}),
    ],
)
def test_answers_it_cannot_or_need_not_restore_pass_as_they_came(ctype, headers):
    f = flow(ctype, b"x", **headers)
    Restoration(Metrics()).responseheaders(f)
    assert f.response.stream is True
    for name, value in headers.items():
        assert f.response.headers[name.replace("_", "-")] == value


def test_an_undecodable_body_is_sent_as_it_came():
    f = flow("application/json", content_encoding="gzip")
    f.response.raw_content = b"not gzip <EMAIL_1>"
    Restoration(Metrics()).responseheaders(f)
    Restoration(Metrics()).response(f)
    assert f.response.raw_content == b"not gzip <EMAIL_1>"


def test_an_event_stream_is_streamed_through_the_restorer_decoded():
    f = flow("text/event-stream", content_encoding="gzip", content_length="99")
    Restoration(Metrics()).responseheaders(f)
    stream = f.response.stream
    assert isinstance(stream, RestoringStream)
    assert "content-encoding" not in f.response.headers
    assert "content-length" not in f.response.headers
    assert f.response.headers["transfer-encoding"] == "chunked"
    event = b'data: {"choices":[{"index":0,"delta":{"content":"<EMAIL_1>"}}]}\n\n'
    packed = gzip.compress(event)
    assert stream(packed[:5]) == []  # nothing yet: never an empty chunk (it would end the body)
    out = b"".join(stream(packed[5:]) + stream(b""))
    assert b"bob@corp.example" in out and b"<EMAIL_1>" not in out


def test_a_stream_that_stops_decoding_ends_without_sending_garbage():
    stream = RestoringStream("h", decoder_for("gzip"), SseRestorer(ORIGINALS))
    assert stream(b"definitely not gzip") == [] and stream.broken
    assert stream(b"more") == [] and stream(b"") == []


def test_a_large_answer_is_restored_off_the_event_loop():
    text = "x" * (OFFLOAD_BYTES + 10) + " <EMAIL_1>"
    f = flow("application/json", json.dumps({"text": text}).encode())
    Restoration(Metrics()).responseheaders(f)
    pending = Restoration(Metrics()).response(f)
    assert pending is not None and b"<EMAIL_1>" in f.response.content  # not yet
    asyncio.run(pending)
    assert json.loads(f.response.content)["text"].endswith(" bob@corp.example")


def outcomes(metrics: Metrics) -> dict[tuple[str, str], float]:
    """aiwarden_restore_total as {(format, outcome): count}."""
    return {
        (s.labels["format"], s.labels["outcome"]): s.value
        for family in metrics.registry.collect()
        if family.name == "aiwarden_restore"
        for s in family.samples
        if s.name == "aiwarden_restore_total"
    }


@pytest.mark.parametrize(
    "ctype, restorer, label",
    [
        ("application/x-ndjson", NdjsonRestorer, "ndjson"),
        ("application/jsonl; charset=utf-8", NdjsonRestorer, "ndjson"),
        ("application/vnd.amazon.eventstream", EventStreamRestorer, "eventstream"),
        ("text/event-stream", SseRestorer, "sse"),
    ],
)
def test_each_stream_format_gets_its_restorer_and_is_counted_once(ctype, restorer, label):
    metrics = Metrics()
    f = flow(ctype)
    Restoration(metrics).responseheaders(f)
    assert isinstance(f.response.stream.restorer, restorer)
    assert f.response.stream(b"") == [] and outcomes(metrics) == {(label, "unchanged"): 1}


def test_whole_answers_are_counted_by_outcome():
    metrics = Metrics()
    for ctype, body in [("application/json", b'{"t": "<EMAIL_1>"}'), ("text/plain", b"hi"),
                        ("image/png", b"<EMAIL_1>")]:  # fmt: skip
        f = flow(ctype, body)
        Restoration(metrics).responseheaders(f)
        Restoration(metrics).response(f)
    f = flow("application/json", content_length=str(MAX_HELD_BYTES + 1))
    Restoration(metrics).responseheaders(f)
    assert outcomes(metrics) == {("json", "restored"): 1, ("text", "unchanged"): 1,
                                 ("other", "skipped"): 1, ("json", "skipped"): 1}  # fmt: skip


def test_a_malformed_frame_is_logged_counted_and_passes_as_it_came(caplog):
    metrics = Metrics()
    f = flow("application/vnd.amazon.eventstream")
    Restoration(metrics).responseheaders(f)
    good = Frame(b"", b'{"contentBlockDelta": {"delta": {"text": "<EMAIL_1>"}}}').encode()
    bad = b"\x00\x00\x00\x10garbage and <EMAIL_1>"
    with caplog.at_level(logging.INFO, logger="aiwarden"):
        out = b"".join(f.response.stream(good) + f.response.stream(bad) + f.response.stream(b""))
    assert b"bob@corp.example" in out and out.endswith(bad)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["restore_failed host=address reason=malformed frame: prelude CRC"]
    assert outcomes(metrics) == {("eventstream", "failed"): 1}
