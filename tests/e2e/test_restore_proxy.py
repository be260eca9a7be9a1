"""Reversible redaction through the real proxy: the service sees placeholders only, the client
gets the originals back, with the official OpenAI and Anthropic SDKs and httpx, streamed
(server-sent events, Ollama's JSON lines, Bedrock's AWS event streams) and not.

The local service records every body it receives and answers by echoing the placeholders it
found, streamed the way LLMs stream: `<`, `EMAIL`, `_`, `1`, `>` in separate events, each
event written in two pieces cut mid-line (mid-frame)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import ssl
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import SHIPPED_CATALOG, local_ai_policy
from proxyharness import Proxy, make_upstream_pki, metrics, value, write_policy

from proxy import ca

EMAIL, KEY, CODENAME = "bob@corp.example", "AKIAIOSFODNN7EXAMPLE", "PROJECT-HELIOS"
SECRETS = (EMAIL, KEY, CODENAME)
PROMPT = f"Deploy {CODENAME} with {KEY}, then mail {EMAIL} (cc {EMAIL})"
ECHOED = f"Noted: {CODENAME}, {KEY}, {EMAIL}."  # what the client must read
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")

POLICY = local_ai_policy(
    api_format="openai",
    sections="""
    redaction_profiles:
      restoring:
        detectors: [secrets, pii]
        custom:
          - {id: codename, keywords: [PROJECT-HELIOS]}
        restore: true
    """,
    rules="""
    - id: approved-gateway
      match: {services: [local-ai]}
      action: redact
      redact: restoring
    """,
)


class EchoService:
    """A local AI service over TLS that records each body and echoes its placeholders in
    OpenAI chat, OpenAI Responses, Anthropic messages or Gemini form."""

    def __init__(self, cert, key) -> None:
        self.bodies: list[bytes] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                service.bodies.append(body)
                found = list(dict.fromkeys(PLACEHOLDER.findall(body.decode())))
                text = f"Noted: {', '.join(found)}."
                path, _, query = self.path.partition("?")
                answer = ANSWERS[path.rsplit("/", 1)[-1].split(":")[-1]]
                stream = "alt=sse" in query or json.loads(body).get("stream") or answer.streams
                if json.loads(body).get("tools"):  # a tool call whose arguments echo them
                    text = json.dumps({"to": found})
                    answer = ToolCall
                if not stream:
                    payload = answer.whole(text)
                    if "gzip" in self.headers.get("accept-encoding", "") and answer.gzip:
                        return self._send(gzip.compress(payload), gzip=True)
                    return self._send(payload)
                self._stream(answer.events(tokens(text)), answer.ctype, gzip=answer.gzip)

            def _send(self, payload: bytes, gzip: bool = False) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if gzip:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, events: list[bytes], ctype: str, gzip: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                if gzip:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                packer = zlib.compressobj(wbits=31) if gzip else None
                for data in events:
                    for piece in (data[: len(data) // 2], data[len(data) // 2 :]):  # mid-line
                        if packer is not None:
                            piece = packer.compress(piece) + packer.flush(zlib.Z_SYNC_FLUSH)
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.flush()
                if packer is not None:
                    tail = packer.flush()
                    self.wfile.write(f"{len(tail):x}\r\n".encode() + tail + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def tokens(text: str) -> list[str]:
    """Text cut the way a tokenizer may cut a placeholder: `<`, `EMAIL`, `_`, `1`, `>`."""
    return re.findall(r"<|>|_|[A-Z]+|[0-9]+|[^<>_A-Z0-9]+", text)


def sse(data: dict | str, name: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {name}\n" if name else "").encode() + f"data: {payload}\n\n".encode()


class Answer:
    """How a format answers: whole, or streamed as `ctype` (always, when `streams`)."""

    gzip = False
    ctype = "text/event-stream"
    streams = False


class Chat(Answer):
    gzip = True

    @staticmethod
    def whole(text: str) -> bytes:
        message = {"role": "assistant", "content": text}
        return json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                           "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                     "total_tokens": 2}}).encode()  # fmt: skip

    @staticmethod
    def events(pieces: list[str]) -> list[bytes]:
        def chunk(delta: dict, finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return sse({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                        "model": "m", "choices": [choice]})  # fmt: skip

        return [chunk({"role": "assistant", "content": ""}),
                *(chunk({"content": p}) for p in pieces), chunk({}, "stop"),
                b"data: [DONE]\n\n"]  # fmt: skip


class ToolCall(Answer):
    """An OpenAI chat answer calling `send` with JSON arguments, streamed token by token."""

    @staticmethod
    def whole(arguments: str) -> bytes:
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "send", "arguments": arguments},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                           "choices": [{"index": 0, "message": message,
                                        "finish_reason": "tool_calls"}]}).encode()  # fmt: skip

    @staticmethod
    def events(pieces: list[str]) -> list[bytes]:
        def chunk(call: dict | None, finish: str | None = None) -> bytes:
            delta = {"tool_calls": [call]} if call else {}
            return sse({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                        "model": "m", "choices": [{"index": 0, "delta": delta,
                                                   "finish_reason": finish}]})  # fmt: skip

        first = {"index": 0, "id": "call_1", "type": "function",
                 "function": {"name": "send", "arguments": ""}}  # fmt: skip
        return [chunk(first),
                *(chunk({"index": 0, "function": {"arguments": p}}) for p in pieces),
                chunk(None, "tool_calls"), b"data: [DONE]\n\n"]  # fmt: skip


class Responses(Answer):
    @staticmethod
    def whole(text: str) -> bytes:
        return json.dumps(Responses.response(text, "completed")).encode()

    @staticmethod
    def response(text: str | None, status: str) -> dict:
        content = [{"type": "output_text", "text": text, "annotations": []}]
        output = [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                   "content": content}] if text is not None else []  # fmt: skip
        return {"id": "resp_1", "object": "response", "created_at": 1, "status": status,
                "model": "m", "output": output, "parallel_tool_calls": True,
                "tool_choice": "auto", "tools": []}  # fmt: skip

    @staticmethod
    def events(pieces: list[str]) -> list[bytes]:
        where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
        text = "".join(pieces)
        out = [
            sse(
                {
                    "type": "response.created",
                    "sequence_number": 0,
                    "response": Responses.response(None, "in_progress"),
                },
                "response.created",
            )
        ]
        out += [sse({"type": "response.output_text.delta", "sequence_number": i + 1, **where,
                     "delta": p, "logprobs": []}, "response.output_text.delta")
                for i, p in enumerate(pieces)]  # fmt: skip
        n = len(pieces) + 1
        out.append(
            sse(
                {
                    "type": "response.output_text.done",
                    "sequence_number": n,
                    **where,
                    "text": text,
                    "logprobs": [],
                },
                "response.output_text.done",
            )
        )
        out.append(sse({"type": "response.completed", "sequence_number": n + 1,
                        "response": Responses.response(text, "completed")},
                       "response.completed"))  # fmt: skip
        return out


class Messages(Answer):
    @staticmethod
    def whole(text: str) -> bytes:
        body = json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                           "content": [{"type": "text", "text": text}],
                           "stop_reason": "end_turn", "stop_sequence": None,
                           "usage": {"input_tokens": 1, "output_tokens": 1}})  # fmt: skip
        # escaped as Go's encoder escapes HTML characters: \u003c ... \u003e
        return body.replace("<", "\\u003c").replace(">", "\\u003e").encode()

    @staticmethod
    def events(pieces: list[str]) -> list[bytes]:
        start = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                 "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {"input_tokens": 1, "output_tokens": 0}}  # fmt: skip
        block = {"type": "text", "text": ""}
        out = [sse({"type": "message_start", "message": start}, "message_start"),
               sse({"type": "content_block_start", "index": 0, "content_block": block},
                   "content_block_start")]  # fmt: skip
        for i, p in enumerate(pieces):
            delta = {"type": "text_delta", "text": p}
            out.append(sse({"type": "content_block_delta", "index": 0, "delta": delta},
                           "content_block_delta"))  # fmt: skip
            if i == 1:
                out.append(sse({"type": "ping"}, "ping"))
        out += [sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                sse({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                     "stop_sequence": None}, "usage": {"output_tokens": 9}}, "message_delta"),
                sse({"type": "message_stop"}, "message_stop")]  # fmt: skip
        return out


class Gemini(Answer):
    gzip = True

    @staticmethod
    def whole(text: str) -> bytes:
        return json.dumps(Gemini.chunk(text, "STOP")).encode()

    @staticmethod
    def chunk(text: str, finish: str | None = None) -> dict:
        candidate = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "modelVersion": "g"}

    @staticmethod
    def events(pieces: list[str]) -> list[bytes]:
        return [sse(Gemini.chunk(p)) for p in pieces[:-1]] + [sse(Gemini.chunk(pieces[-1], "STOP"))]


class Ollama(Answer):
    """Ollama's /api/chat: JSON lines, `<` escaped as Go escapes it."""

    ctype = "application/x-ndjson"

    @staticmethod
    def line(text: str, done: bool = False) -> dict:
        return {"model": "llama3", "created_at": "2026-12-04T13:00:00Z",
                "message": {"role": "assistant", "content": text}, "done": done}  # fmt: skip

    @staticmethod
    def whole(text: str) -> bytes:
        return json.dumps(Ollama.line(text, True)).encode()

    @staticmethod
    def events(pieces: list[str]) -> list[bytes]:
        lines = [Ollama.line(p) for p in pieces] + [Ollama.line("", True) | {"eval_count": 9}]
        return [json.dumps(e).replace("<", "\\u003c").encode() + b"\n" for e in lines]


