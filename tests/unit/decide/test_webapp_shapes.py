"""The ChatGPT, Claude and Gemini web apps' recorded request shapes (tests/data/
webapp_requests.yaml) through the shipped catalog and engine: each is its service and activity,
and a policy that allows chat but refuses uploads, sharing and logged-out use decides each as
it says."""

from __future__ import annotations

import datetime

import pytest
import yaml
from conftest import DATA, SHIPPED_CATALOG

from proxy.decide.engine import Engine
from proxy.policy.catalog import ACTIVITIES
from proxy.policy.loader import load_policy
from proxy.policy.normalize import split_url

FIXTURES = DATA / "webapp_requests.yaml"
REQUESTS = yaml.safe_load(FIXTURES.read_text())["requests"]
# what each app's entry in the catalog must be able to tell apart
REQUIRED = {
    "chatgpt": {"prompt", "upload", "share", "anonymous"},
    "claude": {"prompt", "upload", "share"},
    "gemini": {"prompt", "upload"},
}
POLICY = """
version: 1
rules:
  - id: no-uploads-sharing-or-logged-out
    match: {categories: [chat], activities: [upload, share, anonymous]}
    action: block
  - id: chat-ok
    match: {services: [chatgpt, claude, gemini], activities: [prompt]}
    action: allow
  - id: no-other-chat
    match: {categories: [chat]}
    action: block
"""


@pytest.fixture(scope="module")
def policy_engine(tmp_path_factory) -> Engine:
    """The engine of POLICY over the shipped catalog, built once for every fixture."""
    folder = tmp_path_factory.mktemp("webapp")
    (folder / "policy.yaml").write_text(f"catalog: [{SHIPPED_CATALOG}]\n" + POLICY)
    return Engine(load_policy(folder))


def _id(request: dict) -> str:
    return f"{request['app']}:{request['activity']}:{request['method']}:{request['url'][:70]}"


def test_the_fixtures_cover_each_app_and_activity():
    seen: dict[str, set[str]] = {}
    for request in REQUESTS:
        seen.setdefault(request["app"], set()).add(request["activity"])
    for app, activities in REQUIRED.items():
        assert activities | {None} <= seen[app], app  # each activity, and some negatives


@pytest.mark.parametrize("request_", REQUESTS, ids=_id)
def test_a_fixture_says_where_it_comes_from(request_):
    assert set(request_) <= {
        "app", "activity", "step", "method", "url", "headers", "body", "source", "captured",
        "checked", "expect",
    }  # fmt: skip
    assert request_["source"].strip() and request_["method"].isupper()
    for key in ("checked", "captured"):
        if key in request_:
            assert isinstance(request_[key], datetime.date), (key, request_[key])
    assert request_["activity"] in (*ACTIVITIES, None)
    assert request_["expect"]["activity"] == request_["activity"]


@pytest.mark.parametrize("request_", REQUESTS, ids=_id)
def test_the_shipped_catalog_names_its_service_and_activity(shipped_engine, request_):
    _scheme, host, path, _port = split_url(request_["url"])
    service, activity = shipped_engine.classify(request_["method"], host, path)
    expect = request_["expect"]
    assert (service.id if service else None, activity) == (expect["service"], expect["activity"])
    if service is not None:
        connect = shipped_engine.decide_connect(host)
        assert connect.connect == "intercept"  # the activity is in the request: it is opened


@pytest.mark.parametrize("request_", REQUESTS, ids=_id)
def test_chat_is_allowed_and_uploads_sharing_and_logged_out_use_are_not(policy_engine, request_):
    engine = policy_engine
    _scheme, host, path, _port = split_url(request_["url"])
    decision = engine.decide_request(request_["method"], host, path, client="10.1.2.3")
    expect = request_["expect"]
    if expect["service"] is None:
        assert (decision.action, decision.rule) == ("allow", "default")
    elif expect["activity"] == "prompt":
        assert (decision.action, decision.rule) == ("allow", "chat-ok")
    elif expect["activity"] is None:
        assert (decision.action, decision.rule) == ("block", "no-other-chat")
    else:
        assert (decision.action, decision.rule, decision.activity) == (
            "block",
            "no-uploads-sharing-or-logged-out",
            expect["activity"],
        )


def test_the_query_never_decides(shipped_engine):
    """Paths are matched without the query: a signed upload URL's `sig=` or batchexecute's
    `rpcids=` changes nothing (and so never needs to be kept)."""
    base = "/files/00000000-2554-7230-b9ed-e110f49fccb5/raw"
    for query in ("", "?sp=w&sig=x", "?rpcids=anything"):
        found = shipped_engine.classify("PUT", "sdmntprwestus.oaiusercontent.com", base + query)
        assert found[1] == "upload"


def test_the_tenant_rule_still_blocks_logged_out_chatgpt(engine_for):
    """With ChatGPT allowed whole, logged-out use is still blocked while a workspace tenant
    is set (proxy/policy/tenants.py), and the decision names the activity."""
    engine = engine_for(
        """
version: 1
rules:
  - id: chatgpt-ok
    match: {services: [chatgpt]}
    action: allow
tenants:
  chatgpt: [6e4f5c3a-1b2d-4e8f-9a0b-1c2d3e4f5a6b]
"""
    )
    for path in ("/backend-anon/conversation", "/backend-anon/", "/Backend-Anon"):
        d = engine.decide_request("POST", "chatgpt.com", path)
        assert (d.action, d.rule, d.activity) == ("block", "tenants.chatgpt", "anonymous"), path
    signed_in = engine.decide_request("POST", "chatgpt.com", "/backend-api/conversation")
    assert (signed_in.action, signed_in.activity) == ("allow", "prompt")  # control
