"""The built-in detectors of secrets, in families a profile can choose (`secrets.cloud`...).

Two kinds. Shape detectors know a provider's published token format: a fixed prefix (the
keyword that gates them), a length and an alphabet, and where the format has one a checksum or
structure check (GitHub's and npm's CRC32, base64 that must decode to the right number of
bytes, JWT parts that must decode to JSON). Context detectors know nothing of the value's
shape: a value is a secret because a secret-like key or phrase names it (`DB_PASSWORD=...`,
"my password is ...", `Authorization: Bearer ...`), whatever its entropy; their validators
reject what is not a value at all: placeholders, variable references, code, types, words.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from urllib.parse import unquote

from proxy.redact.detectors import Detector, detector


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _b64decode(text: str, urlsafe: bool = False) -> bytes | None:
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        return None


# -- shape validators --------------------------------------------------------------------------


def _b64json(part: str) -> bool:
    raw = _b64decode(part, urlsafe=True)
    try:
        return raw is not None and isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def jwt_valid(text: str) -> bool:
    header, payload, *_ = text.split(".")
    return _b64json(header) and _b64json(payload)


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62_crc32(text: str) -> str:
    """The 6-character checksum GitHub and npm append to their tokens."""
    n, digits = zlib.crc32(text.encode()), []
    while n:
        n, r = divmod(n, 62)
        digits.append(_BASE62[r])
    return "".join(reversed(digits)).rjust(6, "0")


def _random_mixed(text: str) -> bool:
    """Random, with digits, capitals and small letters (base62), not letters that read as an
    alphabet or a word."""
    return (looks_random(text) and any(c.isdigit() for c in text)
            and not text.isupper() and not text.islower())  # fmt: skip


def looks_random(text: str) -> bool:
    """Not a placeholder run like `xxxx...` or `0000...` or `abcabc...`."""
    return len(set(text)) >= 8 and shannon_entropy(text) >= 3.0


def checksummed_token_valid(token: str) -> bool:
    """prefix_ + 30 random base62 + their CRC32 in 6 base62. A token whose checksum is wrong
    (a hand-made or mangled one) still counts when it looks random: redacting it costs
    nothing, and a checksum is not a reason to let a near-real token through."""
    body = token.split("_", 1)[1]
    return base62_crc32(body[:-6]) == body[-6:] or looks_random(body)


_FILLER = re.compile(r"xxxx|your|here|example|placeholder|redacted|insert|replace", re.I)


def random_tail_valid(token: str) -> bool:
    """A prefixed token whose random part (after the last `_`, `-` or `.` of the prefix) does
    not look like a placeholder (`sha256~XXXX_PUT_YOUR_TOKEN_HERE_XXXX`)."""
    tail = token[-min(len(token), 32) :]
    return looks_random(tail) and not _FILLER.search(tail)


def slack_token_valid(token: str) -> bool:
    """Digits in it, and random: as a whole, or in its last part (`xoxa-2-5111…-e039d0…`: the
    ids before it may repeat digits)."""
    if not any(c.isdigit() for c in token):
        return False
    return looks_random(token) or looks_random(token.rsplit("-", 1)[-1])


def facebook_token_valid(token: str) -> bool:
    """`app id|secret`: the part after the pipe is random, with digits, and not all one case
    unless hex (an app secret), so not a table row of a number and a word."""
    tail = re.split(r"\||%7C", token, maxsplit=1)[-1]
    if not looks_random(tail) or not any(c.isdigit() for c in tail):
        return False
    return bool(re.fullmatch(r"[a-f0-9]{32}", tail)) or (not tail.islower() and not tail.isupper())


def aws_secret_valid(value: str) -> bool:
    """AWS secret keys are 40 base64 characters, mixed case: never all hex (a git SHA)."""
    return (
        not _HEX.fullmatch(value)
        and any(c.isupper() for c in value)
        and any(c.islower() for c in value)
    )


def vault_token_valid(token: str) -> bool:
    """hvs./hvb./hvr. tokens, and legacy `s.` + 24: random, mixed case, with digits (not
    `s.ThisIsAWordyIdentifier`)."""
    tail = token.split(".", 1)[1]
    return looks_random(tail) and (len(tail) > 24 or _mixed_random(tail))


def _mixed_random(text: str) -> bool:
    """Several capitals and small letters, spread as randomly as base62 spreads them."""
    capitals, small = sum(c.isupper() for c in text), sum(c.islower() for c in text)
    return capitals >= 3 and small >= 3 and shannon_entropy(text) >= 3.8


def b64_bytes_valid(*sizes: int, urlsafe: bool = False):
    """base64 (maybe URL-encoded) that decodes to one of `sizes` bytes: an HMAC key or
    signature, not a word that happens to fit the alphabet."""

    def valid(text: str) -> bool:
        raw = _b64decode(unquote(text), urlsafe=urlsafe)
        if raw is None and not urlsafe:
            raw = _b64decode(unquote(text), urlsafe=True)
        return raw is not None and len(raw) in sizes

    return valid


def atlassian_dc_valid(token: str) -> bool:
    """Jira and Confluence Data Center PATs: base64 of `<numeric id>:<random bytes>`."""
    raw = _b64decode(token)
    if raw is None or b":" not in raw:
        return False
    user, _, secret = raw.partition(b":")
    return user.isdigit() and len(secret) >= 16 and len(set(secret)) >= 12


def telegram_valid(token: str) -> bool:
    secret = token.split(":", 1)[1]
    return looks_random(secret) and not secret.islower() and not secret.isupper()


def discord_bot_valid(token: str) -> bool:
    """The first part is the bot's user id (a snowflake of 17-20 digits) in base64."""
    raw = _b64decode(token.split(".", 1)[0], urlsafe=True)
    return raw is not None and raw.isdigit() and 17 <= len(raw) <= 20


# -- context validators ---------------------------------------------------------------------

_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# (a version's suffix is short: 1.2.3-rc1, 1.21.0-alpine3.18; not 6605-06e236581be50b7984...)
_VERSIONISH = re.compile(r"v?\d+(?:[._-]\d+)+[a-z0-9.-]{0,16}|\d{4}-\d\d-\d\d(?:[T ][\d:.]+Z?)?")
# What stands in for a value: a template, a variable, a redaction, a mask, a type.
# (two patterns: one alternation with `^` branches was tried at every character, 0.4 us each,
# on the values of 200 characters that repeated keys make; searched without them, only
# where one of their first characters is)
_REFERENCE_ANYWHERE = re.compile(
    r"""\$\{|\$\(|\$[A-Z_][A-Z0-9_]*$|%[A-Za-z_]+%|\{\{|\{%|<[^>]*>|\[\[|%\(\w+\)s
    |\*\*\*|xxxx|XXXX|\.\.\.|…|REDACTED|\[REDACTED|://""",
    re.VERBOSE,
)
_REFERENCE_START = re.compile(
    r"""[\[{(_]|\.[A-Za-z]|[!&*@]|\{\w*\}$
    |\w[\w.]*\s*\(|\w[\w.]*\[|(?:process\.env|os\.environ|ENV|env|secrets|vars|config|
    settings|self|this|props|params|args|opts|options|ctx|context|request|req)\b[.\[]
    |[~.]?/""",
    re.VERBOSE,
)


def _reference(value: str) -> bool:
    return bool(_REFERENCE_START.match(value) or _REFERENCE_ANYWHERE.search(value))


# Words that are not a secret's value: placeholders, types, literals, auth schemes.
_NOT_VALUE_WORDS = """changeme change_me changeit password passwd pass secret token apikey
    api_key key value
    none null nil undefined true false yes no on off empty redacted hidden masked example sample
    placeholder dummy test testing fake foo bar baz qux todo tbd fixme required optional
    string str bytes int integer bool boolean number float any object dict list secretstr
    default unset notset env environ oauth oauth2 basic bearer jwt saml ldap kerberos ntlm
    digest anonymous your_password your_token your_api_key yourpassword mypassword
    password123 secret123 abc123 123456 12345678 123456789 1234567890 qwerty letmein admin123"""
_NOT_VALUES = frozenset(_NOT_VALUE_WORDS.split())
_PLACEHOLDER_PARTS = ("your", "insert", "replace", "enter", "example", "sample", "dummy", "fake",
                      "placeholder", "redacted", "changeme", "here")  # fmt: skip