def frame(headers: dict[str, str], payload: dict) -> bytes:
    """An AWS event-stream frame, from the published format (string headers only)."""
    head = b"".join(bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
                    for k, v in headers.items())  # fmt: skip
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 16 + len(head) + len(body), len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + body
    return message + struct.pack(">I", zlib.crc32(message))


def read_frames(stream: bytes) -> list[tuple[bytes, dict]]:
    """(header block, payload) of each frame, its lengths and CRCs checked."""
    out = []
    while stream:
        total, head = struct.unpack(">II", stream[:8])
        assert struct.unpack(">I", stream[8:12])[0] == zlib.crc32(stream[:8])
        assert struct.unpack(">I", stream[total - 4 : total])[0] == zlib.crc32(stream[: total - 4])
        out.append((stream[12 : 12 + head], json.loads(stream[12 + head : total - 4])))
        stream = stream[total:]
    return out


def bedrock(kind: str, payload: dict) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, payload)


class ConverseStream(Answer):
    """Bedrock's ConverseStream: each event's members, named by the `:event-type` header."""

    ctype = "application/vnd.amazon.eventstream"
    streams = True

    @staticmethod
    def events(pieces: list[str]) -> list[bytes]:
        return [bedrock("messageStart", {"role": "assistant", "p": "abc"}),
                *(bedrock("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p},
                                                "p": "abcd"}) for p in pieces),
                bedrock("contentBlockStop", {"contentBlockIndex": 0}),
                bedrock("messageStop", {"stopReason": "end_turn"})]  # fmt: skip


