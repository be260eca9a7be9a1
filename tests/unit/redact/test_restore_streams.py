"""Restoring streamed answers that are not server-sent events: JSON lines (Ollama) and AWS
event streams (Bedrock), placeholders split across lines and frames, fed in any chunks."""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from proxy.redact.eventstream import (
    MAX_FRAME_BYTES,
    EventStreamRestorer,
    Frame,
    Malformed,
    encode_headers,
    read_frame,
)
from proxy.redact.ndjson import MAX_LINE_BYTES, NdjsonRestorer

EMAIL = "bob@corp.example"
ORIGINALS = {"<EMAIL_1>": EMAIL, "<EMAIL_10>": "x@y.example", "<GENERIC_SECRET_1>": 'pa"ss'}


def through(restorer, stream: bytes, chunk: int) -> bytes:
    out = b"".join(restorer.feed(stream[i : i + chunk]) for i in range(0, len(stream), chunk))
    return out + restorer.finish()


# -- NDJSON (Ollama) ------------------------------------------------------------------------------


def go_json(event: dict) -> bytes:
    """A line as Ollama (Go) writes it: compact, `<` and `>` escaped."""
    line = json.dumps(event, separators=(",", ":"))
    return line.replace("<", "\\u003c").replace(">", "\\u003e").encode() + b"\n"


def ollama_chat(text: str, done: bool = False) -> dict:
    event = {"model": "llama3", "created_at": "2026-12-04T13:00:00Z",
             "message": {"role": "assistant", "content": text}, "done": done}  # fmt: skip
    if done:
        event |= {"done_reason": "stop", "eval_count": 9}
    return event


def lines(stream: bytes) -> list[dict]:
    return [json.loads(line) for line in stream.splitlines() if line.strip()]


def chat_text(stream: bytes) -> str:
    return "".join(e["message"]["content"] for e in lines(stream))


PIECES = ["Mail ", "<", "EMAIL", "_", "1", ">", " now, é ", "<EMAIL_1"]


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_ollama_chat_split_across_lines_is_restored_and_flushed_before_done(chunk):
    stream = b"".join(go_json(ollama_chat(p)) for p in PIECES) + go_json(ollama_chat("", True))
    out = through(NdjsonRestorer(ORIGINALS), stream, chunk)
    assert chat_text(out) == f"Mail {EMAIL} now, é <EMAIL_1"
    got = lines(out)
    assert got[-2]["message"]["content"] == ""  # held back: it could still be a placeholder
    # then sent in the last line, which finishes the answer and keeps its other fields
    assert got[-1] == {**ollama_chat("<EMAIL_1", True)}
    assert out.startswith(go_json(ollama_chat("Mail ")))  # untouched lines keep their bytes


def test_ollama_generate_without_done_is_flushed_at_the_end():
    def gen(text: str) -> dict:
        return {"model": "m", "created_at": "t", "response": text, "done": False}

    stream = b"".join(go_json(gen(p)) for p in ["to <EMAIL", "_10> and <EMA"])
    restorer = NdjsonRestorer(ORIGINALS)
    out = through(restorer, stream, 5)
    assert "".join(e["response"] for e in lines(out)) == "to x@y.example and <EMA"
    assert lines(out)[-1] == gen("<EMA") and restorer.replaced == 1