# snake_case words (letters and at most two runs of digits each, or digits: x86_64, db_pass2,
# v4auth_header; not a random sm_pat_w5tmcwg5dcfz5b36) or camelCase
_SNAKE_IDENTIFIER = re.compile(
    r"[a-z]+\d*(?:[a-z]+\d*)?(?:_(?:[a-z]+\d*(?:[a-z]+\d*)?|\d+))+|[a-z]+[A-Z][A-Za-z]*"
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_TRAILING = ".,;:!?)]}>"
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
# A name: CONSTANT_CASE, or words with digits only at their end and capitals that start words
# (about one letter in three at most): getPassword2, HTTPSConnectionPool; not u6gTzfMf0zOp.
# (possessive: a name that fails must fail in linear time, whatever a prompt holds)
_NAME = re.compile(
    r"_*+(?:[A-Z0-9_]++|[A-Za-z][a-z]*+\d*+(?:_*+[A-Z]++[a-z]*+\d*+|_++[a-z]++\d*+)*+_*+)"
)


def _name_shaped(part: str) -> bool:
    capitals = sum(c.isupper() for c in part)
    return bool(_NAME.fullmatch(part)) and (part.isupper() or capitals <= 0.4 * len(part))


_CODE_CHARS = re.compile(r"[()\[\]{}|<>]")
_BRACKETS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def _code(core: str) -> bool:
    """Code characters that may be code: brackets that pair up, a pipe. A random password
    may hold a stray bracket (`...C7e:yVsUdL3[:`, `4nXYKv]mHDeom...`); an expression's
    brackets close in order."""
    if not _CODE_CHARS.search(core):
        return False
    if "|" in core or len(core) < 20 or shannon_entropy(core) < 3.5 or _camel_case_words(core):
        return True  # a pipe, short, or words (`password:dn_subtree[?search_filter_key=`)
    stack: list[str] = []
    for c in core:
        if c in _BRACKETS:
            stack.append(_BRACKETS[c])
        elif c in ")]}>" and (not stack or stack.pop() != c):
            return False  # a closer that closes nothing: no expression
    return not stack


_WORDS_ONLY = re.compile(r"[A-Za-z]+(?:[-_/.][A-Za-z]+)+")
_TOKEN_PLACEHOLDER = re.compile(
    r"token|secret|key|test|example|dummy|fake|sample|mock|demo|placeholder|changeme|your|pass",
    re.IGNORECASE,
)


def _core(value: str) -> str:
    return value.strip().rstrip(_TRAILING).strip("\"'`")


def _not_a_value(value: str) -> bool:
    lowered = value.lower()
    if not value or lowered in _NOT_VALUES or _reference(value):
        return True
    if len(set(value)) <= 2 or lowered.startswith(("xxx", "***")):
        return True  # "xxxxxx", "******", "aaaaaa"
    if any(part in lowered for part in _PLACEHOLDER_PARTS) and not any(c.isdigit() for c in value):
        return True
    if _DOTTED.fullmatch(value) and all(map(_name_shaped, value.split("."))):
        return True  # self.password, settings.SECRET_KEY (not s.AhuaT21I2zMGuBwywJ7Oqssi)
    return bool(_VERSIONISH.fullmatch(value) or _EMAIL.fullmatch(value))


_PROSE_WORD_LIST = (
    "the a an is are was were be been being to of and or but for in on at with by from as into "
    "about after before if else than then there here when where which what who how why because "
    "must should will would can could may might cannot not never always also only just still "
    "very too more most less much many such same other all any each every some no yes "
    "your you my his her their its our this that these those it has have had do does did "
    "least characters chars minimum maximum length new old confirm reset change forgot please "
    "enter type field manager policy hash hashed stored required expired expires contain "
    "contains need needs set get"
)
_PROSE_WORDS = frozenset(_PROSE_WORD_LIST.split())


def password_value_valid(value: str) -> bool:
    """A value a password-like key names: any entropy (`Tiger1992@`), but not a placeholder,
    a reference, a bare word (`required`), or an identifier (`new_password`)."""
    core = _core(value)
    if len(core) < 6 or _not_a_value(core):
        return False
    if " " in core:  # a passphrase, not a sentence or a label
        words = [w.strip(_TRAILING) for w in core.lower().split()]
        return len(words) <= 8 and not any(
            w in _PROSE_WORDS or w.endswith(("ly", "ed", "ing")) or "pass" in w for w in words
        )
    if core.isalpha():
        return False  # a word or an identifier: "required", "Welcome", "newPassword"
    if _CONSTANT_NAME.fullmatch(core):
        return False  # a constant beside a password-like one: ('CURLOPT_PASSWORD', 'CURLOPT_X')
    return not _SNAKE_IDENTIFIER.fullmatch(core)  # a variable: new_password, db_pass2


def token_value_valid(value: str) -> bool:
    """A value a token- or key-like name names: not a placeholder or reference, and not a
    word; a hex string, UUID or random-looking mix of any entropy above a floor."""
    core = _core(value)
    if len(core) >= 24 and core.startswith("_") and not core.endswith("_"):
        core = core.lstrip("_")  # _DN4IVERUcAbdO2ibFCriJAyfyuaDys7u08... (not __a_dunder__)
    if len(core) < 8 or " " in core or len(set(core)) <= 2:
        return False
    if core.isdigit():  # an id, a port, a timestamp; a long random number is a secret too
        return len(core) >= 16 and len(set(core)) >= 6
    if _HEX.fullmatch(core) or _UUID.fullmatch(core):
        return len(core) >= 16  # hex keys, git-SHA-shaped or not
    if _not_a_value(core) or _code(core) or _WORDS_ONLY.fullmatch(core):
        return False  # code, or words: "same-origin", "test-api-key", "auth-request-type/at"
    if len(core) < 24 and _placeholder_word(core):
        return False  # "token123", "my-secret-1", "auth_tokens/tok_123"
    if core.isalpha():
        return (
            len(core) >= 16
            and not core.islower()
            and not core.isupper()
            and shannon_entropy(core) >= 4.0
            and sum(c.isupper() for c in core) >= 4  # not a CamelCaseIdentifier
            and not _camel_case_words(core)  # ASAuthorizationAppleIDProvider
        )
    if (
        _SNAKE_IDENTIFIER.fullmatch(core) or re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+", core)
    ) and not any(map(_random_part, re.split(r"_", core))):
        return False  # a variable or constant name (not sk_d21e2be3622049c7809f95cc0231)
    return shannon_entropy(core) >= 2.8


_CONSTANT_NAME = re.compile(r"[A-Z]+(?:_[A-Z]+)+")
# a kind as a token's prefix, then its random part: secret_H9ZGTfAERfN5W0AX
_KIND_PREFIX = re.compile(r"(?i:secret|token|key|pat)[_-](?=[A-Za-z0-9]{12,}$)")


def _placeholder_word(core: str) -> bool:
    """A word of placeholders in a short value (`token123`, `my-secret-1`), but for a kind
    that prefixes a random part of base62 (`secret_H9ZGTfAERfN5W0AX`)."""
    prefix = _KIND_PREFIX.match(core)
    if prefix and _random_mixed(core[prefix.end() :]):
        core = core[prefix.end() :]
    return bool(_TOKEN_PLACEHOLDER.search(core))


def _camel_case_words(core: str) -> bool:
    """Letters that read as words run together: most of them in lower-case runs of three or
    more, as in `AppleIDProvider`; random letters seldom run that long between capitals."""
    return sum(map(len, re.findall(r"[a-z]{3,}", core))) >= 0.6 * len(core)


def _random_part(part: str) -> bool:
    """A part of a snake_case string that no name has: 16 or more characters, with three
    digits or more among letters, spread as randomly as a key's."""
    digits = sum(c.isdigit() for c in part)
    return len(part) >= 16 and 3 <= digits < len(part) and shannon_entropy(part) >= 3.5


def cli_value_valid(value: str) -> bool:
    """A password or token given on a command line; of curl's `user:password`, the password
    (the user when the password is left out: `-u "s3cr3t:"`)."""
    if _reference(value):
        return False  # `<user:password>`, `$USER:$PASS`
    if ":" in value:
        user, _, password = value.partition(":")
        password = password.strip("\"'")
        if password:  # a password slot: any value but a placeholder (`user:pass`, `:${PW}`)
            return len(password) >= 4 and url_password_valid(f"{user}:{password}")
        value = user
    return password_value_valid(value) or token_value_valid(value)


def url_password_valid(userinfo: str) -> bool:
    """`user:password` of a URL, unless the password is a placeholder (`user:password`,
    `${PASS}`, `****`)."""
    password = userinfo.split(":", 1)[1]
    return not (password.lower() in _NOT_VALUES or _reference(password) or len(set(password)) <= 2)


def auth_value_valid(value: str) -> bool:
    """What follows `Bearer`/`Basic`/`Authorization:`: base64 `user:pass`, or token-like."""
    raw = _b64decode(value.rstrip(_TRAILING))
    if raw is not None and b":" in raw:
        try:
            return raw.decode().isprintable()
        except UnicodeDecodeError:
            pass
    # a random token may start with `_` (a placeholder like `__TOKEN__` still fails)
    return token_value_valid(value.lstrip("_") if len(value) >= 20 else value)


# -- how detectors are declared ----------------------------------------------------------------


def token(
    id: str,
    family: str,
    pattern: str,
    prefixes: tuple[str, ...],
    length: int,
    validate=None,
    folded: bool = False,
    follows: tuple[tuple[str, str], ...] = (),
) -> Detector:
    """A token that starts with one of `prefixes` (its keywords): tried only where one
    occurs, and over at most `length` characters."""
    return detector(id, "secrets", pattern, keywords=() if folded else prefixes,
                    folded=prefixes if folded else (), validate=validate,
                    window=(4, length), anchored=True, follows=follows,
                    family=f"secrets.{family}")  # fmt: skip


# The end of a token: no more characters of its alphabet.
_END = r"(?![A-Za-z0-9_-])"
# The start of a base64 value: no base64 character before it, but for the `n` or `t` of a
# line break or tab escaped in a JSON string (`"...\\nYMqN..."`).
_B64_START = r"(?:(?<![A-Za-z0-9+/])|(?<=\\[nt]))"

# A key or phrase that names a password, and one that names another secret. The key may end
# the identifier only (`password_length` and `token_url` name no secret); `pass`, `pwd` and
# `auth` start a word (not `bypass`, `author`).
_WORD_START = r"(?:(?<![A-Za-z])|(?<=[a-z])(?=[A-Z]))"
_PASSWORD_NAME = (
    r"(?i:passw(?:or)?d|passphrase|passcode)(?i:[_.-]?(?:value|str|string|plain|plaintext))?"
    rf"|{_WORD_START}(?i:pass|pwd)"
)
_QUALIFIED_KEY = (
    "api|access|secret|private|client|master|encryption|signing|sign|app|application|consumer"
    "|service|shared|storage|subscription|license|licence|webhook|deploy|admin|session|account"
    "|primary|secondary|sas|ingest|ingestion|bot|management|mgmt|write|read|upload|publish"
    "|registry|integration|auth|hmac|jwt|cookie|aes|crypt|cipher|ssh|gpg|pgp|root|user|dev|prod"
    "|iam|cloud|token"
)
# Tokens that page through results are not secrets: page_token, nextPageToken, sync-token.
_NOT_AFTER_PAGING = "".join(
    f"(?<!{before}{word}{sep})"
    for word in ("page", "next", "continuation", "continue", "sync", "resume", "cancellation")
    for before, sep in (("", ""), ("", "_"), ("", "-"), ("", r"\."), (r"\b", " "))
)  # "next page token" too, but not "statuspage token"


def _looking_back(words: Iterable[str], after: str) -> list[str]:
    """Look-behinds for `words` each followed by `after` (of one width): one per length of
    word, not one per word (re looks back a fixed width, the same in each branch), so that
    a key's name is not looked back at 60 times."""
    by_length: dict[int, list[str]] = {}
    for word in words:
        by_length.setdefault(len(word), []).append(word)
    return [f"(?<=(?:{'|'.join(same)}){after})" for same in by_length.values()]


# `key` names a secret only after a qualifier: api_key, x-api-key, secretKey (not sort_key),
# and a separator (any character but a line break: "api.key", "user?key") or none.
_QUALIFIERS = _QUALIFIED_KEY.split("|")
_AFTER_QUALIFIER = (
    "(?:" + "|".join(_looking_back(_QUALIFIERS, "") + _looking_back(_QUALIFIERS, ".")) + ")"
)
# Every alternative starts at one of the detector's keywords, so it runs only there.
_SECRET_NAME = (
    rf"(?i:(?:secret|(?=token){_NOT_AFTER_PAGING}token)(?:[_.-]?(?:string|str|value|\d{{1,3}}))?"
    rf"|secret[_-]?id\d{{0,2}}|credentials?|creds|(?=key){_AFTER_QUALIFIER}key)"
    # names that are secrets only for one vendor: Sonar's login token, Sumo Logic's access id
    r"|(?i:sonar[_.-]?login|sumo[\w.-]{0,20}?access[_.-]?id)"
    r"|(?<=[A-Z0-9]_)KEY(?![A-Za-z0-9])"  # an environment variable: PAYMENT_GATEWAY_KEY
    r"(?i:[_.-]?(?:key|token|secret|value|b64|base64|hex|base))?"
    rf"|{_WORD_START}(?i:auth)"
)
# Between the key and the value: a closing quote or bracket, maybe a type (Go's `var k string
# = `), then an assignment: also make's `::=`/`?=`, PHP's `.=`, `is`, a comma after a quoted
# key (a call's arguments), and an XML element whose value is on the next line.
_ASSIGN = (
    r"""\\{0,3}["']?\]?(?:[ \t]+(?:string|String|str))?[ \t]{0,30}"""
    r"""(?:=>|:{1,3}=|[?.+]=|==|=|:|>(?=[^<\n]{1,200}</)|["']\s+value\s*="""
    # a name and its value: {"name": "DB_PASSWORD", "value": "..."}, and in YAML on two lines
    r"""|(?<=["'])[ \t]*,[ \t]*["']value["'][ \t]*:|[ \t]*\n[ \t]{1,12}value[ \t]*:"""
    r"""|(?<=["']),(?=[ \t]{0,5}\\?["'])"""  # setProperty("API_TOKEN", "…")
    r"""|>(?=[ \t]*\r?\n[ \t]{0,40}[^<\s][^<\n]{0,200}\r?\n[ \t]{0,40}</)\s{1,42}"""
    r"""|[ \t]+(?:is|was)\b[ \t]*:?)"""
    r"""[ \t]{0,5}"""
)
# The value: quoted (spaces allowed) or bare (up to a space, quote, separator, or a line
# break or tab escaped as in a JSON string: `API_KEY=abc123\\n\\t[INFO] ...`).
_VALUE = (
    r"""\\{0,3}["'`]?((?<=["'`])[^"'`\n\\]{1,4096}(?=\\{0,3}["'`])"""
    r"""|(?<!["'`])(?:[^\s"'`,;&<>\\]|\\(?![ntr]))(?:[^\s"'`,;&<>\\]|\\(?![ntr])){0,4095})"""
)
# "log in with the password river52288": the value right after the whole word
# (8 or more characters, letters and digits, not only capitals: not "password SOCKS5")
_BARE = r"(?<=[dDeE])[ \t]+(?=(?=\S*[a-z])(?=\S*\d)\S{8,64}(?!\S)|(?:[a-z]{3,10}[ \t]){3})"
# An unquoted passphrase of 3-6 lowercase words, up to the end of the line, a punctuation mark
# or a word that goes on with the sentence ("the password is river dragon horse tiger but").
_PASSPHRASE = (
    r"(?<![\"'`])(?:[a-z]{3,10}[ \t]){2,5}[a-z]{3,10}"
    r"(?=[ \t]*(?:$|[\n.,;!?)])|[ \t]+(?:and|but|then|to|for|so|or|on|in|at|please|because)\b)"
)
# What can follow a key's name, for Hyperscan (Detector.follows): the first character of an
# _ASSIGN (but for spaces), and in one class for `key`, `token` and `auth` in both detectors
# (one expression each): a suffix of digits, `_.-`, `value`, `b64`, `hex`, `str(ing)`, and
# _OTHER_ASSIGN's `!=` or `|`. Not "keyboard" or "tokenizer", nor "author".
_ASSIGN_STARTS = r"""\\"'\]=:?.+>,\n"""
_AFTER_NAME = rf"[0-9_vVbBhHsS \t{_ASSIGN_STARTS}!|-]"
_PASSWORD_VALUE = _VALUE.replace("((?<=", f"((?m:{_PASSPHRASE})|(?<=", 1)
_PHRASE = r"(?:[ \t]+(?:for|to|of|on)[ \t]+[^\n:=\"']{1,40}?)?"  # "the password for the VPN is"

_CLI_PASSWORD = (
    r"(?:\b(?:mysql|mysqldump|mysqladmin|mariadb|mongo|mongosh|mongodump|mongorestore|sshpass"
    r"|docker\s+login|podman\s+login|helm\s+registry\s+login)\b[^\n|;&]{0,160}?[ \t]-p"
    r"|\bredis-cli\b[^\n|;&]{0,160}?[ \t]-a"
    # PowerShell: ConvertTo-SecureString [-String] "plain text" -AsPlainText
    r"|\bConvertTo-SecureString(?:[ \t]+-String)?"
    r"(?=[ \t]+[\"'][^\"'\n]{4,200}[\"'][ \t]+-AsPlainText)"
    # curl's user:password, also a few continued lines on
    r"""|\bcurl\b(?:[^\n|;&]|(?<=\\)\r?\n){0,400}?[ \t](?:-u|--user)"""
    r"""(?=[ \t=]+\\?["']?(?:[^\s"':]*:\\?["']?[^\s"'\\]{4}|[^\s"':\\]{6,}:))"""
    r"|(?<=[ \t])--(?:[a-z]+-)?(?:password|passwd|pass|passphrase|token|secret|api-key|apikey"
    r"|access-key|secret-key|auth-token|client-secret))"
    r"""(?:[ \t]+|=|(?<=-p)|(?<=-a))\\?["']?"""
    r"""((?<=["'])[^"'\n\\]{4,200}(?=\\?["'])|(?<!["'])[^\s"'|;&:]{0,100}:["'][^"'\n]{4,200}(?=["'])"""
    r"""|(?<!["'])[^\s"'|;&]{4,200})"""
)


# -- detectors -------------------------------------------------------------------------------

_PRIVATE_KEYS: tuple[Detector, ...] = (
    # Whole blocks first, so their contents are not reported as something else.
    detector("private-key", "secrets",
       r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
       # the body up to its own END: never across the dashes of another BEGIN or END
       r"(?:(?:[^-]|-(?!----)){0,65536}?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
       # no END line (a truncated paste): the header lines and base64 lines that follow
       r"|(?:\r?\n(?:[A-Za-z0-9+/=]+(?=\r?\n|\Z)|[A-Za-z-]+: [^\r\n]*))*)"
       r"|PuTTY-User-Key-File-\d+:[\s\S]*?(?:Private-MAC: [0-9a-fA-F]+|\Z)",
       keywords=("-----BEGIN", "PuTTY-User-Key-File"), anchored=True,
       family="secrets.private-keys"),
    token("age-secret-key", "private-keys",
          r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", ("AGE-SECRET-KEY-1",), 80),
)  # fmt: skip

_CLOUD: tuple[Detector, ...] = (
    detector("aws-access-key", "secrets", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
       keywords=("AKIA", "ASIA", "ABIA", "ACCA", "A3T"), window=(4, 24), anchored=True,
       family="secrets.cloud"),
    # named by `aws`, or written after its access key id (credentials files, a pair in a
    # config block: the id, then the secret within a few lines)
    detector("aws-secret-key", "secrets",
       r"(?:aws.{0,25}?(?:secret|key|pwd|pass|token).{0,25}?[\"'=:\s]\s*"
       r"|(?-i:\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b)[\s\S]{1,160}?(?<![A-Za-z0-9/+]))"
       r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
       keywords=("AKIA", "ASIA", "ABIA", "ACCA"), folded=("aws",), span=1,
       flags=re.IGNORECASE, window=(0, 240), anchored=True, validate=aws_secret_valid,
       family="secrets.cloud"),
    # a temporary key id (ASIA...) comes with a session token: long base64, a few lines on
    detector("aws-session-token", "secrets",
       r"\bASIA[A-Z0-9]{16}\b[\s\S]{1,300}?(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{100,2000}={0,2})"
       r"(?![A-Za-z0-9/+=])",
       keywords=("ASIA",), span=1, window=(0, 2400), anchored=True,
       validate=aws_secret_valid, family="secrets.cloud"),
    detector("aws-bedrock-key", "secrets",
       r"\bABSK[A-Za-z0-9+/]{109,269}={0,2}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%&._-]*",
       keywords=("ABSK", "bedrock-api-key-"), window=(4, 400), anchored=True,
       family="secrets.cloud"),
    token("google-api-key", "cloud", r"\bAIza[0-9A-Za-z_-]{35}" + _END, ("AIza",), 44),
    token("google-oauth-token", "cloud",
          r"\bya29\.[0-9A-Za-z_-]{30,}|\bGOCSPX-[0-9A-Za-z_-]{28}" + _END
          + r"|\b1//0[0-9A-Za-z_-]{40,}", ("ya29.", "GOCSPX-", "1//0"), 2048,
          validate=random_tail_valid),
    detector("gcp-service-account", "secrets", r"\"private_key_id\"\s*:\s*\"([0-9a-f]{40})\"",
       keywords=('"private_key_id"',), span=1, window=(0, 60), anchored=True,
       family="secrets.cloud"),
    detector("azure-client-secret", "secrets",
       r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
       keywords=("Q~",), window=(8, 44), family="secrets.cloud"),
    detector("azure-storage-key", "secrets",
       r"(?:(?i:AccountKey|SharedAccessKey|PrimaryKey|SecondaryKey)\s*=\s*"
       # AccountKey{ "..." }, ACCOUNT_KEY\n = "...", ACCOUNT_KEY ||\n "...": 64 bytes
       r"|(?i:account[_-]?key)(?:[^A-Za-z0-9+/]|\\[nrt]){1,40}?"
       r"(?=[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])))([A-Za-z0-9+/]{42,86}={0,2})",
       folded=("accountkey", "sharedaccesskey", "primarykey", "secondarykey", "account_key",
               "account-key"), span=1,
       validate=b64_bytes_valid(32, 64), window=(0, 140), anchored=True, family="secrets.cloud"),
    # Azure Container Registry passwords: 42 base64 characters, `+ACR`, 6 more
    detector("azure-registry-password", "secrets",
       _B64_START + r"[A-Za-z0-9+/]{42}\+ACR[A-Za-z0-9]{6}(?![A-Za-z0-9+/])",
       keywords=("+ACR",), validate=looks_random, window=(42, 10), family="secrets.cloud"),
    # Azure API Management repository (git) passwords: git&<yyyymmddhhmm>&<64 bytes base64>
    token("azure-apim-git-password", "cloud", r"\bgit&\d{12}&[A-Za-z0-9+/]{86}==",
          ("git&",), 110),
    # Microsoft identity platform refresh tokens: 0. or 1., then dot-separated parts, the
    # second starting `Ag` (`.AgABAAAAAAD...`)
    token("azure-refresh-token", "cloud",
          r"\b[01]\.A[\w-]{50,}(?:\.\d)?\.Ag[\w-]{250,}(?:\.A[\w-]{200,})?",
          ("0.A", "1.A"), 8192),
    detector("azure-sas-signature", "secrets", r"\bsig=([A-Za-z0-9%+/_-]{40,90})",
       keywords=("sig=",), span=1, validate=b64_bytes_valid(32, urlsafe=False),
       window=(2, 96), family="secrets.cloud"),
    token("digitalocean-token", "cloud", r"\bdo[opr]_v1_[a-f0-9]{64}\b",
          ("dop_v1_", "doo_v1_", "dor_v1_"), 72),
    token("alibaba-access-key", "cloud", r"\bLTAI[A-Za-z0-9]{20}\b", ("LTAI",), 24,
          validate=random_tail_valid),
    token("heroku-api-key", "cloud", r"\bHRKU-AA[0-9A-Za-z_-]{58}" + _END, ("HRKU-",), 66),
    token("cloudflare-origin-ca-key", "cloud", r"\bv1\.0-[a-f0-9]{24}-[a-f0-9]{146}\b",
          ("v1.0-",), 180),
    token("hashicorp-vault-token", "cloud",
          r"\bhv[sbr]\.[A-Za-z0-9_-]{24,400}" + _END + r"|\bs\.[A-Za-z0-9]{24}\b",
          ("hvs.", "hvb.", "hvr.", "s."), 410, validate=vault_token_valid,
          follows=(("s.", "[A-Za-z0-9]{24}"),)),  # not the "s." ending a sentence
    detector("terraform-cloud-token", "secrets",
       r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}", keywords=(".atlasv1.",),
       window=(14, 80), family="secrets.cloud"),
    token("pulumi-token", "cloud", r"\bpul-[a-f0-9]{40}\b", ("pul-",), 48),
    token("flyio-token", "cloud",
          r"\bfo1_[\w-]{43}" + _END + r"|\bfm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3}",
          ("fo1_", "fm1a_", "fm1r_", "fm2_"), 4096),
    token("doppler-token", "cloud", r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}\b",
          ("dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."), 56),
    token("databricks-token", "cloud", r"\bdapi[a-f0-9]{32}(?:-\d)?\b", ("dapi",), 40),
)  # fmt: skip

