"""What a blocked client receives (proxy/mitm/responses.py), built from mitmproxy's test
requests: the format each kind of client understands (the error bodies the OpenAI, Anthropic
and Gemini SDKs read, Ollama's, plain JSON, an HTML page, text), the refused CONNECT, the 502/504
for an upstream that failed, and headers that say only what aiwarden decided."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from mitmproxy.test import tflow

from proxy.decide.engine import Decision
from proxy.mitm import responses
from proxy.mitm.responses import (
    UPSTREAM_FAILURES,
    Block,
    block_response,
    client_kind,
    refuse_response,
    upstream_error_response,
)
from proxy.observe.audit import new_reference

SECRET = "sk-test-0123456789abcdefSECRET"  # the client's credential: never in an answer
MESSAGE = "External AI services are not approved."
CONTACT = "mailto:security@corp.example"
REFERENCE = "0123456789ab"
ANSWER_HEADERS = {"content-type", "cache-control", "content-length"}
BLOCK_HEADERS = ANSWER_HEADERS | {"x-aiwarden-rule", "x-aiwarden-reference", "x-should-retry"}


@pytest.fixture(scope="module")
def service(shipped_policy):
    """A shipped service, with the API format a test gives it."""
    base = next(s for s in shipped_policy.services if s.id == "anthropic-api")

    def make(api_format: str | None = None, name: str = "Example AI"):
        return dataclasses.replace(base, api_format=api_format, name=name)

    return make


def decision(message: str | None = MESSAGE, contact: str | None = CONTACT) -> Decision:
    return Decision(
        action="block", stage="request", rule="block-ai", reason="category chat",
        service="example-ai", category="chat", message=message, contact=contact,
    )  # fmt: skip


def request(**headers: str):
    """A request as a client sends it, with its credential and cookies."""
    req = tflow.treq(host="api.example-ai.com", port=443, path="/v1/chat/completions")
    req.headers.clear()
    req.headers["host"] = "api.example-ai.com"
    req.headers["cookie"] = f"session={SECRET}"
    for name, value in headers.items():
        req.headers[name.replace("_", "-")] = value
    return req


def block_of(service=None, **kwargs) -> Block:
    fields = {"decision": decision(), "reference": REFERENCE, "service": service,
              "host": "api.example-ai.com"}  # fmt: skip
    return Block(**{**fields, **kwargs})


def assert_says_nothing_else(response, expected_headers: set[str]) -> None:
    """The answer's headers are aiwarden's own, and nothing of the request comes back."""
    assert {k.lower() for k in response.headers} == expected_headers
    assert SECRET not in response.get_text()
    assert not any(SECRET in v for v in response.headers.values())
    assert response.headers["cache-control"] == "no-store"


# -- which format ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, api_format, body_format, kind",
    [
        # the SDKs' own headers, whatever the service
        ({"anthropic_version": "2023-06-01", "x_api_key": SECRET}, None, None, "anthropic"),
        ({"anthropic_version": "2023-06-01"}, "openai", None, "anthropic"),
        ({"x_goog_api_key": SECRET}, None, None, "gemini"),
        ({"x_goog_api_client": "google-genai-sdk/1.0"}, "openai", None, "gemini"),
        # the service's API, for an API call or anything not asking for HTML
        ({"authorization": f"Bearer {SECRET}"}, "openai", None, "openai"),
        ({"authorization": f"Bearer {SECRET}", "accept": "text/html"}, "openai", None, "openai"),
        ({}, "ollama", None, "ollama"),
        ({"accept": "text/html,application/xhtml+xml"}, "openai", None, "html"),  # a browser
        # the API a body was recognised as speaking, where no service says
        ({"authorization": f"Bearer {SECRET}"}, None, "anthropic", "anthropic"),
        ({"authorization": f"Bearer {SECRET}"}, "openai", "gemini", "gemini"),
        # no API format
        ({"accept": "text/html"}, None, None, "html"),
        ({"accept": "application/json"}, None, None, "json"),
        ({"content_type": "application/json"}, None, None, "json"),
        ({"authorization": f"Bearer {SECRET}"}, None, None, "json"),
        ({"x_api_key": SECRET}, None, None, "json"),
        ({}, None, None, "text"),
        ({"accept": "*/*"}, None, None, "text"),
    ],
)
def test_the_client_gets_the_format_it_understands(service, headers, api_format, body_format, kind):
    svc = service(api_format) if api_format else None
    assert client_kind(request(**headers), svc, body_format) == kind


# -- the block response, per format ----------------------------------------------------------

SENTENCE = f"{MESSAGE} [aiwarden: Example AI blocked by rule 'block-ai', reference {REFERENCE}]"


@pytest.mark.parametrize(
    "api_format, headers, body",
    [
        (
            "openai",
            {"authorization": f"Bearer {SECRET}"},
            {"error": {"message": SENTENCE, "type": "permission_denied",
                       "code": "blocked_by_policy", "param": None}},
        ),
        (
            "anthropic",
            {"x_api_key": SECRET, "anthropic_version": "2023-06-01"},
            {"type": "error", "error": {"type": "permission_error", "message": SENTENCE}},
        ),
        (
            "gemini",
            {"x_goog_api_key": SECRET},
            {"error": {"code": 403, "message": SENTENCE, "status": "PERMISSION_DENIED"}},
        ),
        ("ollama", {}, {"error": SENTENCE}),
    ],
)  # fmt: skip
def test_an_sdk_gets_its_own_permission_error(service, api_format, headers, body):
    """The bodies the SDKs turn into their own permission errors, carrying the sentence."""
    r = block_response(request(**headers), block_of(service(api_format)))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json"
    assert json.loads(r.content) == body
    assert r.headers["x-aiwarden-rule"] == "block-ai"
    assert r.headers["x-aiwarden-reference"] == REFERENCE
    assert r.headers["x-should-retry"] == "false"  # the SDKs would retry a 403 otherwise
    assert_says_nothing_else(r, BLOCK_HEADERS)


def test_gemini_gets_invalid_argument_for_a_status_other_than_403(service):
    r = block_response(request(x_goog_api_key=SECRET), block_of(service("gemini")), status=413)
    assert r.status_code == 413
    assert json.loads(r.content)["error"] == {
        "code": 413, "message": SENTENCE, "status": "INVALID_ARGUMENT"
    }  # fmt: skip


def test_a_json_client_gets_the_facts_as_fields():
    r = block_response(request(accept="application/json"), block_of())
    assert r.status_code == 403
    assert json.loads(r.content) == {
        "error": {
            "message": MESSAGE,
            "rule": "block-ai",
            "service": "example-ai",
            "reference": REFERENCE,
            "contact": CONTACT,
        }
    }
    assert_says_nothing_else(r, BLOCK_HEADERS)


def test_a_browser_gets_a_page_with_the_facts(service):
    r = block_response(request(accept="text/html"), block_of(service()))
    assert r.status_code == 403
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.get_text()
    assert "<title>Blocked: Example AI</title>" in page
    assert f'<p class="message">{MESSAGE}</p>' in page
    assert '<dd id="host">api.example-ai.com</dd>' in page
    assert '<dd id="rule">block-ai</dd>' in page
    assert f'<dd id="reference">{REFERENCE}</dd>' in page
    assert f'<a href="{CONTACT}">Ask for access: security@corp.example</a>' in page
    assert "<script" not in page  # self-contained, and nothing to run
    assert_says_nothing_else(r, BLOCK_HEADERS)


def test_the_page_escapes_what_the_policy_and_the_request_say():
    """A message, a rule or a host is text on the page, never markup; a contact that is not a
    web or mail address is not a link."""
    hostile = "<img src=x onerror=alert(1)>"
    block = Block(
        dataclasses.replace(decision(message=hostile, contact="javascript:alert(1)"),
                            rule=f"r{hostile}"),
        REFERENCE, None, f"h{hostile}.example",
    )  # fmt: skip
    page = block_response(request(accept="text/html"), block).get_text()
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="javascript:' not in page
    assert "Contact javascript:alert(1)." in page


def test_anything_else_gets_text_with_the_facts(service):
    r = block_response(request(), block_of(service()))
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.get_text() == (
        "Blocked by company policy\n\n"
        f"{MESSAGE}\n\n"
        "Service:   Example AI\n"
        "Rule:      block-ai\n"
        f"Reference: {REFERENCE}\n"
        f"Contact:   {CONTACT}\n"
    )
    assert_says_nothing_else(r, BLOCK_HEADERS)


def test_without_a_message_contact_or_service_the_defaults_are_said():
    block = block_of(decision=decision(message=None, contact=None))
    text = block_response(request(), block).get_text()
    assert "Blocked by company policy.\n" in text  # the default message
    assert "Service:   api.example-ai.com\n" in text  # no service: the host
    assert "Contact" not in text
    page = block_response(request(accept="text/html"), block).get_text()
    assert 'class="contact"' not in page


def test_a_refused_connect_gets_text_whatever_the_client(service):
    """No TLS after a refused CONNECT: a browser or an SDK can only show plain text."""
    block = block_of(service("openai"))
    r = refuse_response(block)
    assert r.status_code == 403
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.get_text() == responses.render_text(block)
    assert "Rule:      block-ai\n" in r.get_text()
    assert_says_nothing_else(r, BLOCK_HEADERS)


def test_references_are_short_and_new_each_time():
    refs = {new_reference() for _ in range(200)}
    assert len(refs) == 200
    assert all(re.fullmatch(r"[0-9a-f]{12}", r) for r in refs)


# -- an upstream that failed -----------------------------------------------------------------


@pytest.mark.parametrize(
    "api_format, headers, body",
    [
        ("openai", {"authorization": f"Bearer {SECRET}"},
         lambda text: {"error": {"message": text, "type": "upstream_error", "code": "refused",
                                 "param": None}}),
        ("anthropic", {"anthropic_version": "2023-06-01"},
         lambda text: {"type": "error", "error": {"type": "api_error", "message": text}}),
        ("gemini", {"x_goog_api_key": SECRET},
         lambda text: {"error": {"code": 502, "message": text, "status": "UNAVAILABLE"}}),
        (None, {"accept": "application/json"},
         lambda text: {"error": {"message": text, "kind": "refused", "reference": REFERENCE}}),
    ],
)  # fmt: skip
def test_an_upstream_failure_is_a_retryable_error_in_the_clients_format(
    service, api_format, headers, body
):
    """Not a permission error, and no X-Should-Retry: false (the SDKs may retry it), and no
    rule: no policy decided it."""
    svc = service(api_format) if api_format else None
    r = upstream_error_response(request(**headers), svc, 502, "refused", REFERENCE)
    text = (
        "aiwarden could not get an answer from api.example-ai.com: "
        f"the server refused the connection [reference {REFERENCE}]"
    )
    assert r.status_code == 502
    assert r.headers["content-type"] == "application/json"
    assert json.loads(r.content) == body(text)
    assert r.headers["x-aiwarden-reference"] == REFERENCE
    assert_says_nothing_else(r, ANSWER_HEADERS | {"x-aiwarden-reference"})


@pytest.mark.parametrize("kind", sorted(UPSTREAM_FAILURES))
def test_each_failure_kind_says_what_happened(kind):
    r = upstream_error_response(request(), None, 504, kind, REFERENCE)
    assert r.status_code == 504
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.get_text() == (
        f"aiwarden could not get an answer from api.example-ai.com: "
        f"{UPSTREAM_FAILURES[kind]} [reference {REFERENCE}]\n"
    )
    assert_says_nothing_else(r, ANSWER_HEADERS | {"x-aiwarden-reference"})


def test_an_unknown_failure_kind_is_other():
    r = upstream_error_response(request(), None, 502, "cosmic-ray", REFERENCE)
    assert UPSTREAM_FAILURES["other"] in r.get_text()


def test_a_browser_gets_an_error_page_that_escapes_the_host():
    req = request(accept="text/html")
    req.headers["host"] = "x<script>alert(1)</script>.example"
    r = upstream_error_response(req, None, 504, "timeout", REFERENCE)
    assert r.status_code == 504
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.get_text()
    assert "<script>" not in page
    assert "x&lt;script&gt;alert(1)&lt;/script&gt;.example did not answer" in page
    assert "This is not a policy block" in page
    assert_says_nothing_else(r, ANSWER_HEADERS | {"x-aiwarden-reference"})
