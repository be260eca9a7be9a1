"""Throughput of restoring streamed answers, per framing, in one process on one core.

    PYTHONPATH=. python bench/restore_stream_bench.py [--events 21000] [--chunk 1024]

Each stream is an answer of --events text deltas with a placeholder split over five events
(`<`, `EMAIL`, `_`, `1`, `>`) every hundred, fed --chunk bytes at a time: OpenAI chat
server-sent events, Ollama JSON lines (`<` escaped as Go writes it), Bedrock ConverseStream
frames and InvokeModelWithResponseStream frames (Anthropic's events in base64). The best of
three runs is reported, in events a second.
"""

from __future__ import annotations

import argparse
import base64
import json
import time

from proxy.redact.eventstream import EventStreamRestorer, Frame, encode_headers
from proxy.redact.ndjson import NdjsonRestorer
from proxy.redact.sse import SseRestorer

ORIGINALS = {f"<EMAIL_{i}>": f"user{i}@corp.example" for i in range(1, 20)}


def streams(pieces: list[str]) -> dict[str, tuple[type, bytes]]:
    def headers(kind: str) -> bytes:
        return encode_headers({":event-type": kind, ":content-type": "application/json",
                               ":message-type": "event"})  # fmt: skip

    def chat(text: str) -> bytes:
        choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
        event = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                 "model": "gpt-4o", "choices": [choice]}  # fmt: skip
        return b"data: " + json.dumps(event).encode() + b"\n\n"

    def ollama(text: str) -> bytes:
        line = {"model": "llama3", "created_at": "2026-12-04T13:00:00.000000Z",
                "message": {"role": "assistant", "content": text}, "done": False}  # fmt: skip
        return json.dumps(line).replace("<", "\\u003c").encode() + b"\n"

    def converse(text: str) -> bytes:
        payload = {"contentBlockIndex": 0, "delta": {"text": text}, "p": "abcdefghij"}
        return Frame(headers("contentBlockDelta"), json.dumps(payload).encode()).encode()

    def invoke(text: str) -> bytes:
        event = {"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": text}}  # fmt: skip
        payload = {"bytes": base64.b64encode(json.dumps(event).encode()).decode(), "p": "abc"}
        return Frame(headers("chunk"), json.dumps(payload).encode()).encode()

    return {
        "sse": (SseRestorer, b"".join(map(chat, pieces))),
        "ndjson": (NdjsonRestorer, b"".join(map(ollama, pieces))),
        "converse": (EventStreamRestorer, b"".join(map(converse, pieces))),
        "invoke": (EventStreamRestorer, b"".join(map(invoke, pieces))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=21000)
    parser.add_argument("--chunk", type=int, default=1024)
    args = parser.parse_args()
    pieces: list[str] = []
    while len(pieces) < args.events:
        pieces += ["word "] * 95 + ["<", "EMAIL", "_", "1", ">"]
    expected = pieces.count("<")
    for name, (restorer_type, data) in streams(pieces).items():
        best = float("inf")
        for _ in range(3):
            restorer = restorer_type(ORIGINALS)
            start = time.perf_counter()
            for i in range(0, len(data), args.chunk):
                restorer.feed(data[i : i + args.chunk])
            restorer.finish()
            best = min(best, time.perf_counter() - start)
        assert restorer.replaced == expected, (name, restorer.replaced)
        print(f"{name:9} {len(pieces)} events, {len(data) / 1e6:.1f} MB: "
              f"{len(pieces) / best:,.0f} events/s")  # fmt: skip


if __name__ == "__main__":
    main()