_CODE_HOSTING: tuple[Detector, ...] = (
    token("github-token", "code-hosting", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b",
          ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), 44, validate=checksummed_token_valid),
    token("github-fine-grained-token", "code-hosting", r"\bgithub_pat_[A-Za-z0-9_]{82}\b",
          ("github_pat_",), 96),
    token("gitlab-token", "code-hosting",
          r"\bgl(?:pat|dt|ft|rt|oas|soat|imt|agent|ffct|cbt|ptt|wt)-[0-9A-Za-z_-]{20,300}"
          r"(?:\.[0-9a-z]{2,9}){0,2}" + _END + r"|\bGR1348941[0-9A-Za-z_-]{20}" + _END
          + r"|\b_gitlab_session=[0-9a-z]{32}\b",
          ("glpat-", "gldt-", "glft-", "glrt-", "gloas-", "glsoat-", "glimt-", "glagent-",
           "glffct-", "glcbt-", "glptt-", "glwt-", "GR1348941", "_gitlab_session="), 330,
          validate=random_tail_valid),
    token("npm-token", "code-hosting", r"\bnpm_[A-Za-z0-9]{36}\b", ("npm_",), 44,
          validate=checksummed_token_valid),
    token("pypi-token", "code-hosting",
          r"\bpypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,1000}",
          ("pypi-AgE",), 1100),
    token("rubygems-token", "code-hosting", r"\brubygems_[a-f0-9]{48}\b", ("rubygems_",), 60),
    token("nuget-key", "code-hosting", r"\boy2[a-z0-9]{43}\b", ("oy2",), 48,
          validate=random_tail_valid),
    token("docker-hub-token", "code-hosting", r"\bdckr_(?:pat|oat)_[A-Za-z0-9_-]{27,}" + _END,
          ("dckr_pat_", "dckr_oat_"), 80),
    token("bitbucket-app-password", "code-hosting", r"\bATBB[A-Za-z0-9_=.-]{24,}" + _END,
          ("ATBB",), 64, validate=random_tail_valid),
    token("artifactory-token", "code-hosting",
          r"\bAKCp[A-Za-z0-9]{69}\b|\bcmVmdGtu[A-Za-z0-9]{56}\b", ("AKCp", "cmVmdGtu"), 80),
    token("sourcegraph-token", "code-hosting",
          r"\bsgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}\b", ("sgp_",), 70),
    token("clojars-token", "code-hosting", r"\bCLOJARS_[a-z0-9]{60}\b", ("CLOJARS_",), 72),
)  # fmt: skip

