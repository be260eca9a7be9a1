"""The built-in detectors of secrets: provider tokens by their published shapes, private keys,
credentials in URLs, and values that a secret-like key names, and the validators that reject
near-misses (JSON-decoding for JWTs, Shannon entropy for generic `key = value` secrets)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter

from proxy.redact.detectors import Detector, detector


def _b64json(part: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return isinstance(json.loads(raw), dict)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False


def jwt_valid(text: str) -> bool:
    header, payload, *_ = text.split(".")
    return _b64json(header) and _b64json(payload)


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_VERSIONISH = re.compile(r"v?\d+(?:[._-]\d+)+[a-z0-9.-]*")


def generic_secret_valid(value: str) -> bool:
    """A value assigned to a key-like name that looks random, not like a word, version, path,
    git SHA or UUID."""
    value = value.strip("\"'")
    if len(value) < 10 or _UUID.fullmatch(value) or _VERSIONISH.fullmatch(value):
        return False
    if _HEX.fullmatch(value) and len(value) in (7, 8, 12, 40, 64):
        return False  # git and content hashes
    if value.isalpha() and (value.islower() or value.isupper()):
        return False  # a plain word
    if "/" in value and value.count("/") >= 2 and "." in value:
        return False  # a path or URL
    has_digit = any(c.isdigit() for c in value)
    return shannon_entropy(value) >= (3.5 if has_digit else 4.0)


# -- detectors -------------------------------------------------------------------------------

DETECTORS: tuple[Detector, ...] = (
    # Whole blocks first, so their contents are not reported as something else.
    detector("private-key", "secrets",
       r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
       # the body up to its own END: never across the dashes of another BEGIN or END
       r"(?:(?:[^-]|-(?!----)){0,65536}?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
       # no END line (a truncated paste): the header lines and base64 lines that follow
       r"|(?:\r?\n(?:[A-Za-z0-9+/=]+(?=\r?\n|\Z)|[A-Za-z-]+: [^\r\n]*))*)"
       r"|PuTTY-User-Key-File-\d+:[\s\S]*?(?:Private-MAC: [0-9a-fA-F]+|\Z)",
       keywords=("-----BEGIN", "PuTTY-User-Key-File"), anchored=True),
    detector("aws-access-key", "secrets", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
       keywords=("AKIA", "ASIA", "ABIA", "ACCA", "A3T"), window=(4, 24), anchored=True),
    detector("aws-secret-key", "secrets",
       r"aws.{0,25}?(?:secret|key|pwd|pass|token).{0,25}?[\"'=:\s]\s*([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
       folded=("aws",), span=1, flags=re.IGNORECASE, window=(0, 160), anchored=True),
    detector("aws-bedrock-key", "secrets",
       r"\bABSK[A-Za-z0-9+/]{109,269}={0,2}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%&._-]*",
       keywords=("ABSK", "bedrock-api-key-"), window=(4, 400), anchored=True),
    detector("github-token", "secrets", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b",
       keywords=("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), window=(4, 44), anchored=True),
    detector("github-fine-grained-token", "secrets", r"\bgithub_pat_[A-Za-z0-9_]{82}\b",
       keywords=("github_pat_",), window=(4, 96), anchored=True),
    detector("gitlab-token", "secrets", r"\bglpat-[A-Za-z0-9_-]{20,}", keywords=("glpat-",),
       window=(4, 200), anchored=True),
    detector("slack-token", "secrets",
       r"\bxox[abposre]-[0-9]{8,13}-[A-Za-z0-9-]{8,}|\bxapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+",
       keywords=("xox", "xapp-"), window=(4, 300), anchored=True),
    detector("slack-webhook", "secrets",
       r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{8,}"
       r"(?:/[A-Za-z0-9+/_-]+)*", keywords=("hooks.slack.com",), window=(12, 400)),
    detector("stripe-key", "secrets", r"\b(?:sk|rk|pk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}\b",
       keywords=("_live_", "_test_", "_prod_"), window=(8, 120)),
    detector("anthropic-key", "secrets", r"\bsk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{80,}",
       keywords=("sk-ant-",), window=(4, 600), anchored=True),
    detector("openai-key", "secrets",
       r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]*T3BlbkFJ[A-Za-z0-9_-]+"
       r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}",
       keywords=("T3BlbkFJ", "sk-proj-", "sk-svcacct-", "sk-admin-"), window=(200, 400)),
    detector("huggingface-token", "secrets", r"\b(?:hf|api_org)_[A-Za-z0-9]{34,}\b",
       keywords=("hf_", "api_org_"), window=(8, 200), anchored=True),
    detector("google-api-key", "secrets", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",
       keywords=("AIza",), window=(4, 44), anchored=True),
    detector("azure-client-secret", "secrets",
       r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
       keywords=("Q~",), window=(8, 44)),
    detector("jwt", "secrets", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
       keywords=("eyJ",), validate=jwt_valid, window=(4, 16384), anchored=True),
    detector("url-credentials", "secrets",
       r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://([^\s:@/\"'<>]{1,100}:[^\s@/\"'<>]{1,200})@",
       keywords=("://",), span=1, window=(25, 330)),
    detector("generic-secret", "secrets",
       r"(?:access|auth|api|credential|creds|key|passw(?:or)?d|pwd"
       r"|secret|token)[A-Za-z0-9_.-]{0,30}[\"']?\s{0,5}(?:=|:|:=|=>|\bis\b)\s{0,5}[\"']?"
       r"([A-Za-z0-9_./+=~@$!%*#?&-]{10,150})",
       folded=("access", "auth", "api", "cred", "key", "pass", "pwd", "secret", "token"),
       validate=generic_secret_valid, span=1, flags=re.IGNORECASE, window=(0, 260), anchored=True),
)  # fmt: skip
