"""Reversible redaction: the placeholders of a request, the profile option, and restoring the
originals in whole JSON answers and in streamed (SSE) ones split anywhere."""

from __future__ import annotations

import json

import pytest
from conftest import SHIPPED_CATALOG, assert_error, errors_of

from proxy.policy.loader import load_policy
from proxy.redact.bodies import redact_body
from proxy.redact.builtin import BUILTIN
from proxy.redact.detectors import custom_pattern, scan
from proxy.redact.placeholders import Placeholders, placeholder, self_findings
from proxy.redact.profiles import RedactionProfile
from proxy.redact.restore import JsonRestorer, TextRestorer
from proxy.redact.sse import MAX_EVENT_BYTES, SseRestorer

RESTORING = RedactionProfile("r", BUILTIN, restore=True)
EMAIL, KEY = "bob@corp.example", "AKIAIOSFODNN7EXAMPLE"


def chat_body(*texts: str) -> bytes:
    messages = [{"role": "user", "content": t} for t in texts]
    return json.dumps({"model": "gpt-4o", "messages": messages}).encode()


def sent_texts(result) -> list[str]:
    return [m["content"] for m in json.loads(result.body)["messages"]]


# -- the placeholders of one request ------------------------------------------------------------


def test_findings_become_numbered_placeholders_stable_within_the_request():
    result = redact_body(
        chat_body(f"mail {EMAIL} and alice@corp.example", f"again {EMAIL}, key {KEY}"),
        "application/json",
        RESTORING,
    )
    assert sent_texts(result) == [
        "mail <EMAIL_1> and <EMAIL_2>",
        "again <EMAIL_1>, key <AWS_ACCESS_KEY_1>",
    ]
    assert result.originals == {
        "<EMAIL_1>": EMAIL,
        "<EMAIL_2>": "alice@corp.example",
        "<AWS_ACCESS_KEY_1>": KEY,
    }
    assert EMAIL not in repr(result) and KEY not in repr(result)


def test_a_placeholder_the_prompt_already_holds_is_not_used():
    # the quoted one comes after the address: placeholders are chosen for the whole body
    result = redact_body(
        chat_body(f"mail {EMAIL}", "the template says <EMAIL_1> and \u003cEMAIL_2>"),
        "application/json",
        RESTORING,
    )
    assert sent_texts(result) == ["mail <EMAIL_3>", "the template says <EMAIL_1> and <EMAIL_2>"]
    assert result.originals == {"<EMAIL_3>": EMAIL}


@pytest.mark.parametrize(
    "ctype, body",
    [
        ("text/plain", f"<EMAIL_1> is taken; {EMAIL}".encode()),
        ("application/x-www-form-urlencoded", f"q=%3CEMAIL_1%3E+{EMAIL}".encode()),
    ],
)
def test_a_taken_placeholder_is_avoided_in_other_formats(ctype, body):
    result = redact_body(body, ctype, RESTORING)
    assert result.originals == {"<EMAIL_2>": EMAIL}


def test_without_restore_nothing_is_kept():
    result = redact_body(
        chat_body(f"mail {EMAIL}"), "application/json", RedactionProfile("p", BUILTIN)
    )
    assert sent_texts(result) == ["mail [REDACTED:email]"] and result.originals == {}


def test_no_built_in_detector_finds_a_placeholder():
    samples = " ".join(placeholder(d.id, n) for d in BUILTIN for n in (1, 7, 42, 1000))
    assert "<PRIVATE_KEY_1>" in samples and "<URL_CREDENTIALS_42>" in samples  # control
    assert scan(samples, BUILTIN) == []
    assert self_findings(BUILTIN) == []


def test_a_placeholder_a_custom_detector_would_find_is_skipped():
    greedy = custom_pattern("ticket", r"<TICKET_1>|T-[0-9]+")
    mapping = Placeholders("", (greedy,))
    assert mapping("ticket", "T-5") == "<TICKET_2>"
    assert self_findings((greedy,)) == [("<TICKET_1>", "ticket")]


