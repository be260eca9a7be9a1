"""The policy's `tenants:` section (proxy/policy/tenants.py) and what the engine does with it:
the hosts that get a vendor's tenant header are intercepted, and logged-out use is blocked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from proxy.decide.engine import Engine
from proxy.decide.verdict import Action, Mode
from proxy.policy.loader import load_policy
from proxy.policy.yamlsource import PolicyError

WS = "437adf77-4085-4b22-b7b1-de7b6f5ec6c0"
WS2 = "0f0e0d0c-0b0a-4909-8807-060504030201"
ORG = "org-Tkxfm8owx4zIPaJGNDVrPs6m"
ALLOW_ALL = "version: 1\ndefaults: {action: allow}\nrules: []\n"


def policy_with(write_policy, tenants: str):
    return load_policy(write_policy(ALLOW_ALL + tenants))


def errors(write_policy, tenants: str) -> str:
    with pytest.raises(PolicyError) as e:
        policy_with(write_policy, tenants)
    return str(e.value)


def test_values_are_read_and_joined_as_each_vendor_documents(write_policy):
    policy = policy_with(
        write_policy,
        f"""tenants:
  chatgpt: [{WS}, {WS2}]
  openai-api: {ORG}
  microsoft: "{WS}:{WS2}"
  github: [avocado-corp, pear-corp]
""",
    )
    values = {t.control.vendor: t.value for t in policy.tenants}
    assert values == {
        "chatgpt": f"{WS},{WS2}",  # comma, no space
        "openai-api": ORG,
        "microsoft": f"{WS}:{WS2}",
        "github": "avocado-corp, pear-corp",  # GitHub's own example has a space
    }


@pytest.mark.parametrize(
    "tenants, message",
    [
        ("tenants:\n  chatgtp: [x]\n", ":6: tenants: unknown vendor 'chatgtp' (did you mean 'chatgpt'?)"),  # noqa: E501
        ("tenants:\n  chatgpt: [not-a-uuid]\n", ":6: tenants.chatgpt: 'not-a-uuid' is not a ChatGPT workspace ID"),  # noqa: E501
        (f"tenants:\n  chatgpt: [{WS}, {WS}]\n", f":6: tenants.chatgpt: '{WS}' is listed twice"),
        ("tenants:\n  openai-api: [12]\n", ":6: tenants.openai-api: a number is not an OpenAI organization ID"),  # noqa: E501
        (f"tenants:\n  microsoft: [\"{WS}:{WS2}\", \"{WS2}:{WS}\"]\n", ":6: tenants.microsoft: 2 values; sec-Restrict-Tenant-Access-Policy takes at most 1"),  # noqa: E501
        ("tenants:\n  github: {}\n", ":6: tenants.github: give a GitHub enterprise ID or slug, or a list of them"),  # noqa: E501
        ("tenants: [chatgpt]\n", ":5: tenants: must be a mapping of vendor to IDs, not a list"),
        ("tenants:\n  microsoft-v1: [contoso.com]\n", ":6: tenants.microsoft-v1: give a mapping with 'allow'"),  # noqa: E501
        ("tenants:\n  microsoft-v1:\n    allow: [contoso.com]\n    context: nope\n", ":8: tenants.microsoft-v1.context: 'nope' is not the directory ID"),  # noqa: E501
        (f"tenants:\n  microsoft-v1:\n    allow: [contoso, {WS}]\n    context: {WS}\n", ":7: tenants.microsoft-v1.allow: 'contoso' is not a permitted tenant"),  # noqa: E501
    ],
)  # fmt: skip
def test_a_bad_value_is_a_file_line_error_before_it_can_break_the_service(
    write_policy, tenants, message
):
    assert message in errors(write_policy, tenants)


def test_tenant_restrictions_v1_set_both_of_microsofts_headers(write_policy):
    policy = policy_with(
        write_policy,
        f"""tenants:
  microsoft-v1:
    allow: [contoso.com, fabrikam.onmicrosoft.com, {WS2}]
    context: {WS}
""",
    )
    (tenant,) = policy.tenants
    assert tenant.headers == (
        ("Restrict-Access-To-Tenants", f"contoso.com,fabrikam.onmicrosoft.com,{WS2}"),
        ("Restrict-Access-Context", WS),
    )
    engine = Engine(policy)
    assert engine.tenants_of("login.microsoftonline.com") == (tenant,)
    assert engine.tenants_of("login.live.com") == ()  # v1 is Entra's sign-in hosts only


def test_a_tenant_host_is_intercepted_never_tunnelled(write_policy):
    engine = Engine(policy_with(write_policy, f"tenants:\n  chatgpt: [{WS}]\n"))
    decision = engine.decide_connect("chatgpt.com", "127.0.0.1")
    assert (decision.action, decision.connect) == (Action.ALLOW, Mode.INTERCEPT)
    assert "ChatGPT-Allowed-Workspace-Id" in decision.reason
    assert engine.decide_connect("ab.chatgpt.com").connect is Mode.INTERCEPT
    assert engine.decide_connect("example.com").connect is Mode.TUNNEL  # control
    plain = Engine(policy_with(write_policy, ""))
    assert plain.decide_connect("chatgpt.com").connect is Mode.TUNNEL  # control: no tenants


def test_logged_out_use_is_blocked_while_a_tenant_is_set(write_policy):
    engine = Engine(policy_with(write_policy, f"tenants:\n  chatgpt: [{WS}]\n"))
    anonymous = engine.decide_request("POST", "chatgpt.com", "/backend-anon/f/conversation")
    assert (anonymous.action, anonymous.rule) == (Action.BLOCK, "tenants.chatgpt")
    signed_in = engine.decide_request("POST", "chatgpt.com", "/backend-api/f/conversation")
    assert signed_in.action is Action.ALLOW
    plain = Engine(policy_with(write_policy, ""))
    assert plain.decide_request("POST", "chatgpt.com", "/backend-anon/x").action is Action.ALLOW


def test_tenants_of_names_the_header_a_host_gets(write_policy):
    engine = Engine(policy_with(write_policy, f"tenants:\n  anthropic: [{WS}]\n"))
    assert [t.control.header for t in engine.tenants_of("api.anthropic.com")] == [
        "anthropic-allowed-org-ids"
    ]
    assert engine.tenants_of("api.openai.com") == ()


def test_explain_shows_the_header_a_request_gets(write_policy):
    """`aiwarden explain`, the real command: the header on a signed-in request, none on the
    logged-out one it blocks, none on another vendor's host."""
    policy = write_policy(ALLOW_ALL + f"tenants:\n  chatgpt: [{WS}]\n")
    urls = ["https://chatgpt.com/backend-api/me", "https://chatgpt.com/backend-anon/x",
            "https://api.openai.com/v1/models"]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "proxy", "explain", "--policy", str(policy),
                        "--json", *urls], capture_output=True, text=True, check=True)  # fmt: skip
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [r["tenant_headers"] for r in records] == [{"ChatGPT-Allowed-Workspace-Id": WS}, {}, {}]
    assert [r["rule"] for r in records] == ["default", "tenants.chatgpt", "default"]
    text = subprocess.run([sys.executable, "-m", "proxy", "explain", "--policy", str(policy),
                           urls[0]], capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"header:   ChatGPT-Allowed-Workspace-Id: {WS}" in text
