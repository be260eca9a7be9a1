"""Decisions: first match wins, shared hosts by path, activities, who, and the connect stage."""

import pytest

HEAD = """
version: 1
groups:
  research: {cidrs: [10.20.0.0/16], users: [alice]}
"""


def test_first_matching_rule_decides(engine_for):
    engine = engine_for(
        HEAD
        + """
rules:
  - id: research-openai
    match: {groups: [research], services: [openai-api]}
    action: allow
  - id: block-ai
    match: {categories: [chat, api]}
    action: block
    message: "Use the internal assistant."
  - id: never-reached-for-openai
    match: {services: [openai-api]}
    action: monitor
"""
    )
    path = "/v1/chat/completions"
    research = engine.decide_request("POST", "api.openai.com", path, client="10.20.1.1")
    assert (research.action, research.rule) == ("allow", "research-openai")
    other = engine.decide_request("POST", "api.openai.com", path, client="10.30.1.1")
    assert (other.action, other.rule, other.message) == (
        "block",
        "block-ai",
        "Use the internal assistant.",
    )
    alice = engine.decide_request("POST", "api.openai.com", path, client="10.30.1.1", user="alice")
    assert alice.rule == "research-openai"
    plain = engine.decide_request("GET", "example.com", "/", client="10.30.1.1")
    assert (plain.action, plain.rule, plain.service) == ("allow", "default", None)


def test_decision_explains_itself(shipped_engine):
    d = shipped_engine.decide_request(
        "POST", "chatgpt.com", "/backend-api/conversation", client="10.1.1.1"
    )
    assert d.to_dict() | {"reason": None} == {
        "action": "block",
        "stage": "request",
        "rule": "block-ai",
        "reason": None,
        "service": "chatgpt",
        "category": "chat",
        "vendor": "OpenAI",
        "country": "US",
        "activity": "prompt",
        "connect": None,
        "message": "External AI services are not approved for company data. "
        "Use https://ai.corp.example instead.",
        "contact": "mailto:security@corp.example",
        "profile": None,
        "style": None,
        "coaching": None,
        "audit": False,
    }
    assert "block-ai" in d.reason and "chatgpt" in d.reason and "prompt" in d.reason


def test_activities_let_a_rule_block_uploads_but_not_prompts(engine_for):
    engine = engine_for(
        HEAD
        + """
rules:
  - id: no-uploads
    match: {services: [chatgpt], activities: [upload]}
    action: block
  - id: chatgpt-ok
    match: {services: [chatgpt]}
    action: monitor
"""
    )
    upload = engine.decide_request("POST", "chatgpt.com", "/backend-api/files")
    prompt = engine.decide_request("POST", "chatgpt.com", "/backend-api/conversation")
    page = engine.decide_request("GET", "chatgpt.com", "/")
    assert (upload.action, upload.activity) == ("block", "upload")
    assert (prompt.action, prompt.activity) == ("monitor", "prompt")
    assert (page.action, page.activity) == ("monitor", None)


def test_an_activity_limited_to_some_hosts_applies_only_there(engine_for):
    engine = engine_for(
        """
version: 1
services:
  - id: notes-ai
    name: Notes AI
    vendor: Corp
    category: chat
    hosts: [notes.example, "*.notes-files.example"]
    source: test
    activities:
      upload:
        - {methods: [POST], paths: [/api/files]}
        - {methods: [PUT], hosts: ["blob*.notes-files.example"], paths: ["/**"]}
      prompt: {methods: [POST, PUT], paths: [/api/chat, "/**"], hosts: [notes.example]}
rules:
  - id: no-uploads
    match: {activities: [upload]}
    action: block
"""
    )

    def activity(method: str, host: str, path: str) -> str | None:
        return engine.decide_request(method, host, path).activity

    assert activity("PUT", "blob7.notes-files.example", "/c/f-1/raw") == "upload"
    assert activity("PUT", "BLOB7.Notes-Files.Example.", "/c/f-1/raw") == "upload"  # canonical
    assert activity("PUT", "cdn.notes-files.example", "/c/f-1/raw") is None  # not the upload host
    assert activity("GET", "blob7.notes-files.example", "/c/f-1/raw") is None
    assert activity("POST", "notes.example", "/api/files") == "upload"
    assert activity("PUT", "notes.example", "/c/f-1/raw") == "prompt"  # the same path elsewhere
    assert engine.decide_request("PUT", "blob7.notes-files.example", "/x").action == "block"
    assert engine.classify("PUT", "blob7.notes-files.example", "/x")[1] == "upload"
    for _ in range(2):  # the per-host choice, remembered, answers the same
        assert activity("PUT", "blob8.notes-files.example", "/x") == "upload"
    for i in range(100):  # any method name a client sends: none is an activity, none sticks
        assert activity(f"X{i}", "blob8.notes-files.example", "/x") is None
    assert activity("PUT", "blob8.notes-files.example", "/x") == "upload"
    assert activity("POST", "notes.example", "/API/Files") == "upload"  # case of the path