def test_several_choices_are_followed_each_on_its_own():
    def chunk(index: int, text: str | None, finish: str | None = None) -> dict:
        delta = {} if text is None else {"content": text}
        return {"id": "c", "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}

    events = [chunk(0, "a <EMA"), chunk(1, "b <GENERIC_"), chunk(0, "IL_1> <EMAIL_1"),
              chunk(1, "SECRET_1>"), chunk(0, None, "stop"), chunk(1, None, "stop")]  # fmt: skip
    out = through(NdjsonRestorer(ORIGINALS), b"".join(go_json(e) for e in events), 7)
    texts = {0: "", 1: ""}
    for e in lines(out):
        for c in e["choices"]:
            texts[c["index"]] += c["delta"].get("content", "")
    assert texts == {0: f"a {EMAIL} <EMAIL_1", 1: 'b pa"ss'}
    finishes = [c["index"] for e in lines(out) for c in e["choices"] if c["finish_reason"]]
    assert finishes == [0, 1]


def test_other_lines_pass_with_whole_placeholders_restored():
    stream = b'{"tool":"<EMAIL_1>","n":1}\nnot json <EMAIL_1>\n[1, "<EMAIL_1>"]\r\n\n'
    out = through(NdjsonRestorer(ORIGINALS), stream, 2)
    assert out == f'{{"tool":"{EMAIL}","n":1}}\nnot json <EMAIL_1>\n[1, "{EMAIL}"]\r\n\n'.encode()


def test_an_unfinished_last_line_and_the_held_text_end_on_lines_of_their_own():
    stream = go_json(ollama_chat("x <EMAIL_")) + json.dumps({"note": "<EMAIL_1>"}).encode()
    out = through(NdjsonRestorer(ORIGINALS), stream, 4)
    assert lines(out) == [ollama_chat("x "), {"note": EMAIL}, ollama_chat("<EMAIL_")]


def test_an_endless_line_stops_restoring_and_passes_the_rest():
    restorer = NdjsonRestorer(ORIGINALS)
    assert restorer.feed(go_json(ollama_chat("hi <EMAIL_"))) == go_json(ollama_chat("hi "))
    huge = b'{"x": "' + b"y" * MAX_LINE_BYTES
    out = restorer.feed(huge)
    assert restorer.passing and out.endswith(huge)
    assert lines(out.removesuffix(huge)) == [ollama_chat("<EMAIL_")]  # the held text first
    assert restorer.feed(b"<EMAIL_1>\n") == b"<EMAIL_1>\n" and restorer.finish() == b""


# -- AWS event streams (Bedrock) ------------------------------------------------------------------


def test_the_frame_codec_matches_the_published_format():
    # AWS's test vector of the empty message: lengths 16 and 0, then the two CRC32s
    assert Frame(b"", b"").encode() == bytes.fromhex("000000100000000005c248eb7d98c8ff")
    headers = encode_headers({":event-type": "chunk", ":message-type": "event"})
    frame = Frame(headers, b'{"a":1}')
    raw = frame.encode()
    assert read_frame(raw) == (frame, len(raw)) and read_frame(raw[:-1]) is None
    assert frame.header_strings() == {":event-type": "chunk", ":message-type": "event"}
    typed = b"\x04flag\x00" + b"\x02id\x04\x00\x00\x00\x07" + headers  # bool and int32 headers
    assert Frame(typed, b"").header_strings() == frame.header_strings()
    for broken, reason in [(raw[:8] + b"\0" + raw[9:], "prelude CRC"),
                           (raw[:-1] + b"\0", "message CRC")]:  # fmt: skip
        with pytest.raises(Malformed, match=reason):
            read_frame(broken)
    prelude = (MAX_FRAME_BYTES + 1).to_bytes(4, "big") + bytes(4)
    with pytest.raises(Malformed, match="lengths"):  # refused before it is all read
        read_frame(prelude + zlib.crc32(prelude).to_bytes(4, "big"))


def converse(kind: str, payload: dict) -> bytes:
    """A ConverseStream frame: the event's members, named by `:event-type`."""
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return Frame(encode_headers(headers), json.dumps(payload).encode()).encode()


def text_delta(text: str, index: int = 0) -> bytes:
    payload = {"contentBlockIndex": index, "delta": {"text": text}, "p": "abcdef"}
    return converse("contentBlockDelta", payload)


def frames(stream: bytes) -> list[tuple[dict, dict]]:
    """(string headers, payload) of each frame, every CRC checked."""
    out = []
    while stream:
        frame, size = read_frame(stream)
        out.append((frame.header_strings(), json.loads(frame.payload)))
        stream = stream[size:]
    return out


@pytest.mark.parametrize("chunk", [1, 13, 65536])
def test_converse_stream_split_across_frames(chunk):
    stream = (
        converse("messageStart", {"role": "assistant"})
        + b"".join(text_delta(p) for p in PIECES)
        + converse("contentBlockStop", {"contentBlockIndex": 0})
        + converse("messageStop", {"stopReason": "end_turn"})
    )
    restorer = EventStreamRestorer(ORIGINALS)
    got = frames(through(restorer, stream, chunk))
    deltas = [p for h, p in got if h[":event-type"] == "contentBlockDelta"]
    assert "".join(p["delta"]["text"] for p in deltas) == f"Mail {EMAIL} now, é <EMAIL_1"
    # the held text, in a frame of its own before the block's stop, with the same headers
    assert got[-3] == (got[1][0], {"delta": {"text": "<EMAIL_1"}, "contentBlockIndex": 0})
    assert [h[":event-type"] for h, _ in got[-2:]] == ["contentBlockStop", "messageStop"]
    assert deltas[0]["p"] == "abcdef" and restorer.failure is None and restorer.replaced == 1


def test_converse_tool_input_gets_originals_escaped_for_json():
    def tool(text: str) -> bytes:
        payload = {"contentBlockIndex": 1, "delta": {"toolUse": {"input": text}}}
        return converse("contentBlockDelta", payload)

    stream = tool('{"pw": "<GENERIC_SE') + tool('CRET_1>"}') + converse("messageStop", {})
    got = frames(through(EventStreamRestorer(ORIGINALS), stream, 9))
    arguments = "".join(p["delta"]["toolUse"]["input"] for _, p in got if "delta" in p)
    assert json.loads(arguments) == {"pw": 'pa"ss'}


def invoke_chunk(event: dict) -> bytes:
    """An InvokeModelWithResponseStream frame: the model's chunk in base64."""
    headers = {":event-type": "chunk", ":content-type": "application/json",
               ":message-type": "event"}  # fmt: skip
    payload = {"bytes": base64.b64encode(json.dumps(event).encode()).decode(), "p": "xyz"}
    return Frame(encode_headers(headers), json.dumps(payload).encode()).encode()


def chunks(stream: bytes) -> list[dict]:
    return [json.loads(base64.b64decode(p["bytes"])) for _, p in frames(stream)]


def test_invoke_model_stream_anthropic_chunks_in_base64():
    def delta(text: str) -> dict:
        return {"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": text}}  # fmt: skip

    stream = b"".join(invoke_chunk(delta(t)) for t in ["hi <EMAIL_", "1", "> <EMAIL_1"])
    stream += invoke_chunk({"type": "message_stop", "note": "<EMAIL_1>"})
    out = through(EventStreamRestorer(ORIGINALS), stream, 11)
    got = chunks(out)
    assert "".join(c["delta"]["text"] for c in got[:-1]) == f"hi {EMAIL} <EMAIL_1"
    assert got[-1] == {"type": "message_stop", "note": EMAIL}  # whole ones elsewhere too
    assert all(p["p"] == "xyz" for _, p in frames(out)[:2])