def profile_policy(profile: str) -> str:
    return (
        f"version: 1\ncatalog: [{SHIPPED_CATALOG}]\nredaction_profiles:\n{profile}"
        "rules:\n  - id: r\n    match: {hosts: [example.com]}\n    action: redact\n"
    )


@pytest.mark.parametrize(
    "profile, line, fragment",
    [
        ("  default:\n    detectors: [pii]\n    restore: yes please\n", 6,
         "'restore' must be true or false"),
        ("  default:\n    detectors: [pii]\n    restore: true\n    replacement: '#'\n", 7,
         "'replacement' and 'restore: true' exclude each other"),
        ("  default:\n    custom:\n      - {id: t, pattern: '<[A-Z]+_1>'}\n    restore: true\n",
         7, "the placeholder <T_1> would itself be found by detector 't'"),
    ],
)  # fmt: skip
def test_restore_errors_name_file_and_line(write_policy, profile, line, fragment):
    assert_error(errors_of(write_policy, profile_policy(profile)), line, fragment)


def test_restore_is_read_from_the_policy(write_policy):
    text = profile_policy("  default:\n    detectors: [secrets]\n    restore: true\n")
    policy = load_policy(write_policy(text).parent)
    assert policy.redaction_profiles["default"].restore is True


# -- whole JSON answers -------------------------------------------------------------------------

ORIGINALS = {"<EMAIL_1>": EMAIL, "<GENERIC_SECRET_1>": 'pa"ss\\wörd', "<EMAIL_10>": "x@y.example"}


def test_json_answers_get_the_originals_escaped_and_other_bytes_untouched():
    body = (
        b'{"id":"x", "text" : "to <EMAIL_1>, \\u003cEMAIL_10\\u003e; pw <GENERIC_SECRET_1>",'
        b' "n": 1.50, "not": "\\\\u003cEMAIL_1\\u003e <EMAIL_2> <email_1> <EMAIL_1 >",'
        b' "u": "caf\\u00e9"}'
    )
    out = JsonRestorer(ORIGINALS)(body)
    assert out == (
        b'{"id":"x", "text" : "to bob@corp.example, x@y.example; pw pa\\"ss\\\\w\xc3\xb6rd",'
        b' "n": 1.50, "not": "\\\\u003cEMAIL_1\\u003e <EMAIL_2> <email_1> <EMAIL_1 >",'
        b' "u": "caf\\u00e9"}'
    )
    assert json.loads(out)["text"] == 'to bob@corp.example, x@y.example; pw pa"ss\\wörd'


