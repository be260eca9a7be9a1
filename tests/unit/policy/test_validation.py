"""Every policy mistake is reported as `file:line: message`, all of them at once."""

import pytest
from conftest import assert_error, errors_of

from proxy.policy.loader import load_policy
from proxy.policy.yamlsource import PolicyError

BLOCK_RULE = """
rules:
  - id: block-ai
    match: {categories: [chat]}
    action: block
"""


def rule_matching(field: str) -> str:
    """A policy with one rule whose match holds `field`; the field is on line 6."""
    return f"version: 1\nrules:\n  - id: x\n    match:\n      {field}\n    action: block\n"


# (policy text without the catalog line, line of the error, fragment of the message)
CASES = [
    (
        rule_matching("categories: [chat]") + "    audit: true\n",
        8,
        "'audit' is for action: allow (every other action is audited)",
    ),
    (
        rule_matching("categories: [chat]").replace("block", "allow") + "    audit: sometimes\n",
        8,
        "'audit' must be true or false, not a string",
    ),
    ("version: 1\nrules: [\n", 4, "YAML syntax error"),  # found at the end of the file
    ("version: 1\nversion: 1\nrules: []\n", 3, "duplicate key 'version' (first at line 2)"),
    ("version: 1\nrule: []\n", 3, "unknown key 'rule' (did you mean 'rules'?)"),
    ("rules: []\n", 1, "policy: missing required key 'version'"),
    ("version: 1\n", 1, "policy: missing required key 'rules'"),
    ("version: 2\nrules: []\n", 2, "unsupported policy version 2"),
    ("version: one\nrules: []\n", 2, "'version' must be a whole number, not a string"),
    ("version: 1\nrules: []\n  - id: x\n", 4, "YAML syntax error"),
    (
        "version: 1\ndefaults: {action: blok}\nrules: []\n",
        3,
        "'action' must be one of allow, block, monitor, not 'blok' (did you mean 'block'?)",
    ),
    (
        "version: 1\ndefaults: {on_eror: block}\nrules: []\n",
        3,
        "defaults: unknown key 'on_eror' (did you mean 'on_error'?)",
    ),
    ("version: 1\ndefaults: {block_with: reject}\nrules: []\n", 3, "'block_with' must be one of"),
    ("version: 1\ndefaults: []\nrules: []\n", 3, "'defaults' must be a mapping, not a list"),
    (
        "version: 1\nnetwork:\n  clients: [10.0.0.1/8]\nrules: []\n",
        4,
        "has host bits set; did you mean 10.0.0.0/8?",
    ),
    (
        "version: 1\nnetwork:\n  clients:\n    - 127.0.0.0/8\n    - 10.0.0.0/33\nrules: []\n",
        6,
        "clients: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
    ),
    ("version: 1\nnetwork:\n  deny_destinations: [nowhere]\nrules: []\n", 4, "deny_destinations"),
    ("version: 1\nnetwork:\n  clients: 5\nrules: []\n", 4, "'clients' must be a list of strings"),
    ("version: 1\nnetwork:\n  clients: []\nrules: []\n", 4, "'clients' is an empty list"),
    ("version: 1\ngroups:\n  research: {}\nrules: []\n", 4, "give 'cidrs', 'users' or 'directory'"),
    ("version: 1\ngroups:\n  research: [alice]\nrules: []\n", 4, "group 'research': must be a"),
    (
        "version: 1\ngroups:\n  research: {cidr: [10.0.0.0/8]}\nrules: []\n",
        4,
        "unknown key 'cidr' (did you mean 'cidrs'?)",
    ),
    ("version: 1\nrules: {id: x}\n", 3, "'rules' must be a list, not a mapping"),
    ("version: 1\nrules:\n  - block everything\n", 4, "a rule is a mapping, not a string"),
    (
        "version: 1\nrules:\n  - id: x\n    action: block\n",
        4,
        "rule 'x': missing required key 'match'",
    ),
    ("version: 1\nrules:\n  - match: {}\n    action: block\n", 4, "missing required key 'id'"),
    ("version: 1\nrules:\n  - id: x\n    match: {}\n", 4, "missing required key 'action'"),
    (
        "version: 1\nrules:\n  - id: x\n    match: {}\n    action: deny\n",
        6,
        "'action' must be one of block, allow, redact, monitor, warn, not 'deny'",
    ),
    (
        "version: 1\nrules:\n  - id: x\n    match: {categories: [chat]}\n    action: block\n"
        "  - id: x\n    match: {categories: [api]}\n    action: block\n",
        7,
        "duplicate rule id 'x' (first at line 4)",
    ),
    (
        "version: 1\nrules:\n  - id: default\n    match: {}\n    action: block\n",
        4,
        "the id 'default' is reserved",
    ),
    (
        "version: 1\nrules:\n  - id: x\n    match: {service: [chatgpt]}\n    action: block\n",
        5,
        "rule 'x', match: unknown key 'service' (did you mean 'services'?)",
    ),
    (
        rule_matching("services: [chat-gpt]"),
        6,
        "unknown service 'chat-gpt' (did you mean 'chatgpt'?)",
    ),
    (
        rule_matching("categories: [chatbot]"),
        6,
        "unknown category 'chatbot' (did you mean 'chat'?)",
    ),
    (
        rule_matching("vendors: [OpenAl]"),
        6,
        "unknown vendor 'OpenAl' (did you mean 'OpenAI'?)",
    ),
    (
        rule_matching("activities: [uploads]"),
        6,
        "unknown activity 'uploads' (did you mean 'upload'?)",
    ),
    (
        rule_matching("groups: [reserch]"),
        6,
        "unknown group 'reserch'",
    ),
    (
        rule_matching("hosts: ['*.com']"),
        6,
        "bad host pattern: '*.com' would match a whole top-level domain",
    ),
    (
        "version: 1\nrules:\n  - id: x\n    match:\n      hosts: [https://chatgpt.com]\n"
        "    action: block\n",
        6,
        "a host pattern holds no scheme, port or path",
    ),
    (
        rule_matching("paths: [v1/files]"),
        6,
        "bad path pattern: 'v1/files': a path pattern starts with '/'",
    ),
    (
        rule_matching("methods: [POTS]"),
        6,
        "unknown HTTP method 'POTS'",
    ),
    (
        rule_matching("services: 5"),
        6,
        "'services' must be a list of strings, not a number",
    ),
    (
        "version: 1\nrules:\n  - id: x\n    match:\n      services: [chatgpt, 7]\n"
        "    action: block\n",
        6,
        "'services' items must be non-empty strings, not a number",
    ),
    (
        "version: 1\nrules:\n  - id: x\n    match:\n      services: [chatgpt]\n"
        "      categories: [api]\n    action: block\n",
        6,
        "no catalogued service is in all of",
    ),
    (
        "version: 1\nrules:\n  - id: all\n    match: {}\n    action: block\n"
        "  - id: later\n    match: {categories: [chat]}\n    action: allow\n",
        7,
        "rule 'later' can never match: rule 'all' (line 4) matches everything before it",
    ),
    (
        "version: 1\ncatalog: [nowhere]\nrules: []\n",
        2,
        "catalog directory 'nowhere' does not exist",
    ),
]