# The first part of a Discord bot token, and an Atlassian Data Center token, is base64 of a
# decimal number: it starts with one of these, then at least 22 more characters of base64
# (Discord's URL-safe, 23-27 after the first; Atlassian's standard one, 43)
_SNOWFLAKE_STARTS = ("MD", "MT", "Mj", "Mz", "ND", "NT", "Nj", "Nz", "OD", "OT")
_BASE64_AFTER_STARTS = tuple((start, "[A-Za-z0-9_+/-]{22}") for start in _SNOWFLAKE_STARTS)

_CHAT: tuple[Detector, ...] = (
    token("slack-token", "chat",
          r"\bxox(?:e\.xox[bp]|[abposre])-[0-9A-Za-z-]{10,250}" + _END
          + r"|\bxapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+",
          ("xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xoxe-", "xoxe.", "xapp-"),
          300, validate=slack_token_valid),
    detector("slack-webhook", "secrets",
       r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{8,}"
       r"(?:/[A-Za-z0-9+/_-]+)*", keywords=("hooks.slack.com",), window=(12, 400),
       family="secrets.chat"),
    detector("telegram-bot-token", "secrets",
       r"(?:(?<=bot)|(?<![\w:/-]))\d{8,10}:AA[A-Za-z0-9_-]{33}" + _END,
       keywords=(":AA",), validate=telegram_valid, window=(10, 36), family="secrets.chat"),
    detector("discord-webhook", "secrets",
       r"(?:https?://)?(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/\d{17,20}/"
       r"[A-Za-z0-9_-]{60,68}" + _END,
       keywords=("discord.com/api/webhooks/", "discordapp.com/api/webhooks/"),
       window=(20, 130), family="secrets.chat"),
    detector("discord-bot-token", "secrets",
       r"\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}" + _END,
       # the first part is base64 of a decimal id: it starts with one of these
       keywords=_SNOWFLAKE_STARTS[1:], follows=_BASE64_AFTER_STARTS[1:],
       validate=discord_bot_valid, window=(0, 80), anchored=True, family="secrets.chat"),
    detector("teams-webhook", "secrets",
       r"(?:https://)?[a-z0-9-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/-]{60,300}",
       keywords=(".webhook.office.com/",), window=(40, 300), family="secrets.chat"),
    # automation webhooks: whoever has the URL can trigger the flow (Zapier catch hooks,
    # Tines webhooks: a tenant, then two 32-character parts)
    detector("automation-webhook", "secrets",
       r"(?:https://)?hooks\.zapier\.com/hooks/catch/[A-Za-z0-9]{4,}(?:/[A-Za-z0-9]{4,})*/?"
       r"|(?:https://)?[\w-]+\.tines\.com/webhook/[a-z0-9]{32}/[a-z0-9]{32}\b",
       keywords=("hooks.zapier.com/hooks/catch/", ".tines.com/webhook/"), window=(40, 120),
       family="secrets.chat"),
)  # fmt: skip

