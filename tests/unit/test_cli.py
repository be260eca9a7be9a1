"""The admin CLI, run as the installed `aiwarden` command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHIPPED

AIWARDEN = str(Path(sys.executable).parent / "aiwarden")


def run(*args, cwd=None):
    return subprocess.run([AIWARDEN, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_check_ok():
    r = run("check", "--policy", str(SHIPPED))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"OK {SHIPPED / 'policy.yaml'}: 3 rules, ")
    assert "services" in r.stdout and "digest" in r.stdout


def test_check_defaults_to_policies_in_the_working_directory():
    assert run("check", cwd=SHIPPED.parent).returncode == 0


def test_check_lists_every_error_and_exits_2(write_policy):
    path = write_policy("""
        version: 1
        defaults: {action: blok}
        rules:
          - id: x
            match: {services: [chat-gpt]}
            action: block
    """)
    r = run("check", "--policy", str(path.parent))
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines == [
        f"{path}:3: defaults: 'action' must be one of allow, block, monitor, not 'blok' "
        "(did you mean 'block'?)",
        f"{path}:6: rule 'x', match: unknown service 'chat-gpt' (did you mean 'chatgpt'?)",
        "2 errors; the policy was not loaded",
    ]


def test_check_missing_policy():
    r = run("check", "--policy", "/nonexistent/policy.yaml")
    assert r.returncode == 2
    assert r.stderr.startswith("/nonexistent/policy.yaml:0: cannot read: No such file")


def test_catalog_text():
    r = run("catalog", "--policy", str(SHIPPED))
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "CATEGORY", "VENDOR", "HOSTS"]
    chatgpt = next(line for line in lines if line.startswith("chatgpt "))
    assert "chat" in chatgpt and "OpenAI" in chatgpt and "chatgpt.com" in chatgpt
    token = next(line for line in lines if line.startswith("github-copilot-token "))
    assert "api.github.com  (only /copilot_internal/**)" in token
    assert lines[-1].endswith(" services") and int(lines[-1].split()[0]) >= 60


def test_catalog_summary_counts_what_the_listing_holds():
    services = json.loads(run("catalog", "--json", "--policy", str(SHIPPED)).stdout)
    r = run("catalog", "--summary", "--json", "--policy", str(SHIPPED))
    summary = json.loads(r.stdout)
    assert summary["services"] == len(services)
    assert summary["categories"]["chat"] == sum(s["category"] == "chat" for s in services)
    assert summary["countries"].get("US") == sum(s["country"] == "US" for s in services)
    assert sum(summary["sources"].values()) == len(services)
    text = run("catalog", "--summary", "--policy", str(SHIPPED)).stdout
    assert text.startswith(f"{len(services)} services, ") and "categories: " in text


def test_catalog_json():
    r = run("catalog", "--json", "--policy", str(SHIPPED))
    services = json.loads(r.stdout)
    by_id = {s["id"]: s for s in services}
    assert len(services) >= 60
    assert by_id["vertex-ai"]["category"] == "api"
    assert "*-aiplatform.googleapis.com" in by_id["vertex-ai"]["hosts"]
    assert by_id["vertex-ai"]["paths"]
    assert "prompt" in by_id["openai-api"]["activities"]
    assert set(by_id["chatgpt"]) == {
        "id",
        "name",
        "vendor",
        "country",
        "category",
        "hosts",
        "paths",
        "activities",
        "source",
        "checked",
    }


def test_explain_json_one_object_per_url():
    r = run(
        "explain",
        "--json",
        "--policy",
        str(SHIPPED),
        "--client",
        "10.1.2.3",
        "https://chatgpt.com/backend-api/conversation",
        "--method",
        "POST",
        "https://api.github.com/user",
        "http://example.com/x?secret=1",
    )
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(records) == 3
    chat, github, plain = records
    assert {
        k: chat[k]
        for k in (
            "action",
            "service",
            "category",
            "activity",
            "rule",
            "connect",
            "method",
            "client",
        )
    } == {
        "action": "block",
        "service": "chatgpt",
        "category": "chat",
        "activity": "prompt",
        "rule": "block-ai",
        "connect": "intercept",
        "method": "POST",
        "client": "10.1.2.3",
    }
    assert chat["reason"] and chat["message"]
    assert (github["action"], github["service"], github["connect"]) == ("allow", None, "intercept")
    assert (plain["action"], plain["connect"], plain["rule"]) == ("allow", None, "default")


def test_explain_text():
    r = run(
        "explain",
        "--policy",
        str(SHIPPED),
        "https://api.anthropic.com/v1/messages",
        "--method",
        "POST",
    )
    assert r.returncode == 0
    assert r.stdout.splitlines()[:6] == [
        "POST https://api.anthropic.com/v1/messages",
        "  action:   block",
        "  service:  anthropic-api (api, Anthropic, US)",
        "  activity: prompt",
        "  rule:     block-ai",
        "  connect:  intercept (service anthropic-api (api): rule 'block-ai' "
        "(categories=agent,api,chat,code-assistant,companion,image,meeting,productivity,search,"
        "video,voice) matched)",
    ]


def test_explain_exits_0_whatever_the_action_and_2_on_a_bad_url():
    ok = run("explain", "--policy", str(SHIPPED), "https://example.com/")
    assert ok.returncode == 0 and "action:   allow" in ok.stdout
    bad = run("explain", "--json", "--policy", str(SHIPPED), "ftp://x/", "https://example.com/")
    assert bad.returncode == 2
    first, second = (json.loads(line) for line in bad.stdout.splitlines())
    assert first == {"url": "ftp://x/", "error": "not an http(s) URL: 'ftp://x/'"}
    assert second["action"] == "allow"


def test_no_command_prints_help():
    r = run()
    assert r.returncode == 2 and "check" in r.stdout and "explain" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--upstream-ca", "/nonexistent.pem"), "--upstream-ca /nonexistent.pem: no such file"),
        (("--listen", "3128"), "'3128' is not HOST:PORT"),
        (("--admin", "127.0.0.1:99999"), "'127.0.0.1:99999': port out of range"),
        (("--workers", "-1"), "--workers must be 0 (one per usable CPU) or more"),
    ],
)
def test_run_refuses_bad_arguments_before_starting(args, message, tmp_path):
    r = run("run", "--policy", str(SHIPPED), "--confdir", str(tmp_path / "ca"), *args)
    assert r.returncode == 2
    assert r.stderr.strip() == f"aiwarden run: {message}"
    assert not (tmp_path / "ca").exists()  # nothing was made


def test_run_reports_a_bad_flag_before_reading_the_policy(tmp_path):
    broken = tmp_path / "policy.yaml"
    broken.write_text("rules: [\n")
    confdir = str(tmp_path / "ca")
    flag = run("run", "--policy", str(broken), "--confdir", confdir, "--workers", "-1")
    assert flag.returncode == 2
    assert flag.stderr.strip() == "aiwarden run: --workers must be 0 (one per usable CPU) or more"
    # control: with good flags, the same policy is what is reported
    policy = run("run", "--policy", str(broken), "--confdir", confdir)
    assert policy.returncode == 2
    assert f"{broken}:" in policy.stderr and "the policy was not loaded" in policy.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy.corp.example:3128", ("proxy.corp.example", 3128, None)),
        ("http://PROXY.corp.example:8080/", ("proxy.corp.example", 8080, None)),
        ("http://u:p%40ss%3Aw@127.0.0.1:3128", ("127.0.0.1", 3128, "u:p@ss:w")),
        ("http://u@[::1]:3128", ("::1", 3128, "u:")),
    ],
)
def test_a_parent_proxy_url_is_read(url, expected):
    from proxy.serve.run import parse_parent

    parent = parse_parent(url)
    assert (parent.host, parent.port, parent.auth) == expected
    assert parent.mode.startswith("upstream:http://") and "@" not in parent.mode


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://u:secret@proxy:3128", "only http://"),
        ("socks5://proxy:1080", "only http://"),
        ("http://u:secret@proxy", "host and port"),
        ("http://proxy:3128/path", "no path"),
        ("proxy:3128", "only http://"),
    ],
)
def test_a_bad_parent_proxy_url_is_refused_without_its_credentials(url, problem):
    from proxy.serve.run import parse_parent

    with pytest.raises(ValueError, match=problem) as e:
        parse_parent(url)
    assert "secret" not in str(e.value)