@pytest.mark.parametrize("text, line, fragment", CASES, ids=[c[2][:40] for c in CASES])
def test_error_is_reported_at_its_line(write_policy, text, line, fragment):
    # the helper prepends a `catalog:` line unless the text has its own, shifting lines by one
    assert_error(errors_of(write_policy, text), line, fragment)


SERVICE = """
version: 1
services:
  - id: corp-gateway
    name: Corporate gateway
    vendor: Corp
    category: api
    hosts: [ai.corp.example]
    source: internal
{extra}
rules: []
"""


@pytest.mark.parametrize(
    "extra, line, fragment",
    [
        ("    colour: blue", 10, "service 'corp-gateway': unknown key 'colour'"),
        ("    paths: [v1]", 10, "bad path pattern: 'v1': a path pattern starts with '/'"),
        ("    activities:\n      uploads: {paths: [/x]}", 11, "unknown activity 'uploads'"),
        ("    activities:\n      upload: [/x]", 11, "activity 'upload': must be a mapping"),
        (
            "    activities:\n      upload: {paths: [/x], method: [POST]}",
            11,
            "unknown key 'method' (did you mean 'methods'?)",
        ),
        ("    activities:\n      upload: {methods: [POST]}", 11, "missing required key 'paths'"),
        (
            "    activities:\n      upload:\n        paths: [/x]\n"
            "        hosts: [ai.corp.example, files.other.example]",
            13,
            "activity 'upload': host 'files.other.example' is not one of the service's hosts",
        ),
        (
            "    activities:\n      upload: {paths: [/x], hosts: ['*.corp.example']}",
            11,
            "activity 'upload': host '*.corp.example' is not one of the service's hosts",
        ),
        (
            "    activities:\n      upload: {paths: [/x], hosts: ['a/b']}",
            11,
            "activity 'upload': bad host pattern",
        ),
        (
            "    activities:\n      upload:\n        - {paths: [/x]}\n        - [/y]",
            13,
            "activity 'upload': must be a mapping",
        ),
        (
            "    activities:\n      upload:\n        paths: [/x]\n        checked: 2026-13-01",
            13,
            "activity 'upload': 'checked' must be a date, YYYY-MM-DD",
        ),
        (
            "    activities:\n      anonymous: {paths: [/x], source: [a]}",
            11,
            "activity 'anonymous'",
        ),
        (
            "  - id: chatgpt\n    name: x\n    vendor: x\n    category: chat\n"
            "    hosts: [x.example]\n    source: x",
            10,
            "service id 'chatgpt' is already used at",
        ),
        (
            "  - id: mine\n    name: x\n    vendor: x\n    category: chat\n"
            "    hosts: [chatgpt.com]\n    source: x",
            14,
            "host 'chatgpt.com' is already claimed by service 'chatgpt'",
        ),
        (
            "  - id: Bad_Id\n    name: x\n    vendor: x\n    category: chat\n"
            "    hosts: [x.example]\n    source: x",
            10,
            "must be a lower-case slug",
        ),
        (
            "  - id: nameless\n    vendor: x\n    category: chat\n    hosts: [x.example]\n"
            "    source: x",
            10,
            "service 'nameless': missing required key 'name'",
        ),
        (
            "  - id: odd\n    name: x\n    vendor: x\n    category: chatbot\n"
            "    hosts: [x.example]\n    source: x",
            13,
            "unknown category" if False else "'category' must be one of chat, api",
        ),
        (
            "  - id: odd\n    name: x\n    vendor: x\n    category: chat\n"
            "    hosts: ['*.example']\n    source: x",
            14,
            "would match a whole top-level domain",
        ),
        ("    country: NO", 10, 'country NO must be quoted: "NO"'),
        ("    country: us", 10, "country 'us' must be an ISO 3166 code"),
        ("    country: USA", 10, "country 'USA' must be an ISO 3166 code"),
        ("    checked: 2026-13-01", 10, "cannot read '2026-13-01': month must be in 1..12"),
        ("    checked: yesterday", 10, "'checked' must be a date, YYYY-MM-DD"),
    ],
)
def test_service_errors(write_policy, extra, line, fragment):
    assert_error(errors_of(write_policy, SERVICE.format(extra=extra)), line, fragment)