_PAYMENTS: tuple[Detector, ...] = (
    detector("stripe-key", "secrets",
       r"\b(?:sk|rk|pk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}\b|\bwhsec_[A-Za-z0-9]{32,}\b",
       keywords=("_live_", "_test_", "_prod_", "whsec_"), window=(8, 120),
       family="secrets.payments"),
    token("square-token", "payments",
          r"\b(?:sq0atp|sq0csp|EAAA)[A-Za-z0-9_-]{22,100}" + _END
          # gitleaks' and detect-secrets' tests put \ ] ^ in them: matched too
          + r"|\bsq0csp-[A-Za-z0-9_\\\]^-]{43}",
          ("sq0atp-", "sq0csp-", "EAAA"), 110, validate=random_tail_valid),
    token("shopify-token", "payments", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",
          ("shpat_", "shpca_", "shppa_", "shpss_"), 40),
    token("braintree-token", "payments",
          r"\baccess_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}\b",
          ("access_token$",), 90),
    token("flutterwave-key", "payments", r"\bFLWSECK(?:_TEST)?-[a-hA-H0-9]{12,32}(?:-X)?\b",
          ("FLWSECK",), 60),
    token("plaid-token", "payments",
          r"\b(?:access|secret)-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-"
          r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", ("access-", "secret-"), 70),
)  # fmt: skip

_AI: tuple[Detector, ...] = (
    token("anthropic-key", "ai", r"\bsk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{80,}",
          ("sk-ant-",), 600),
    detector("openai-key", "secrets",
       r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]*T3BlbkFJ[A-Za-z0-9_-]+"
       r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}",
       keywords=("T3BlbkFJ", "sk-proj-", "sk-svcacct-", "sk-admin-"), window=(200, 400),
       family="secrets.ai"),
    token("huggingface-token", "ai", r"\b(?:hf|api_org)_[A-Za-z0-9]{34,}\b", ("hf_", "api_org_"),
          200),
    token("ai-provider-key", "ai",
          r"\bgsk_[A-Za-z0-9]{52}\b|\bpplx-[A-Za-z0-9]{48}\b|\br8_[A-Za-z0-9]{37}\b"
          r"|\bxai-[A-Za-z0-9]{80}\b|\bsk-or-v1-[a-f0-9]{64}\b"
          r"|\blsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}\b|\bfw_[A-Za-z0-9]{24}\b"
          r"|\bnvapi-[A-Za-z0-9_-]{64}" + _END + r"|\bsk-[a-f0-9]{32}(?=[\s\"'`,;)]|$)",
          ("gsk_", "pplx-", "r8_", "xai-", "sk-or-v1-", "lsv2_", "fw_", "nvapi-", "sk-"), 100,
          validate=random_tail_valid),
)  # fmt: skip