class InvokeStream(Answer):
    """Bedrock's InvokeModelWithResponseStream: Anthropic's events, in base64 chunks."""

    ctype = "application/vnd.amazon.eventstream"
    streams = True

    @staticmethod
    def events(pieces: list[str]) -> list[bytes]:
        def chunk(event: dict) -> bytes:
            return bedrock(
                "chunk", {"bytes": base64.b64encode(json.dumps(event).encode()).decode()}
            )

        return [chunk({"type": "message_start", "message": {"role": "assistant", "content": []}}),
                *(chunk({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": p}}) for p in pieces),
                chunk({"type": "content_block_stop", "index": 0}),
                chunk({"type": "message_stop"})]  # fmt: skip


ANSWERS = {"completions": Chat, "responses": Responses, "messages": Messages,
           "streamGenerateContent": Gemini, "generateContent": Gemini, "chat": Ollama,
           "converse-stream": ConverseStream,
           "invoke-with-response-stream": InvokeStream}  # fmt: skip


# -- the proxy and the service ------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("restore")
    ca.init(work / "ca")
    upstream_ca, cert, key = make_upstream_pki(work)
    service = EchoService(cert, key)
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    audit = work / "audit.jsonl"
    proxy = Proxy(policy, work / "ca", "--upstream-ca", str(upstream_ca), "--audit-log", str(audit))
    yield {"proxy": proxy, "service": service, "cafile": work / "ca" / "ca.pem", "audit": audit}
    assert proxy.stop() == 0
    service.close()


@pytest.fixture
def sdk_env(setup, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", setup["proxy"].url)
    monkeypatch.setenv("SSL_CERT_FILE", str(setup["cafile"]))
    return f"https://localhost:{setup['service'].port}"


def assert_service_saw_placeholders_only(service: EchoService) -> None:
    sent = service.bodies[-1].decode()
    assert not any(s in sent for s in SECRETS), sent
    found = PLACEHOLDER.findall(sent)
    assert found == ["<CODENAME_1>", "<AWS_ACCESS_KEY_1>", "<EMAIL_1>", "<EMAIL_1>"], sent


def openai_client(base: str):
    import openai

    return openai.OpenAI(api_key="sk-test", base_url=f"{base}/v1", max_retries=0)


def anthropic_client(base: str):
    import anthropic

    return anthropic.Anthropic(api_key="sk-ant-test", base_url=base, max_retries=0)


def test_openai_chat_answer_gets_the_originals(setup, sdk_env):
    reply = openai_client(sdk_env).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": PROMPT}]
    )
    assert reply.choices[0].message.content == ECHOED
    assert_service_saw_placeholders_only(setup["service"])


def test_openai_chat_stream_split_per_token_gets_the_originals(setup, sdk_env):
    stream = openai_client(sdk_env).chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": PROMPT}]
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == ECHOED
    assert_service_saw_placeholders_only(setup["service"])


def test_openai_responses_stream_gets_the_originals(setup, sdk_env):
    client = openai_client(sdk_env)
    deltas, final = [], None
    for e in client.responses.create(model="gpt-4o", input=PROMPT, stream=True):
        if e.type == "response.output_text.delta":
            deltas.append(e.delta)
        elif e.type == "response.completed":
            final = e.response.output_text
    assert "".join(deltas) == ECHOED and final == ECHOED
    assert_service_saw_placeholders_only(setup["service"])
    reply = client.responses.create(model="gpt-4o", input=PROMPT)
    assert reply.output_text == ECHOED


SEND = {"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}


@pytest.mark.parametrize("stream", [False, True])
def test_openai_tool_call_arguments_get_the_originals(setup, sdk_env, stream):
    reply = openai_client(sdk_env).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], tools=[SEND],
        stream=stream,
    )  # fmt: skip
    if stream:
        arguments = "".join(
            chunk.choices[0].delta.tool_calls[0].function.arguments or ""
            for chunk in reply
            if chunk.choices and chunk.choices[0].delta.tool_calls
        )
    else:
        arguments = reply.choices[0].message.tool_calls[0].function.arguments
    assert json.loads(arguments) == {"to": [CODENAME, KEY, EMAIL]}
    assert_service_saw_placeholders_only(setup["service"])


def test_anthropic_message_gets_the_originals(setup, sdk_env):
    reply = anthropic_client(sdk_env).messages.create(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": PROMPT}]
    )
    assert reply.content[0].text == ECHOED
    assert_service_saw_placeholders_only(setup["service"])


def test_anthropic_stream_gets_the_originals(setup, sdk_env):
    with anthropic_client(sdk_env).messages.stream(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == ECHOED and final.content[0].text == ECHOED
    assert_service_saw_placeholders_only(setup["service"])


def gemini_post(setup, action: str, prompt: str) -> httpx.Response:
    trust = ssl.create_default_context(cafile=str(setup["cafile"]))
    body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    with httpx.Client(proxy=setup["proxy"].url, verify=trust, timeout=30) as client:
        return client.post(
            f"https://localhost:{setup['service'].port}/v1beta/models/g:{action}",
            json=body,
            headers={"Accept-Encoding": "gzip"},
        )


def test_gzip_streams_and_answers_are_restored(setup):
    """Gemini's SSE, gzip-compressed: decoded on the way; its JSON answer, gzipped: decoded,
    restored, re-encoded with the right length."""
    r = gemini_post(setup, "streamGenerateContent?alt=sse", PROMPT)
    assert r.status_code == 200 and "content-encoding" not in r.headers
    texts = [
        json.loads(line[5:])["candidates"][0]["content"]["parts"][0]["text"]
        for line in r.text.splitlines()
        if line.startswith("data:")
    ]
    assert "".join(texts) == ECHOED and len(texts) > 10
    assert_service_saw_placeholders_only(setup["service"])
    r = gemini_post(setup, "generateContent", PROMPT)
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) == r.num_bytes_downloaded  # the gzipped length
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == ECHOED


def test_a_placeholder_the_user_wrote_is_left_as_written(setup, sdk_env):
    prompt = f"Fill the template '<EMAIL_1>' with {EMAIL}"
    reply = openai_client(sdk_env).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}]
    )
    sent = setup["service"].bodies[-1].decode()
    assert EMAIL not in sent and "'<EMAIL_1>' with <EMAIL_2>" in sent
    assert reply.choices[0].message.content == f"Noted: <EMAIL_1>, {EMAIL}."