def test_methods_and_paths_in_rules(engine_for):
    engine = engine_for(
        HEAD
        + """
rules:
  - id: read-models-ok
    match: {services: [openai-api], methods: [GET], paths: [/v1/models, /v1/models/*]}
    action: allow
  - id: block-openai
    match: {vendors: [openai]}
    action: block
"""
    )
    assert engine.decide_request("GET", "api.openai.com", "/v1/models/gpt-4o").action == "allow"
    assert engine.decide_request("get", "api.openai.com", "/v1//models").action == "allow"
    assert engine.decide_request("POST", "api.openai.com", "/v1/models").action == "block"
    assert engine.decide_request("GET", "api.openai.com", "/v1/models/a/b").action == "block"
    assert engine.decide_request("GET", "chatgpt.com", "/").rule == "block-openai"


def test_rule_hosts_match_hosts_outside_the_catalog(engine_for):
    engine = engine_for(
        HEAD
        + """
rules:
  - id: block-new-tool
    match: {hosts: ["*.new-ai-tool.example", new-ai-tool.example]}
    action: block
  - id: uploads-to-internal
    match: {hosts: [files.corp.example], methods: [PUT]}
    action: monitor
"""
    )
    assert engine.decide_request("GET", "NEW-AI-TOOL.example.", "/").rule == "block-new-tool"
    assert engine.decide_request("GET", "a.b.new-ai-tool.example", "/").action == "block"
    assert engine.decide_request("GET", "new-ai-tool.example.org", "/").action == "allow"
    assert engine.decide_request("PUT", "files.corp.example", "/x").action == "monitor"
    assert engine.decide_request("GET", "files.corp.example", "/x").action == "allow"


def test_shared_host_is_an_ai_service_only_on_its_paths(shipped_engine):
    token = shipped_engine.decide_request("GET", "api.github.com", "/copilot_internal/v2/token")
    repos = shipped_engine.decide_request("GET", "api.github.com", "/repos/a/b")
    assert (token.action, token.service) == ("block", "github-copilot-token")
    assert (repos.action, repos.service) == ("allow", None)


# -- the connect stage ---------------------------------------------------------------------


def test_connect_tunnels_hosts_no_rule_can_touch(shipped_engine):
    for host in ["example.com", "www.gemini.com", "storage.googleapis.com", "10.9.9.9"]:
        d = shipped_engine.decide_connect(host, client="10.1.1.1")
        assert (d.connect, d.action, d.rule) == ("tunnel", "allow", "default"), host
        assert d.reason == "no AI service: no rule applies; the default action is allow"


def test_connect_intercepts_blocked_services_to_show_the_block_page(shipped_engine):
    d = shipped_engine.decide_connect("chatgpt.com:443", client="10.1.1.1")
    assert (d.connect, d.action, d.rule, d.service) == ("intercept", "block", "block-ai", "chatgpt")


def test_connect_intercepts_shared_hosts_whose_outcome_depends_on_the_path(shipped_engine):
    d = shipped_engine.decide_connect("api.github.com", client="10.1.1.1")
    assert (d.connect, d.action, d.service) == ("intercept", "inspect", None)
    assert "depends on each request" in d.reason
    assert "shared host (github-copilot-token on some paths only)" in d.reason


def test_connect_refuses_when_the_rule_asks_for_it(engine_for):
    engine = engine_for(
        HEAD
        + """
rules:
  - id: pinned-apps
    match: {services: [chatgpt]}
    action: block
    block_with: refuse
  - id: rest
    match: {categories: [api]}
    action: block
"""
    )
    assert engine.decide_connect("chatgpt.com").connect == "refuse"
    assert engine.decide_connect("api.openai.com").connect == "intercept"


def test_connect_never_refuses_a_host_that_some_request_may_pass(engine_for):
    engine = engine_for(
        HEAD
        + """
defaults: {block_with: refuse}
rules:
  - id: models-ok
    match: {services: [openai-api], paths: [/v1/models]}
    action: allow
  - id: block-openai
    match: {services: [openai-api]}
    action: block
"""
    )
    assert engine.decide_connect("api.openai.com").connect == "intercept"
    assert engine.decide_request("GET", "api.openai.com", "/v1/models").action == "allow"