_SAAS: tuple[Detector, ...] = (
    token("sendgrid-key", "saas", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}" + _END,
          ("SG.",), 72),
    token("twilio-key", "saas", r"\bSK[0-9a-fA-F]{32}\b", ("SK",), 34,
          validate=random_tail_valid, follows=(("SK", "[0-9a-fA-F]{32}"),)),
    token("mailgun-key", "saas", r"\b(?:key|pubkey)-[0-9a-z]{32}\b", ("key-", "pubkey-"), 40,
          validate=lambda t: random_tail_valid(t) and any(c.isdigit() for c in t)),
    detector("mailchimp-key", "secrets", r"\b[0-9a-f]{32}-us\d{1,2}\b", keywords=("-us",),
       window=(33, 6), family="secrets.saas"),
    token("atlassian-token", "saas", r"\bATATT3[A-Za-z0-9_=-]{150,250}" + _END, ("ATATT3",), 260),
    token("postman-key", "saas", r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b", ("PMAK-",), 70),
    token("grafana-token", "saas",
          r"\bglc_[A-Za-z0-9+/]{32,400}={0,3}|\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b"
          r"|\beyJrIjoi[A-Za-z0-9]{70,400}={0,3}", ("glc_", "glsa_", "eyJrIjoi"), 420),
    token("new-relic-key", "saas", r"\bNR(?:AK|II|RA|SP)-[A-Za-z0-9_-]{27,32}" + _END,
          ("NRAK-", "NRII-", "NRRA-", "NRSP-"), 40),
    detector("new-relic-license-key", "secrets", r"\b[a-f0-9]{36}NRAL\b", keywords=("NRAL",),
       window=(36, 4), family="secrets.saas"),
    token("linear-key", "saas", r"\blin_(?:api|oauth)_[A-Za-z0-9]{40,64}\b",
          ("lin_api_", "lin_oauth_"), 76),
    token("notion-token", "saas", r"\bsecret_[A-Za-z0-9]{43}\b|\bntn_[0-9]{11}[A-Za-z0-9]{35}\b",
          ("secret_", "ntn_"), 52, validate=random_tail_valid),
    token("figma-token", "saas", r"\bfig[dou]_[A-Za-z0-9_-]{40,}" + _END,
          ("figd_", "figo_", "figu_"), 90),
    token("sentry-token", "saas",
          r"\bsntry[us]_[A-Za-z0-9+/=_]{40,400}" + _END, ("sntryu_", "sntrys_"), 420),
    token("dynatrace-token", "saas", r"\bdt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}\b", ("dt0c01.",), 100),
    token("airtable-token", "saas", r"\bpat[A-Za-z0-9]{14}\.[a-f0-9]{64}\b", ("pat",), 84,
          follows=(("pat", r"[A-Za-z0-9]{14}\."),)),
    token("1password-token", "saas",
          r"\bops_eyJ[A-Za-z0-9+/]{250,}={0,3}|\bA3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-"
          r"[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b", ("ops_eyJ", "A3-"), 2000),
    token("planetscale-token", "saas", r"\bpscale_(?:tkn|oauth|pw)_[\w=.-]{32,64}" + _END,
          ("pscale_",), 80),
    token("supabase-token", "saas", r"\bsb(?:p|_secret)_[A-Za-z0-9_-]{32,}" + _END,
          ("sbp_", "sb_secret_"), 80),
    token("mapbox-token", "saas", r"\bsk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}",
          ("sk.eyJ",), 300),
    token("hubspot-token", "saas",
          r"\bpat-(?:na|eu)\d-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
          ("pat-na", "pat-eu"), 48),
    token("saas-token", "saas",
          r"\bxkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}\b|\bEZ[AT]K[A-Za-z0-9]{54}\b"
          r"|\bshippo_(?:live|test)_[a-fA-F0-9]{40}\b|\bduffel_(?:test|live)_[A-Za-z0-9_=-]{43}"
          r"|\bfio-u-[A-Za-z0-9_=-]{64}|\btfp_[A-Za-z0-9_.=-]{59}|\bpnu_[A-Za-z0-9]{36}\b"
          r"|\brdme_[a-z0-9]{70}\b|\bico-[A-Za-z0-9]{32}\b|\bCFPAT-[A-Za-z0-9_-]{43}"
          r"|\btk-us-[\w-]{48}|\bpk_\d{6,10}_[A-Z0-9]{32}\b"
          r"|\bsl\.(?:u\.)?[A-Za-z0-9_-]{130,}|\bnfp_[A-Za-z0-9]{36,40}\b"
          r"|\b(?:phc|phx)_[A-Za-z0-9]{43}\b|\baio_[A-Za-z0-9]{28}\b|\bpat\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}"
          r"\.[A-Za-z0-9]{20}|\bAAAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{60,120}"
          # 42 Intra secrets, Adobe client secrets, OpenShift user tokens, SonarQube tokens,
          # Facebook page tokens
          r"|\bs-s4t2(?:ud|af)-[a-f0-9]{64}\b|\bp8e-[A-Za-z0-9]{32}\b|\bsha256~[\w-]{43}" + _END
          + r"|\bsq[upa]_[a-f0-9]{40}\b|\bEAA[MC][A-Za-z0-9]{100,1000}\b",
          ("xkeysib-", "EZAK", "EZTK", "shippo_", "duffel_", "fio-u-", "tfp_", "pnu_",
           "rdme_", "ico-", "CFPAT-", "tk-us-", "pk_", "sl.", "nfp_", "phc_", "phx_", "pat.",
           "AAAAAAAAAAAAAAAAAAAAA", "aio_", "s-s4t2", "p8e-", "sha256~", "squ_", "sqp_", "sqa_",
           "EAAM", "EAAC"), 1200, validate=random_tail_valid),
    # Jira and Confluence Data Center personal access tokens: 44 base64 characters that
    # decode to a numeric id, `:` and random bytes (the id's first digits give the prefixes)
    detector("atlassian-dc-token", "secrets", r"\b[MNO][A-Za-z0-9+/]{43}(?![A-Za-z0-9+/=])",
       keywords=_SNOWFLAKE_STARTS, follows=_BASE64_AFTER_STARTS,
       validate=atlassian_dc_valid, window=(0, 44), anchored=True, family="secrets.saas"),
    # Tableau personal access tokens: 16 bytes of base64, a colon, 32 letters and digits
    detector("tableau-token", "secrets",
       _B64_START + r"[A-Za-z0-9+/]{22}==:[A-Za-z0-9]{32}(?![A-Za-z0-9])",
       keywords=("==:",), window=(22, 36),
       validate=lambda t: _random_mixed(t[25:]) and b64_bytes_valid(16)(t[:24]),
       family="secrets.saas"),
    # Sidekiq Enterprise/Pro credentials: `user:password`, 8 hex each, under their gem source
    detector("sidekiq-secret", "secrets",
       r"__CONTRIBSYS__COM\w{0,10}[\"']?[ \t]*(?:[:?.+]?=|:{1,3}=|:|,)[ \t\"'\\]*"
       r"([a-f0-9]{8}:[a-f0-9]{8})\b",
       keywords=("__CONTRIBSYS__COM",), span=1, window=(0, 60), anchored=True,
       family="secrets.saas"),
    # A Facebook app access token: the app id, a pipe, the app secret or a signature
    detector("facebook-token", "secrets",
       r"(?<![0-9])\d{15,16}(?:\||%7C)[A-Za-z0-9_-]{27,40}(?![A-Za-z0-9_-])",
       digits=(15, 16), validate=facebook_token_valid, window=(0, 44),
       family="secrets.saas"),
)  # fmt: skip

