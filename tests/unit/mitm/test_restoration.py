"""The Restoration addon's hooks on mitmproxy's test flows: what it holds, streams or leaves
alone, and the answers it cannot restore (sent on as they came, with placeholders)."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from mitmproxy.test import tflow, tutils

from proxy.mitm.answers import OFFLOAD_BYTES
from proxy.mitm.decoding import decoder_for
from proxy.mitm.restoration import MAX_HELD_BYTES, Restoration, RestoringStream
from proxy.mitm.state import state_of

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
    Restoration().responseheaders(f)
    assert f.response.stream is False
    Restoration().response(f)
    assert json.loads(f.response.content) == {"text": "to bob@corp.example"}
    assert f.response.headers["content-encoding"] == "gzip"
    assert f.response.headers["content-length"] == str(len(f.response.raw_content))


def test_flows_without_placeholders_are_left_streaming():
    f = flow("application/json", b'{"t": "<EMAIL_1>"}', restoring=False)
    Restoration().responseheaders(f)
    Restoration().response(f)
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
    Restoration().responseheaders(f)
    assert f.response.stream is True
    for name, value in headers.items():
        assert f.response.headers[name.replace("_", "-")] == value


def test_an_undecodable_body_is_sent_as_it_came():
    f = flow("application/json", content_encoding="gzip")
    f.response.raw_content = b"not gzip <EMAIL_1>"
    Restoration().responseheaders(f)
    Restoration().response(f)
    assert f.response.raw_content == b"not gzip <EMAIL_1>"


def test_an_event_stream_is_streamed_through_the_restorer_decoded():
    f = flow("text/event-stream", content_encoding="gzip", content_length="99")
    Restoration().responseheaders(f)
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
    stream = RestoringStream("h", decoder_for("gzip"), ORIGINALS)
    assert stream(b"definitely not gzip") == [] and stream.broken
    assert stream(b"more") == [] and stream(b"") == []


def test_a_large_answer_is_restored_off_the_event_loop():
    text = "x" * (OFFLOAD_BYTES + 10) + " <EMAIL_1>"
    f = flow("application/json", json.dumps({"text": text}).encode())
    Restoration().responseheaders(f)
    pending = Restoration().response(f)
    assert pending is not None and b"<EMAIL_1>" in f.response.content  # not yet
    asyncio.run(pending)
    assert json.loads(f.response.content)["text"].endswith(" bob@corp.example")