def test_json_inside_a_json_string_gets_the_originals_escaped_twice():
    arguments = json.dumps({"pw": "<GENERIC_SECRET_1>", "to": "<EMAIL_1>", "n": "line\nnext"})
    message = {"content": "{not json: <GENERIC_SECRET_1>", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": arguments}}]}  # fmt: skip
    out = json.loads(JsonRestorer(ORIGINALS)(json.dumps({"message": message}).encode()))
    assert out["message"]["content"] == '{not json: pa"ss\\wörd'
    assert json.loads(out["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "pw": 'pa"ss\\wörd', "to": EMAIL, "n": "line\nnext"}  # fmt: skip


# -- streamed text --------------------------------------------------------------------------------


def restored_in_pieces(pieces: list[str]) -> tuple[str, list[str]]:
    restorer = TextRestorer(ORIGINALS)
    shown = [restorer.feed(p) for p in pieces]
    shown.append(restorer.flush())
    return "".join(shown), shown


def test_a_placeholder_split_one_character_at_a_time_is_restored():
    text, shown = restored_in_pieces(list("Hi <EMAIL_1>!"))
    assert text == f"Hi {EMAIL}!"
    assert shown[:3] == ["H", "i", " "]  # nothing held that cannot start a placeholder
    assert "".join(shown[:11]) == "Hi " and shown[11] == EMAIL


def test_only_what_could_still_be_a_placeholder_is_held():
    restorer = TextRestorer(ORIGINALS)
    assert restorer.feed("a <b> <EMAIL_") == "a <b> "
    assert restorer.held == "<EMAIL_"
    assert restorer.feed("1") == ""  # <EMAIL_1 could still be <EMAIL_10>
    assert restorer.feed("0> <<EMA") == "x@y.example <"
    assert restorer.feed("IL_2>") == "<EMAIL_2>"  # not ours: shown as written
    assert restorer.feed("<EMAI") == "" and restorer.flush() == "<EMAI"


# -- server-sent events ---------------------------------------------------------------------------


def sse(*events: dict | str, name: str | None = None, eol: bytes = b"\n") -> bytes:
    out = b""
    for e in events:
        data = e if isinstance(e, str) else json.dumps(e)
        out += (b"event: " + name.encode() + eol if name else b"") + b"data: " + data.encode()
        out += eol + eol
    return out


def through(stream: bytes, chunk: int = 1, originals=None) -> bytes:
    restorer = SseRestorer(originals or ORIGINALS)
    out = b"".join(restorer.feed(stream[i : i + chunk]) for i in range(0, len(stream), chunk))
    return out + restorer.finish()


def events(stream: bytes) -> list[dict | str]:
    out = []
    for block in stream.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if data:
            payload = b"\n".join(data).decode()
            out.append(payload if not payload.startswith("{") else json.loads(payload))
    return out


def chat_chunk(text: str | None, finish: str | None = None, index: int = 0) -> dict:
    delta = {} if text is None else {"content": text}
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}  # fmt: skip


def chat_text(stream: bytes) -> str:
    return "".join(
        c["delta"].get("content", "")
        for e in events(stream)
        if isinstance(e, dict)
        for c in e["choices"]
    )


SPLIT = ["Write to ", "<", "EMAIL", "_", "1", ">", " now, é ok ", "<EMAIL_1"]


@pytest.mark.parametrize("chunk", [1, 2, 7, 4096])
def test_openai_chat_stream_split_per_character_and_across_chunks(chunk):
    stream = sse(*[chat_chunk(t) for t in SPLIT], chat_chunk(None, "stop"), "[DONE]")
    out = through(stream, chunk)
    assert chat_text(out) == f"Write to {EMAIL} now, é ok <EMAIL_1"
    got = events(out)
    assert got[-1] == "[DONE]" and got[-2]["choices"][0]["finish_reason"] == "stop"
    # the unfinished placeholder was sent before the finish, in a chunk of the same shape
    assert got[-3]["choices"][0]["delta"] == {"content": "<EMAIL_1"}
    assert got[-3]["id"] == "c1" and got[-3]["object"] == "chat.completion.chunk"


def test_one_character_per_event():
    text = "to <EMAIL_10>, <EMAIL_1>!"
    out = through(sse(*[chat_chunk(c) for c in text], chat_chunk(None, "stop"), "[DONE]"), 64)
    assert chat_text(out) == f"to x@y.example, {EMAIL}!"


def test_utf8_split_across_chunks_and_crlf_lines():
    stream = sse(chat_chunk("né "), chat_chunk("<EMAIL_1>"), chat_chunk("ü", "stop"), eol=b"\r\n")
    stream = stream.replace(b'"n\\u00e9 "', '"né "'.encode())  # raw UTF-8 in the data
    cut = stream.index("é".encode()) + 1  # in the middle of the two bytes of é
    restorer = SseRestorer(ORIGINALS)
    out = restorer.feed(stream[:cut]) + restorer.feed(stream[cut:]) + restorer.finish()
    assert chat_text(out) == f"né {EMAIL}ü"
    assert out.count(b"\r\n\r\n") == 3 and b"\n\n" not in out.replace(b"\r\n\r\n", b"")


def test_a_rewritten_event_keeps_its_other_fields():
    stream = b"id: 7\nevent: chunk\ndata: " + json.dumps(chat_chunk("<EMAIL_1>")).encode()
    out = through(stream + b"\nretry: 10\n\n", 4)
    assert out.startswith(b"id: 7\nevent: chunk\ndata: {") and out.endswith(b"\nretry: 10\n\n")
    assert chat_text(out) == EMAIL


def test_crlf_events_fed_a_byte_at_a_time_keep_their_bytes():
    stream = sse(*[chat_chunk(t) for t in SPLIT], chat_chunk(None, "stop"), "[DONE]", eol=b"\r\n")
    out = through(stream, 1)
    assert chat_text(out) == f"Write to {EMAIL} now, é ok <EMAIL_1"
    assert b"\n\n" not in out.replace(b"\r\n\r\n", b"") and out.endswith(b"[DONE]\r\n\r\n")


def test_cr_only_events_are_not_held_back():
    restorer = SseRestorer(ORIGINALS)
    first = restorer.feed(b'data: {"a": 1}\r\rdata: {"b": "<EMA')
    assert first == b'data: {"a": 1}\r\r'  # sent when it ended, not at the stream's end


def test_a_misread_known_shape_passes_as_it_came():
    odd = {"choices": [{"index": [0], "delta": {"content": "<EMAIL_1>"}}]}
    restorer = SseRestorer(ORIGINALS)
    out = restorer.feed(sse(odd, chat_chunk("<EMAIL_1>"))) + restorer.finish()
    assert events(out) == [odd, chat_chunk(EMAIL)] and restorer.misread == 1


def test_a_finish_in_the_same_chunk_flushes_into_it():
    out = through(sse(chat_chunk("x <EMA"), chat_chunk("IL_1> <EM", "stop"), "[DONE]"), 5)
    assert chat_text(out) == f"x {EMAIL} <EM"
    assert len(events(out)) == 3


def test_unchanged_events_pass_byte_for_byte():
    stream = b': keep-alive\n\nevent: ping\ndata: {"type": "ping"}\n\n' + sse(
        chat_chunk("hello"), "[DONE]"
    )
    assert through(stream, 3) == stream


def test_unknown_events_pass_with_whole_placeholders_restored():
    stream = sse({"weird": "<EMAIL", "x": 1}, {"other": "<EMAIL_1>"}) + b"data: not json <\n\n"
    out = through(stream)
    assert events(out)[:2] == [{"weird": "<EMAIL", "x": 1}, {"other": EMAIL}]
    assert out.endswith(b"data: not json <\n\n")


def test_anthropic_text_deltas():
    def delta(text, index=0):
        return {"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}  # fmt: skip

    stream = (
        sse({"type": "message_start", "message": {"content": []}}, name="message_start")
        + b"".join(sse(delta(t), name="content_block_delta") for t in ["a <EMA", "IL_1> b <EM"])
        + sse({"type": "ping"}, name="ping")
        + sse(delta("AIL_10> <GENERIC"), name="content_block_delta")
        + sse({"type": "content_block_stop", "index": 0}, name="content_block_stop")
        + sse({"type": "message_stop"}, name="message_stop")
    )
    out = through(stream, 3)
    got = [e for e in events(out) if e["type"] == "content_block_delta"]
    assert "".join(e["delta"]["text"] for e in got) == f"a {EMAIL} b x@y.example <GENERIC"
    assert b"event: content_block_delta\ndata: " in out  # the held text, as its own event
    kinds = [e["type"] for e in events(out)]
    assert kinds.index("content_block_stop") > len(kinds) - 3 and kinds[1] == "content_block_delta"


def test_openai_responses_deltas_and_the_final_text():
    def delta(text):
        return {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                "content_index": 0, "delta": text}  # fmt: skip

    stream = b"".join(
        sse(delta(t), name="response.output_text.delta") for t in ["to <", "EMAIL_1", ">."]
    ) + sse(
        {"type": "response.output_text.done", "item_id": "msg_1", "text": "to <EMAIL_1>."},
        {"type": "response.completed", "response": {"output_text": "to <EMAIL_1>."}},
    )
    got = events(through(stream, 4))
    assert "".join(e["delta"] for e in got if e["type"].endswith(".delta")) == f"to {EMAIL}."
    assert got[-2]["text"] == got[-1]["response"]["output_text"] == f"to {EMAIL}."


def test_gemini_candidates_parts():
    def chunk(text, finish=None):
        candidate = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "modelVersion": "g"}

    stream = sse(chunk("see <EMA"), chunk("IL_1"), chunk("> and <EMAIL_1"))
    out = through(stream, 9)  # the stream ends without a finishReason: held text at the end
    texts = [e["candidates"][0]["content"]["parts"][0]["text"] for e in events(out)]
    assert "".join(texts) == f"see {EMAIL} and <EMAIL_1"
    assert events(out)[-1]["modelVersion"] == "g"
    out = through(sse(chunk("x <EMAIL"), chunk("_1>", "STOP")), 2)
    assert len(events(out)) == 2
    assert events(out)[-1]["candidates"][0]["content"]["parts"][0]["text"] == EMAIL


def test_an_endless_event_stops_restoring_and_passes_the_rest():
    restorer = SseRestorer(ORIGINALS)
    head = restorer.feed(sse(chat_chunk("<EMAIL_")))
    assert chat_text(head) == ""
    huge = b"data: " + b"x" * (MAX_EVENT_BYTES + 10)
    out = restorer.feed(huge)
    assert restorer.passing and out.endswith(huge)
    assert chat_text(out.split(b"data: xx")[0]) == "<EMAIL_"  # the held text, sent first
    assert restorer.feed(b"<EMAIL_1>\n\n") == b"<EMAIL_1>\n\n" and restorer.finish() == b""


def test_a_request_quoting_every_free_placeholder_is_never_passed(monkeypatch):
    """No free placeholder: Unredactable, which `on_unparseable: pass` does not pass."""
    from proxy.redact import placeholders
    from proxy.redact.bodies import Unparseable, Unredactable

    monkeypatch.setattr(placeholders, "MAX_TRIES", 3)
    body = chat_body(f"<EMAIL_1> <EMAIL_2> <EMAIL_3> {EMAIL}")
    passing = RedactionProfile("r", BUILTIN, restore=True, on_unparseable="pass")
    with pytest.raises(Unredactable, match="no free placeholder for EMAIL") as e:
        redact_body(body, "application/json", passing)
    assert isinstance(e.value, Unparseable) and EMAIL not in str(e.value)
    assert redact_body(chat_body(f"<EMAIL_1> {EMAIL}"), "application/json", passing).originals


# -- tool-call arguments: JSON text in pieces -----------------------------------------------------


def test_chat_tool_call_arguments_get_originals_escaped_for_json():
    def call(arguments, finish=None):
        tool = {"index": 0, "function": {"arguments": arguments}}
        return {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [tool]},
                                         "finish_reason": finish}]}  # fmt: skip

    pieces = ['{"to": "<EMAIL', '_1>", "pw": "<GENERIC_', 'SECRET_1>", "x": "<EMAIL_1']
    out = through(sse(*[call(p) for p in pieces], call('"}', "stop"), "[DONE]"), 5)
    arguments = "".join(
        e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        for e in events(out)
        if isinstance(e, dict)
    )
    assert json.loads(arguments) == {"to": EMAIL, "pw": 'pa"ss\\wörd', "x": "<EMAIL_1"}


def test_anthropic_tool_input_and_responses_function_arguments():
    def block(kind, field, text):
        return {"type": "content_block_delta", "index": 1, "delta": {"type": kind, field: text}}

    stream = sse(
        block("input_json_delta", "partial_json", '{"pw": "<GENERIC_SECRET'),
        block("input_json_delta", "partial_json", '_1>"}'),
        {"type": "content_block_stop", "index": 1},
    )
    got = events(through(stream, 3))
    assert json.loads(got[0]["delta"]["partial_json"] + got[1]["delta"]["partial_json"]) == {
        "pw": 'pa"ss\\wörd'
    }

    def args(text):
        return {"type": "response.function_call_arguments.delta", "item_id": "fc_1",
                "output_index": 0, "delta": text}  # fmt: skip

    stream = sse(args('{"to": "<EMA'), args('IL_1>"}'),
                 {"type": "response.function_call_arguments.done", "item_id": "fc_1",
                  "output_index": 0, "arguments": '{"to": "<EMAIL_1>"}'})  # fmt: skip
    got = events(through(stream, 3))
    assert json.loads(got[0]["delta"] + got[1]["delta"]) == {"to": EMAIL}
    assert json.loads(got[2]["arguments"]) == {"to": EMAIL}