_GENERIC: tuple[Detector, ...] = (
    detector("jwt", "secrets",
       r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?",
       keywords=("eyJ",), validate=jwt_valid, window=(4, 16384), anchored=True,
       family="secrets.generic"),
    detector("url-credentials", "secrets",
       r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://([^\s:@/\"'<>]{0,100}:[^\s@/\"'<>]{1,200})@",
       keywords=("://",), span=1, validate=url_password_valid, window=(25, 330),
       family="secrets.generic"),
    detector("auth-header", "secrets",
       r"(?:(?i:authorization)[\"']?[ \t]*[:=][ \t]*[\"']?"
       r"(?:(?:Bearer|Basic|Token|token|JWT|Bot|Key|SSWS|GenieKey|Splunk|OAuth|Api-Key|Api-Token"
       r"|DeepL-Auth-Key|Zoho-oauthtoken|Digest)[ \t]+)?"
       r"|\b(?:Bearer|bearer|BEARER|Basic|BASIC)[ \t]+)"
       r"([A-Za-z0-9._~+/=:-]{8,4096})",
       folded=("authorization", "bearer", "basic"), span=1, validate=auth_value_valid,
       window=(0, 4200), anchored=True, family="secrets.generic"),
    detector("cli-secret", "secrets", _CLI_PASSWORD, span=1,
       keywords=("mysql", "mariadb", "mongo", "sshpass", "docker", "podman", "helm",
                 "redis-cli", "--", "curl", "ConvertTo-SecureString"),
       validate=cli_value_valid, window=(0, 700), anchored=True, family="secrets.generic",
       follows=(("--", "[a-z]"),)),  # an option's name, not a line of dashes
    detector("password", "secrets",
       rf"(?:{_PASSWORD_NAME})(?:{_PHRASE}{_ASSIGN}|{_BARE}){_PASSWORD_VALUE}",
       folded=("pass", "pwd"), span=1, validate=password_value_valid, window=(0, 320),
       anchored=True, family="secrets.generic",
       follows=(("pass", rf"[wWpPcC \t{_ASSIGN_STARTS}]"),)),  # not "passing", "passes"
    detector("generic-secret", "secrets", rf"(?:{_SECRET_NAME}){_ASSIGN}{_VALUE}",
       folded=("secret", "token", "cred", "key", "auth", "sonar", "sumo"), span=1,
       validate=token_value_valid, window=(0, 320), anchored=True, family="secrets.generic",
       follows=[(word, _AFTER_NAME) for word in ("key", "token", "auth")]),
)  # fmt: skip


# -- long tail from trufflehog's detector families ---------------------------------------------
# trufflehog has some 800 detectors, most of them for one service's key written next to the
# service's name (`hubspot_key = ...`, `X-Abc-Key: ...`, "using key=..."). Rather than a
# detector per service: a credential-shaped value that a weaker key names, and the fixed
# prefixes of the services that have one. Measured on trufflehog's own unit tests by
# bench/corpus/public_trufflehog.py.

