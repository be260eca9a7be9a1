"""Property-based tests (hypothesis) over what attackers and typos control: host names and
paths, whole requests to the engine, policy files, and the bodies the redactor parses. The
properties: nothing crashes, nothing but the documented error escapes, and what comes out
is in the form the rest of the proxy relies on."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import string
from urllib.parse import quote

import pytest
import yaml
from conftest import SHIPPED, SHIPPED_CATALOG
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from proxyharness import client_hello

from proxy.decide.engine import Engine
from proxy.decide.verdict import Decision
from proxy.mitm import framing
from proxy.policy.loader import load_policy
from proxy.policy.normalize import BadHost, normalize_host, normalize_path
from proxy.policy.yamlsource import PolicyError
from proxy.redact.bodies import Unparseable, redact_body

# AIWARDEN_FUZZ_EXAMPLES=20000 for a deeper run than the test suite's
EXAMPLES = int(os.environ.get("AIWARDEN_FUZZ_EXAMPLES", "300"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ENGINE = Engine(load_policy(SHIPPED))
PROFILE = ENGINE.policy.redaction_profiles["default"]

# text that looks like what arrives: URL characters, percent escapes, unicode, control bytes
URL_PIECES = [*string.ascii_letters, *string.digits, *"-._~:/?#[]@!$&'()*+,;=%\\ ",
              "%2e", "%2f", "%00", "..", "//", "\u3002", "\uff0e", "\u0131", "\x00",
              "\t"]  # fmt: skip
url_text = st.lists(st.sampled_from(URL_PIECES), max_size=40).map("".join)
hosts = st.one_of(
    url_text,
    st.from_regex(r"[A-Za-z0-9.\-]{1,30}(:[0-9]{0,6})?\.?", fullmatch=True),
    st.sampled_from(["chatgpt.com", "api.openai.com", "claude.ai", "api.github.com"]).map(
        lambda h: h.upper() if len(h) % 2 else h + "."
    ),
    st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
)


@FAST
@given(hosts)
def test_normalize_host_gives_a_canonical_name_or_bad_host(raw):
    try:
        host = normalize_host(raw)
    except BadHost:
        return
    assert host == host.lower() and host.isascii() and not host.endswith(".")
    assert normalize_host(host) == host  # canonical means stable


@FAST
@given(url_text)
def test_normalize_path_gives_a_clean_absolute_path(raw):
    path = normalize_path(raw)
    assert path.startswith("/")
    assert "//" not in path and "\\" not in path
    assert not re.search(r"(^|/)\.\.?(/|$)", path)  # no dot segments left
    assert path == normalize_path(raw.partition("?")[0])  # the query never shapes the path


@FAST
@given(st.sampled_from(["GET", "POST", "get", "PROPFIND", ""]), hosts, url_text,
       st.one_of(st.none(), st.ip_addresses().map(str), url_text))  # fmt: skip
def test_the_engine_decides_every_request(method, host, path, client):
    decision = ENGINE.decide_request(method, host, path, client)
    assert isinstance(decision, Decision)
    assert decision.action in ("allow", "block", "redact", "monitor")
    connect = ENGINE.decide_connect(host, client)
    assert connect.connect in ("tunnel", "intercept", "refuse")


@FAST
@given(st.sampled_from(["chatgpt.com", "api.github.com"]), url_text)
def test_encoding_a_blocked_path_does_not_unblock_it(host, suffix):
    """A path that is blocked stays blocked however its letters are percent-encoded."""
    prefix, rest = "/copilot_internal/", suffix.replace("?", "").replace("#", "")
    plain = ENGINE.decide_request("GET", host, prefix + rest)
    encoded = "".join(f"%{ord(c):02X}" if c.isalpha() else c for c in prefix)
    assert ENGINE.decide_request("GET", host, encoded + rest).action == plain.action


# -- policy files ----------------------------------------------------------------------------

KEYS = ["version", "catalog", "defaults", "network", "groups", "services", "rules", "id",
        "match", "action", "services", "categories", "hosts", "paths", "clients", "cidrs",
        "deny_destinations", "redaction_profiles", "detectors", "redact", "message",
        "users"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["block", "allow", "chat",
    "chatgpt", "10.0.0.0/8", "*.openai.com", "/v1/**", "default", "secrets"]), st.text(max_size=8),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=25,
)


_DOCUMENTS = itertools.count()


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory):
    """Two of the shipped catalog's files: the documents are what is tested, and loading the
    whole catalog 300 times would take most of a minute and a half (five files: 22 s)."""
    directory = tmp_path_factory.mktemp("catalog")
    for name in ("openai.yaml", "anthropic.yaml"):
        shutil.copy(SHIPPED_CATALOG / name, directory / name)
    return directory


@FAST
@given(st.dictionaries(st.sampled_from(KEYS), documents, max_size=6))
def test_any_policy_document_loads_or_fails_with_file_line_errors(small_catalog, document):
    directory = small_catalog.parent / f"fuzz-{next(_DOCUMENTS)}"
    directory.mkdir()
    document.setdefault("catalog", [str(small_catalog)])
    (directory / "policy.yaml").write_text(yaml.safe_dump(document))
    try:
        load_policy(directory)
    except PolicyError as e:
        for line in str(e).splitlines():
            assert re.match(r"^.+:\d+: \S", line), line


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_as_a_policy_file_fail_cleanly(tmp_path_factory, raw):
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / "policy.yaml").write_bytes(raw)
    with pytest.raises(PolicyError) as e:
        load_policy(directory)
    assert all(re.match(r"^.+:\d+: \S", line) for line in str(e.value).splitlines())


# -- bodies ------------------------------------------------------------------------------------

SECRETS = ["bob@corp.example", "AKIAIOSFODNN7EXAMPLE", "4111 1111 1111 1111",
           "ghp_" + "a1B2" * 9, "+1 415 555 0100", "123-45-6789"]  # fmt: skip
# words without digits between the secrets, or none: secrets side by side must all be found
# (a run of random digits can hide a number from a regex that finds one match per start)
words = st.text(alphabet=string.ascii_letters + " ,.:;!?'\"()\n\u00e9\u4e2d", max_size=20)
prompt_text = st.lists(st.one_of(words, st.sampled_from(SECRETS)), max_size=8).map(" ".join)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), prompt_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
content_types = st.sampled_from([
    "application/json", "application/x-www-form-urlencoded", "text/plain",
    "multipart/form-data; boundary=xyz", "multipart/form-data", "application/octet-stream", "",
])  # fmt: skip


@FAST
@given(st.binary(max_size=400), content_types)
def test_any_body_is_redacted_or_refused_as_unparseable(raw, content_type):
    try:
        result = redact_body(raw, content_type, PROFILE)
    except Unparseable as e:
        assert str(e)  # says why
        return
    assert isinstance(result.body, bytes)


@FAST
@given(json_values)
def test_json_stays_json_and_a_second_pass_finds_nothing(value):
    raw = json.dumps({"messages": [{"role": "user", "content": value}]}).encode()
    result = redact_body(raw, "application/json", PROFILE)
    json.loads(result.body)  # still the API's JSON
    again = redact_body(result.body, "application/json", PROFILE)
    assert again.findings == [], "redaction left something a detector still finds"


@FAST
@given(prompt_text)
# found by hypothesis: the window after a number cut the marker "[REDACTED:phone]" in half,
# and "[redacted:phone" labelled the number a phone on the second pass
@example("123-45-6789 ::: :::: :::: bob@corp.example bob@corp.example AKIAIOSFODNN7EXAMPLE "
         "+1 415 555 0100")  # fmt: skip
@example("AKIAIOSFODNN7EXAMPLE ::?ABCDEF")  # "key" in "[REDACTED:aws-access-key]" named a value
def test_form_bodies_stay_forms_and_a_second_pass_finds_nothing(text):
    raw = f"prompt={quote(text)}&model=m".encode()
    result = redact_body(raw, "application/x-www-form-urlencoded", PROFILE)
    again = redact_body(result.body, "application/x-www-form-urlencoded", PROFILE)
    assert again.findings == []
    assert result.body.endswith(b"&model=m")


# -- the first bytes of a connection (proxy/mitm/framing.py) ----------------------------------

REAL_HELLO = client_hello("api.openai.com")


@FAST
@given(st.binary(max_size=600))
def test_read_client_hello_gives_a_hello_none_or_value_error(data):
    try:
        hello = framing.read_client_hello(b"\x16" + data)
    except ValueError:
        return
    if hello is not None:
        try:
            names = framing.server_names(hello)
        except BadHost:
            return
        assert all(normalize_host(n) == n for n in names)


@FAST
@given(st.binary(min_size=2, max_size=2), st.integers(1, len(REAL_HELLO) - 1))
def test_a_real_hello_is_read_whatever_its_record_version_and_none_while_cut(version, cut):
    hello = REAL_HELLO[:1] + version + REAL_HELLO[3:]
    assert framing.read_client_hello(hello[:cut]) is None
    assert framing.server_names(framing.read_client_hello(hello)) == ["api.openai.com"]