def test_a_malformed_frame_sends_the_held_text_then_passes_the_rest_as_it_came():
    restorer = EventStreamRestorer(ORIGINALS)
    first = restorer.feed(text_delta("to <EMAIL"))
    assert frames(first)[0][1]["delta"]["text"] == "to "
    bad = bytearray(text_delta("_1>"))
    bad[-1] ^= 0xFF  # its message CRC
    out = restorer.feed(bytes(bad) + text_delta("<EMAIL_1>"))
    assert restorer.failure == "malformed frame: message CRC" and restorer.passing
    assert frames(out[: len(out) - len(bad) - len(text_delta("<EMAIL_1>"))]) == [
        (frames(text_delta(""))[0][0], {"delta": {"text": "<EMAIL"}, "contentBlockIndex": 0})
    ]
    assert out.endswith(bytes(bad) + text_delta("<EMAIL_1>"))  # placeholders, never secrets
    assert restorer.feed(b"more") == b"more" and restorer.finish() == b""


def test_an_exception_frame_ends_the_answer():
    error = Frame(encode_headers({":message-type": "exception",
                                  ":exception-type": "throttlingException"}),
                  b'{"message": "slow down <EMAIL_1>"}').encode()  # fmt: skip
    out = through(EventStreamRestorer(ORIGINALS), text_delta("a <EMAIL_") + error, 6)
    got = frames(out)
    assert [p.get("delta", {}).get("text") for _, p in got[:2]] == ["a ", "<EMAIL_"]
    assert out.endswith(error)  # passed as it came


@pytest.mark.parametrize(
    "chunk, field",
    [
        (lambda t, end=None: {"generation": t, "stop_reason": end}, "generation"),  # Llama
        (lambda t, end=None: {"outputText": t, "index": 0, "completionReason": end},
         "outputText"),  # Titan
        (lambda t, end=None: {"outputs": [{"text": t, "stop_reason": end}]}, "text"),  # Mistral
        (lambda t, end=None: {"text": t, "is_finished": bool(end),
                              "event_type": "text-generation"}, "text"),  # Cohere
    ],
)  # fmt: skip
def test_other_bedrock_models_chunks(chunk, field):
    stream = b"".join(invoke_chunk(chunk(t)) for t in ["to <EMA", "IL_1> <EMAIL_1"])
    stream += invoke_chunk(chunk("", "stop"))
    got = chunks(through(EventStreamRestorer(ORIGINALS), stream, 10))

    def text(c: dict) -> str:
        return c["outputs"][0]["text"] if "outputs" in c else c[field]

    assert [text(c) for c in got] == ["to ", EMAIL + " ", "<EMAIL_1"]  # held, then in the last