def test_shared_host_is_allowed_when_both_services_list_paths(write_policy):
    text = SERVICE.format(
        extra="""\
  - id: github-other-ai
    name: x
    vendor: GitHub
    category: api
    hosts: [api.github.com]
    paths: [/other_ai/**]
    source: x"""
    )
    load_policy(write_policy(text).parent)


@pytest.mark.parametrize(
    "text, why", [("- a\n- b\n", "a list"), ("~\n", "nothing"), ("just words\n", "a string")]
)
def test_policy_must_be_a_mapping(tmp_path, text, why):
    (tmp_path / "policy.yaml").write_text(text)
    with pytest.raises(PolicyError) as e:
        load_policy(tmp_path)
    assert str(e.value) == f"{tmp_path / 'policy.yaml'}:1: the policy must be a mapping, not {why}"


def test_every_error_is_reported_at_once(write_policy):
    text = """
        version: 1
        defaults: {action: blok}
        network:
          clients: [10.0.0.1/8]
        rules:
          - id: a
            match: {services: [chat-gpt]}
            action: block
          - id: a
            match: {categories: [chat]}
            action: deny
    """
    errors = errors_of(write_policy, text)
    assert len(errors) == 5, errors
    assert [int(e.split(":")[0]) for e in errors] == [3, 5, 8, 10, 12]


def test_catalog_file_errors_name_the_catalog_file(write_policy):
    path = write_policy(
        "catalog: [cat]\nversion: 1\nrules: []\n",
        files={"cat/one.yaml": "service:\n  - id: x\n", "cat/two.yaml": "- a list\n"},
    )
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    got = [(p.file.rsplit("/", 1)[-1], p.line, p.message) for p in e.value.problems]
    assert ("one.yaml", 1, "catalog: unknown key 'service' (did you mean 'services'?)") in got
    assert ("one.yaml", 1, "catalog: missing required key 'services'") in got
    assert ("two.yaml", 1, "a catalog file is a mapping with 'services:', not a list") in got


def test_error_text_has_file_line_message_form(write_policy):
    path = write_policy("version: 1\nrules:\n  - id: x\n    match: {}\n    action: deny\n")
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    assert str(e.value).startswith(f"{path}:6: rule 'x': 'action' must be one of")


def test_policy_file_can_be_given_directly(write_policy):
    path = write_policy(BLOCK_RULE.replace("rules:", "version: 1\nrules:"))
    assert load_policy(path).rules[0].id == "block-ai"
    assert load_policy(path.parent).rules[0].id == "block-ai"


def test_country_and_checked_are_read(write_policy):
    text = SERVICE.format(extra='    country: "NO"\n    checked: 2026-12-03')
    policy = load_policy(write_policy(text).parent)
    gateway = next(s for s in policy.services if s.id == "corp-gateway")
    assert (gateway.country, gateway.checked) == ("NO", "2026-12-03")


def test_countries_in_a_rule_must_be_some_vendors_country(write_policy):
    errors = errors_of(write_policy, rule_matching("countries: [CN, XX]"))
    assert_error(errors, 6, "unknown vendor country 'XX'")