def service_post(setup, path: str, body: dict) -> tuple[bytes, int]:
    """The answer streamed through the proxy with httpx, and in how many pieces it came."""
    trust = ssl.create_default_context(cafile=str(setup["cafile"]))
    url = f"https://localhost:{setup['service'].port}{path}"
    with (
        httpx.Client(proxy=setup["proxy"].url, verify=trust, timeout=30) as client,
        client.stream("POST", url, json=body) as r,
    ):
        assert r.status_code == 200
        pieces = list(r.iter_raw())
    return b"".join(pieces), len(pieces)


def test_ollama_json_lines_stream_gets_the_originals(setup):
    body = {"model": "llama3", "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    answer, pieces = service_post(setup, "/api/chat", body)
    lines = [json.loads(line) for line in answer.splitlines()]
    assert "".join(e["message"]["content"] for e in lines) == ECHOED
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 9 and pieces > 10
    assert_service_saw_placeholders_only(setup["service"])


def test_bedrock_event_streams_get_the_originals(setup):
    """ConverseStream and InvokeModelWithResponseStream: frames re-made with new CRCs."""
    body = {"messages": [{"role": "user", "content": [{"text": PROMPT}]}]}
    answer, pieces = service_post(setup, "/model/m/converse-stream", body)
    frames = read_frames(answer)
    assert "".join(p["delta"]["text"] for _, p in frames if "delta" in p) == ECHOED
    assert frames[-1][1] == {"stopReason": "end_turn"} and pieces > 10
    assert_service_saw_placeholders_only(setup["service"])
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
            "messages": [{"role": "user", "content": PROMPT}]}  # fmt: skip
    answer, _ = service_post(setup, "/model/m/invoke-with-response-stream", body)
    events = [json.loads(base64.b64decode(p["bytes"])) for _, p in read_frames(answer)]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == ECHOED and events[-1] == {"type": "message_stop"}
    assert_service_saw_placeholders_only(setup["service"])


def test_restoration_is_counted_by_format_and_outcome(setup):
    m = metrics(setup["proxy"])
    for fmt in ("json", "sse", "ndjson", "eventstream"):
        assert value(m, "aiwarden_restore_total", format=fmt, outcome="restored") >= 1, fmt
    assert value(m, "aiwarden_restore_total", format="eventstream", outcome="restored") >= 2
    assert not [k for k in m if k[0] == "aiwarden_restore_total" and "failed" in str(k)]


def test_no_original_reaches_the_audit_log_logs_or_metrics(setup):
    """Last, so that the lines of every test above are checked too."""
    proxy = setup["proxy"]
    assert gemini_post(setup, "streamGenerateContent?alt=sse", PROMPT).status_code == 200
    record = proxy.wait_for(lambda e: e.get("event") == "redact")
    assert record["redactions"] == {"codename": 1, "aws-access-key": 1, "email": 2}
    exposed = json.dumps(proxy.drain()) + setup["audit"].read_text()
    exposed += json.dumps([list(k) for k in metrics(proxy)])
    assert "approved-gateway" in exposed  # control: these are the lines of those requests
    assert not [s for s in (*SECRETS, "<EMAIL_1>") if s in exposed]