_SPACE = re.compile(r"\s")
_PATH_LIKE = re.compile(r"[\w.-]*(?:/[\w.-]+)+/?")
_IPV6_OR_MAC = re.compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}")
_SANCTUM = re.compile(r"\d{1,10}\|[A-Za-z0-9]{40,48}")
_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
# parts of a name or numbers, between separators: ecdsa-sha2-nistp256, en_US.UTF-8
_PART = r"(?:[A-Za-z][a-z]*+\d*+|[A-Z]{1,12}+\d*+|\d++)?+"
_WORDY = re.compile(rf"{_PART}(?:[-_.:/+~@]{_PART})*+")
_NOT_LETTERS = str.maketrans("", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_NOT_DIGITS_ = str.maketrans("", "", "0123456789")
_MASKED = re.compile(r"([#*.•-])\1{3}")  # a mask: ####, ****
_DIGEST = re.compile(r"(?i:sha(?:1|224|256|384|512)|sha3-\d+|md5|blake2[bs]?)[:=-]")


def credential_shaped(value: str) -> bool:
    """A value that a weak name names (`Key=`, `fooKey`, `x_token - '...'`) must look like a
    credential by itself: 16-4,096 characters, no spaces; not a placeholder, reference, code,
    path, UUID, address, version or name; hex of 20 or more characters, or letters mixed with
    digits (or with several capitals among small letters) spread as randomly as a key's."""
    core = _core(value)
    n = len(core)
    if not 16 <= n <= 4096 or _SPACE.search(core) or _UUID.fullmatch(core):
        return False
    if n >= 24 and core.startswith("_"):
        core = core.lstrip("_")  # _DN4IVERUcAbdO2ibFCriJAyfyuaDys7u08...
    if "/" in core and _PATH_LIKE.fullmatch(core) and not any(map(_random_part, core.split("/"))):
        return False  # a path: src/main/resources, v1/users/me (tried first: prompts hold
        # many, and the two tests that keep a value before it, Sanctum's and hex, need no "/")
    if _SANCTUM.fullmatch(core):
        return True  # Laravel Sanctum: id|token
    if _not_a_value(core) or _code(core) or _IPV6_OR_MAC.fullmatch(core):
        return False
    if _DIGEST.match(core) or _MASKED.search(core):
        return False  # a digest (sha256:09aab4...), a mask
    if _HEX.fullmatch(core):
        return n >= 20 and len(set(core)) >= 8 and not core.isdigit()
    if core.isdigit() or _camel_name(core):
        return False  # a number (an id), an identifier
    if _WORDY.fullmatch(core):
        return False  # words and numbers: ecdsa-sha2-nistp256, en_US.UTF-8, build-2024-11-03
    if n < 24 and _placeholder_word(core):
        return False  # "my-test-key-2024", "secret_token_01"
    if (_SNAKE_CASE.fullmatch(core) or _DOTTED.fullmatch(core)) and not any(
        map(_random_part, re.split(r"[_.]", core))
    ):
        return False  # new_password_hash2, settings.auth.key (not sk_d21e2be3622049c7809f)
    letters = len(core) - len(core.translate(_NOT_LETTERS))  # (not a loop over characters:
    digits = len(core) - len(core.translate(_NOT_DIGITS_))  # values run to 4,096)
    if digits < 2 or letters < 4:  # base62 with few digits or none: hfCnuVcYOgiRjlDEmAoRbN
        return letters >= 0.9 * len(core) and _mixed_random(core)
    return len(set(core)) >= 10 and shannon_entropy(core) >= 3.3


_CAMEL_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def _camel_name(text: str) -> bool:
    """Words run together, digits only at the end (getUserProfileById, HTTPSConnectionPool2),
    not base62: as words they are four characters long on average; a key's pieces one or
    two."""
    letters = text.rstrip("0123456789")
    words = _CAMEL_WORD.findall(letters)
    return bool(words) and "".join(words) == letters and len(letters) >= 3.5 * len(words)


# Weak names: `key` as a word or the end of one (Key=, adobe KEY=, apiMaticKey, cosmos_key,
# DUO_SKEY; not monkey, hotkeys), then an index or a kind (`key1`, `key_b64`).
# Keys that are no secret: cache, public, sort, partition, routing keys...
_NOT_SECRET_KEY_WORDS = ("cache", "public", "sort", "partition", "foreign", "idempotency",
    "dedup", "lookup", "object", "row", "routing", "hash", "map", "dict", "translation", "i18n",
    "cursor", "shard", "group", "message", "event", "field", "hot", "short", "index", "unique",
    "websocket", "composite", "range", "sorting")  # fmt: skip
# (after a separator or none: the words end with a letter, so only the one or the other)
_NOT_SECRET_KEYS = (
    "(?i:(?:(?<=[ _.-])" + "".join(f"(?<!{word}[ _.-])" for word in _NOT_SECRET_KEY_WORDS)
    + "|(?<![ _.-])" + "".join(f"(?<!{word})" for word in _NOT_SECRET_KEY_WORDS) + "))"
)  # fmt: skip
# (Cheap tests guard the dear ones: only at a "key", and the exclusions only after a letter.)
_WEAK_KEY = (
    rf"(?=(?i:key))(?:(?<![A-Za-z])(?<![A-Za-z][ _.-])|{_NOT_SECRET_KEYS})"
    r"(?:(?<![A-Za-z])(?:[Kk]ey|KEY)|(?<=(?<![A-Za-z])[Ss])key|(?<=[a-z0-9])Key|(?<=[A-Z0-9_])KEY"
    rf"|(?<=[a-z]){_AFTER_QUALIFIER}key)"  # -storagekey, licensekey
    r"(?:\d{1,2}|(?i:[_.-]?(?:value|b64|base64|hex|str|string)))?(?![a-z])"
)
_STRONG_NAME = r"(?i:secret|token)"
_GO_TYPE = r"(?:[ \t]+string)?"  # const fastlyKey string = "..."
# Besides the assignments of `generic-secret`: `name - 'value'`, and a call's or a tuple's
# name and value (`Header.Set("X-Abc-Key", "...")`, `{ "AccountKey", "..." }`).
_OTHER_ASSIGN = (
    r"""(?:(?:["']?[ \t]+-[ \t]+|["']\]?[ \t]*,[ \t]*|[ \t]*!=[ \t]*)(?=["'])"""
    r"|[ \t]*\|[ \t]*|[ \t]+(?=[A-Za-z0-9_+/=-]{16}))"  # | value (a table), name value
)

# Services whose keys have no prefix or shape of their own, so that only the service's name
# tells them (trufflehog's keyword-only detectors): the name, maybe `api`/`key`/`token`, a
# separator, and a credential-shaped value or a UUID right after it (`mixpanel: …`,
# `onesignal <uuid>`, `HubSpotAPI("<uuid>")`, `textmagic '…'`). Names only that are no
# English word, so that a name is not found in prose.
_VENDOR_NAMES = (
    "alibaba", "amadeus", "apimetrics", "apitemplate", "autodesk", "bitfinex", "blocknative",
    "cloudimage", "cloudmersive", "cloudsmith", "currencycloud", "gocanvas", "hubspot",
    "instamojo", "invoiceocean", "keenio", "liveagent", "loggly", "luno", "magicbell", "mailgun",
    "mattermost", "metaapi", "metabase", "mixpanel", "onesignal", "pyxis", "railway", "redhat",
    "salesmate", "scrapingbee", "scraping_bee", "textmagic", "tokeet", "vouchery", "webex",
    "websitepulse",
)  # fmt: skip
_VENDOR = (
    "(?<![A-Za-z])(?i:" + "|".join(_VENDOR_NAMES) + ")"
    r"(?i:[ _.-]?(?:api|app|bot|key|token|secret|pat|auth|pyxis))*"
)


def vendor_value_valid(value: str) -> bool:
    core = _core(value)
    return credential_shaped(core) or bool(_UUID.fullmatch(core))


_LONG_TAIL: tuple[Detector, ...] = (
    detector("named-credential", "secrets",
       rf"(?:(?:{_WEAK_KEY}|{_STRONG_NAME}\d{{1,2}}){_GO_TYPE}(?:{_ASSIGN}|{_OTHER_ASSIGN})"
       rf"|{_STRONG_NAME}{_OTHER_ASSIGN}){_VALUE}",
       folded=("key", "secret", "token"), span=1,
       validate=credential_shaped, window=(0, 320), anchored=True, family="secrets.generic",
       follows=[(word, _AFTER_NAME) for word in ("key", "token")]),
    detector("vendor-credential", "secrets",
       _VENDOR + r"""[ \t:=,"'`({|-]{1,12}(?:\n[ \t]{0,40}["'`]?)?"""
       r"""([^\s"'`,;<>{}()\[\]|\\]{16,200})""",
       folded=tuple(dict.fromkeys(n.split("_")[0] for n in _VENDOR_NAMES)), span=1,
       validate=vendor_value_valid, window=(0, 280), anchored=True, family="secrets.saas"),
    # Jenkins credentials.xml: an encrypted secret `{AQAAABAAAA...}` (version 1, a 16-byte
    # IV), or a value written after that marker as `{name AQAAABAAA value}`.
    detector("jenkins-secret", "secrets",
       r"\{(?:[\w.-]{1,40}[ \t]+)?(?:AQAAABAAA[ \t]+)?"
       r"((?<=AQAAABAAA )[^{}\s<]{8,400}|AQAAABAAAA[A-Za-z0-9+/]{16,}={0,2})[ \t]?\}",
       keywords=("AQAAABAAA",), span=1,
       validate=lambda v: v.startswith("AQAAABAAAA") or credential_shaped(v)
       or bool(_UUID.fullmatch(v)),
       window=(60, 420), family="secrets.generic"),
    token("service-token", "saas",
          r"\balcht_[0-9A-Za-z]{30}\b|\bapify_api_[A-Za-z0-9]{36}\b|\bbkua_[a-z0-9]{40}\b"
          r"|\bslk_[a-f0-9]{64}\b|\bthog-(?:key-[0-9a-f]{16}|secret-[0-9a-f]{32})\b"
          r"|\bVF\.(?:(?:DM|WS)\.)?[a-fA-F0-9]{24}\.[A-Za-z0-9]{16}\b"
          r"|\b1000\.[a-f0-9]{32}\.[a-f0-9]{32}\b|\bptr_[A-Za-z0-9/_+=-]{20,60}"
          r"|\bramp_(?:id|sec)_[A-Za-z0-9]{40,48}\b|\bsk_pr_[A-Za-z0-9]{1,64}_[a-fA-F0-9]{40}\b"
          r"|\brootly_[a-f0-9]{64}\b|\bBBDC-[A-Za-z0-9+/@_-]{40,50}(?![A-Za-z0-9+/@_-])"
          r"|\bendr\+[A-Za-z0-9-]{16}\b|\bspu-[a-z0-9]{32}\b|\bpgar_[A-Za-z0-9]{27}\b"
          r"|(?<![/\w-])API-[A-Z0-9]{29,34}\b|\bsk_[a-f0-9]{48}\b|\bsk-[A-Za-z0-9]{48}\b"
          r"|\b(?:api|sdk)-[a-z0-9]{8}-[a-z0-9]{4}-4[a-z0-9]{3}-[a-z0-9]{4}-[a-z0-9]{12}\b"
          r"|\b(?:pub|sub)-c-[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}\b"
          r"|\bNRBR-[0-9a-f]{19}\b|\bNRIQ-[A-Za-z0-9_-]{25}|\beu01xx[0-9a-f]{36}-NRMA\b"
          r"|\beu01xx[0-9A-Fa-f]{30}NRAL\b|\bATCTT3xFfG[A-Za-z0-9+/=_-]+=[A-Za-z0-9]{8}\b"
          r"|\b(?:bb_pr|pri)_[a-f0-9]{30,32}\b|\bpcsk_[A-Za-z0-9]{5,6}_[A-Za-z0-9]{60,80}\b",
          ("alcht_", "apify_api_", "bkua_", "slk_", "thog-", "VF.", "1000.", "ptr_", "ramp_",
           "sk_pr_", "rootly_", "BBDC-", "endr+", "spu-", "pgar_", "API-", "sk_", "sk-", "api-",
           "sdk-", "pub-c-", "sub-c-", "NRBR-", "NRIQ-", "eu01xx", "ATCTT3xFfG",
           "bb_pr_", "pri_", "pcsk_"), 200, validate=random_tail_valid),
)  # fmt: skip

DETECTORS: tuple[Detector, ...] = (
    _PRIVATE_KEYS + _CLOUD + _CODE_HOSTING + _CHAT + _PAYMENTS + _AI + _SAAS + _GENERIC
    + _LONG_TAIL
)  # fmt: skip
