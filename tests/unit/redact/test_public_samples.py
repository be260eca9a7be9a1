"""The readers of bench/public_samples.py: gitleaks' Go rule files and detect-secrets' test
files, here on small files written for the test (the real repositories are not needed), and
how a case is placed in a prompt with its secret's span."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from corpus.public_detect_secrets import file_samples
from corpus.public_gitleaks import gitleaks_samples, go_string, regex_sample
from corpus.public_sources import longest_token, sample
from public_samples import TEMPLATES, prompt

GENERATE_GO = """package utils
func GenerateSampleSecrets(identifier string, secret string) []string {
	samples := map[string]string{
		"ini - quoted1":   "{i}Token=\\"{s}\\"",
		// "not a template": "{i} skipped",
		"make - conditional assignment":     "{i}_TOKEN ?= \\"{s}\\"",
	}
	replacer := strings.NewReplacer()
}
"""

RULE_GO = """package rules
var prefixes = []string{"zq_live_"}

func Zq() *config.Rule {
	r := config.Rule{
		RuleID:      "zq-api-token",
		Regex:       utils.GenerateUniqueTokenRegex(`zq_live_[a-f0-9]{24}`, false),
	}
	tps := utils.GenerateSampleSecrets("zq", "zq_live_"+secrets.NewSecret(utils.Hex("24")))
	tps = append(tps,
		`export ZQ="zq_live_0123456789abcdef01234567"`, // a literal case
	)
	tps = append(tps, fmt.Sprintf("zq: %s", prefixes[0])) // an index: not read, skipped
	fps := []string{`zq_live_short`}
	return utils.Validate(r, tps, fps)
}
"""

CONFIG_TOML = """[[rules]]
id = "zq-api-token"
regex = '''\\b(zq_live_[a-f0-9]{24})\\b'''
"""


def _bare_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    work = tmp_path / "work"
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(work)]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    bare = tmp_path / "bare"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def test_gitleaks_cases_come_from_generated_templates_and_literals(tmp_path):
    files = {
        "cmd/generate/config/utils/generate.go": GENERATE_GO,
        "cmd/generate/config/rules/zq.go": RULE_GO,
        "config/gitleaks.toml": CONFIG_TOML,
    }
    for repo in (_bare_repo(tmp_path, files), tmp_path / "work"):  # bare or a checkout
        cases = gitleaks_samples(repo, seed=3)
        positives = [c for c in cases if c.positive]
        assert {c.family for c in cases} == {"zq-api-token"}
        assert len(positives) == 3  # two templates and one literal
        generated = positives[:2]
        assert generated[0].text.startswith('zqToken="zq_live_')
        assert generated[1].text.startswith("zq_TOKEN ?= ")
        for c in positives:
            assert re.fullmatch(r"zq_live_[a-f0-9]{24}", c.secret), c
        assert positives[2].secret == "zq_live_0123456789abcdef01234567"
        assert [c.text for c in cases if not c.positive] == ["zq_live_short"]
    assert gitleaks_samples(tmp_path / "work", seed=3) == gitleaks_samples(tmp_path / "work", 3)


@pytest.mark.parametrize(
    "pattern",
    [r"[a-z0-9]{20}", r"(?:abc|def)-[A-Z2-7]{16}", r"fm2_[a-zA-Z0-9+\/]{100,}={0,3}",
     r"sk_(?:test|live)_[0-9a-zA-Z]{24}\b", r"[\w.-]{3}\dQ~[\w~.-]{31,34}"],
)  # fmt: skip
def test_a_regex_sample_matches_its_regex(pattern):
    rng = random.Random(0)
    for _ in range(20):
        assert re.fullmatch(pattern, regex_sample(pattern, rng))


def test_go_strings_are_read_as_go_reads_them():
    assert go_string(r'"a\"b\\c\n"') == 'a"b\\c\n'
    assert go_string("`raw \\n`") == "raw \\n"


DETECT_SECRETS_TEST = """
import pytest
SECRET = 'Qm7vXk29LpTz4RwN8sYc'
CASES_TEST_CASES = [
    ('token = "{}"'.format(SECRET), SECRET),
    ('token = ""', None),
]

class TestZq:
    @pytest.mark.parametrize(
        'payload, should_flag',
        [
            ('zq_' + SECRET, True),
            ('zq_short', False),
            (base64_of_something(), True),  # not computable: skipped
        ],
    )
    def test_analyze(self, payload, should_flag):
        pass
"""


def test_detect_secrets_cases_come_from_parametrize_and_case_lists():
    cases = file_samples("tests/plugins/zq_test.py", DETECT_SECRETS_TEST)
    assert {c.family for c in cases} == {"zq"}
    got = {(c.text, c.positive, c.secret) for c in cases}
    assert got == {
        ('token = "Qm7vXk29LpTz4RwN8sYc"', True, "Qm7vXk29LpTz4RwN8sYc"),
        ('token = ""', False, ""),
        ("zq_Qm7vXk29LpTz4RwN8sYc", True, "zq_Qm7vXk29LpTz4RwN8sYc"),
        ("zq_short", False, ""),
    }


def test_a_line_without_a_named_secret_is_labelled_by_its_longest_token_not_its_key():
    text = "X-Api-Token: Qm7vXk29Lp"
    start, end = longest_token(text)
    assert text[start:end] == "Qm7vXk29Lp"
    text = "ip 133.133.133.133:8080 here"  # a port is no key
    assert text[slice(*longest_token(text))] == "133.133.133.133"


@pytest.mark.parametrize("name, template", TEMPLATES)
def test_a_case_keeps_its_secret_span_in_every_prompt(name, template):
    case = sample("t", "f", 'key = "s3cr\\et"\nnext', "s3cr\\et")
    text, start, end = prompt(case, template, escape=name == "json")
    shown = text[start:end]
    assert shown == ("s3cr\\\\et" if name == "json" else "s3cr\\et")