def test_connect_tunnels_when_every_possible_outcome_is_allow(engine_for):
    engine = engine_for(
        HEAD
        + """
rules:
  - id: models-ok
    match: {services: [openai-api], paths: [/v1/models]}
    action: allow
  - id: chat-blocked
    match: {categories: [chat]}
    action: block
"""
    )
    assert engine.decide_connect("api.openai.com").connect == "tunnel"
    assert engine.decide_connect("chatgpt.com").connect == "intercept"


@pytest.mark.parametrize(
    "action, mode",
    [
        ("monitor", "intercept"),
        ("redact", "intercept"),
        ("allow", "tunnel"),
        ("block", "intercept"),
    ],
)
def test_connect_mode_follows_the_action(engine_for, action, mode):
    engine = engine_for(
        HEAD
        + f"""
redaction_profiles: {{default: {{detectors: [secrets]}}}}
rules:
  - id: r
    match: {{services: [anthropic-api]}}
    action: {action}
"""
    )
    d = engine.decide_connect("api.anthropic.com")
    assert (d.connect, d.action) == (mode, action)


def test_connect_honours_who(engine_for):
    engine = engine_for(
        HEAD
        + """
rules:
  - id: research-ok
    match: {groups: [research], categories: [chat]}
    action: allow
  - id: block-chat
    match: {categories: [chat]}
    action: block
"""
    )
    assert engine.decide_connect("claude.ai", client="10.20.0.5").connect == "tunnel"
    assert engine.decide_connect("claude.ai", client="10.21.0.5").connect == "intercept"
    assert engine.decide_connect("claude.ai", client="10.21.0.5", user="alice").connect == "tunnel"


def test_default_block_is_a_whitelist(engine_for):
    engine = engine_for("""
version: 1
defaults: {action: block, block_with: refuse}
rules:
  - id: corp-only
    match: {hosts: ["*.corp.example"]}
    action: allow
""")
    assert engine.decide_connect("intranet.corp.example").connect == "tunnel"
    d = engine.decide_connect("example.com")
    assert (d.connect, d.action, d.rule) == ("refuse", "block", "default")
    assert engine.decide_request("GET", "example.com", "/").action == "block"


def test_unreadable_host_falls_to_on_error(shipped_engine, engine_for):
    d = shipped_engine.decide_request("GET", "exa mple.com", "/")
    assert (d.action, d.rule) == ("block", "default")
    assert "unreadable host" in d.reason and "on_error is block" in d.reason
    c = shipped_engine.decide_connect("[::1")
    assert (c.action, c.connect) == ("block", "refuse")
    lenient = engine_for("version: 1\ndefaults: {on_error: allow}\nrules: []\n")
    assert lenient.decide_request("GET", "exa mple.com", "/").action == "allow"


@pytest.mark.parametrize(
    "host",
    ["CHATGPT.COM", "chatgpt.com.", "chatgpt.com:443", "ｃｈａｔｇｐｔ.com", "[::ffff:127.0.0.1]"],
)
def test_host_spellings_reach_the_same_decision(shipped_engine, host):
    d = shipped_engine.decide_request("POST", host, "/backend-api/conversation")
    expected = "allow" if "127.0.0.1" in host else "block"
    assert d.action == expected


def test_client_addresses_in_any_form(engine_for):
    engine = engine_for(
        HEAD
        + """
rules:
  - id: research-only
    match: {groups: [research]}
    action: monitor
"""
    )
    assert engine.decide_request("GET", "x.example", "/", client="::ffff:10.20.3.4").rule == (
        "research-only"
    )
    assert engine.decide_request("GET", "x.example", "/", client="not-an-ip").rule == "default"
    assert engine.decide_request("GET", "x.example", "/", client=None).rule == "default"


def test_rules_decide_by_the_vendors_country(engine_for):
    engine = engine_for(
        """
version: 1
services:
  - {id: far-chat, name: Far, vendor: Far, country: CN, category: chat,
     hosts: [chat.far.example], source: test}
  - {id: near-chat, name: Near, vendor: Near, country: DE, category: chat,
     hosts: [chat.near.example], source: test}
rules:
  - id: no-cn
    match: {countries: [cn]}
    action: block
"""
    )
    far = engine.decide_request("POST", "chat.far.example", "/", client="10.0.0.1")
    assert (far.action, far.rule, far.country) == ("block", "no-cn", "CN")
    near = engine.decide_request("POST", "chat.near.example", "/", client="10.0.0.1")
    assert (near.action, near.rule, near.country) == ("allow", "default", "DE")
    assert engine.decide_connect("chat.far.example").connect == "intercept"
    assert engine.decide_connect("chat.near.example").connect == "tunnel"
