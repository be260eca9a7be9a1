"""trufflehog's detector unit tests as labelled samples, read in place from its git mirror.

    python bench/corpus/public_trufflehog.py [--repo DIR] [--show-missed N] [--family F]

trufflehog (some 800 detectors) tests each detector's pattern on inputs it must match
(`input: validPattern, want: []string{validPattern}`) and inputs it must not (`want: nil`).
The positive ones are a public, third-party set of secret shapes with the context they are
usually written in, so they measure the long tail that the project's own corpus does not
generate. Nothing of trufflehog is copied into this repository: the tests are read from the
bare mirror with `git cat-file`, and their Go string expressions (literals, constants, `+`,
`fmt.Sprintf`, `strings.Repeat`) are evaluated by a small reader of that subset of Go.

A case is the test's input as the test has it, with where each expected secret is in it;
bench/public_samples.py takes one sample (its `PublicSample`) per secret. An expectation
that is several values run together (trufflehog reports key and id of a pair as one string)
is cut into the parts the input holds (an expectation that is a JSON object, into its
values), and the part taken for the secret is the longest that is no id, URL, host name or
email address (the later of two as long: ids come first); of a connection URL with a
password, the password. A family's `common_test.go` tests what its detectors share (finders
of tenant ids, client ids, instance URLs): its cases are read but set apart, counted by
family as ids and URLs, not secrets (`set_apart`); so is an expected value that the input
names an id or a user (`"hive_id": "…"`, `sms_id: …`, `User=…`), and a part so named is not
taken for the secret of a pair. Cases the test expects not to
match, and cases whose input or expectation uses Go this reader does not evaluate, are
skipped (and counted). `main` measures aiwarden alone, quickly: a case counts as found when
a finding overlaps each of its secrets, pasted into a question.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus.public_sources import PublicSample

MIRROR = Path("/work/.mirror/trufflesecurity+trufflehog/repo")


@dataclass(frozen=True, slots=True)
class Case:
    """A positive test case: its input, and where each expected secret is in it."""

    origin: str  # file and test case
    family: str  # the detector's directory
    text: str
    spans: tuple[tuple[int, int], ...]
    ids: tuple[tuple[int, int], ...] = ()  # expected values the input names ids: no secrets


# -- a reader of Go's string expressions ------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)
    |(?P<raw>`[^`]*`)|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<rune>'(?:[^'\\\n]|\\.)+')
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<number>[0-9][0-9a-fA-FxX_.]*)|(?P<op>:=|\.\.\.|&&|\|\||==|!=|<=|>=|[-+*/%&|^!<>=(){}\[\],;:.])""",
    re.DOTALL | re.VERBOSE,
)
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}  # fmt: skip
_ESCAPE = re.compile(r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})"
                     r"|U([0-9a-fA-F]{8})|([0-7]{3}))")  # fmt: skip


def _unquote(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1].replace("\r", "")

    def one(m: re.Match) -> str:
        simple, hex2, hex4, hex8, octal = m.groups()
        if simple:
            return _ESCAPES[simple]
        if octal:
            return chr(int(octal, 8))
        return chr(int(hex2 or hex4 or hex8, 16))

    return _ESCAPE.sub(one, literal[1:-1])


@dataclass(slots=True)
class Token:
    kind: str  # string | ident | number | op | rune
    value: str


def tokens(source: str) -> list[Token]:
    out = []
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup
        if kind in ("space", "comment"):
            continue
        if kind in ("raw", "string"):
            out.append(Token("string", _unquote(m.group())))
        else:
            out.append(Token(kind, m.group()))
    return out


class Unknown(Exception):
    """An expression this reader does not evaluate."""


_VERB = re.compile(r"%[-+# 0]*(\d+|\*)?(?:\.\d+)?([a-zA-Z%])")


def _sprintf(template: str, args: list[object]) -> str:
    values = iter(args)

    def one(m: re.Match) -> str:
        verb = m.group(2)
        if verb == "%":
            return "%"
        value = next(values)
        if verb == "q":
            return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        if verb in "sdv":
            return str(value)
        raise Unknown(f"verb %{verb}")

    try:
        return _VERB.sub(one, template)
    except StopIteration:
        raise Unknown("too few arguments") from None


class GoFile:
    """One test file: its tokens, and the values of the names it assigns (constants and
    variables): the file's own, and each function's, which see the file's."""

    def __init__(self, source: str) -> None:
        self.t = tokens(source)
        self.functions = self._functions()
        inside = {i for a, b in self.functions for i in range(a, b)}
        self.file_env: dict[str, object] = {}
        self.env = self.file_env
        for _ in range(2):  # a package constant may be defined after its first use
            self._assignments(i for i in range(len(self.t)) if i not in inside)

    def _functions(self) -> list[tuple[int, int]]:
        """The token ranges of the bodies of top-level functions."""
        t, bodies, depth, i = self.t, [], 0, 0
        while i < len(t):
            if t[i].value == "func" and depth == 0:
                parens, j = 0, i + 1
                while j < len(t) and not (t[j].value == "{" and parens == 0):
                    parens += {"(": 1, ")": -1}.get(t[j].value, 0)
                    j += 1
                start, nest = j, 0
                while j < len(t):
                    nest += {"{": 1, "}": -1}.get(t[j].value, 0)
                    if nest == 0:
                        break
                    j += 1
                bodies.append((start, j + 1))
                i = j + 1
                continue
            depth += {"{": 1, "}": -1, "(": 1, ")": -1}.get(t[i].value, 0)
            i += 1
        return bodies

    def enter(self, body: tuple[int, int]) -> None:
        """Evaluate in a function: the file's names and the function's own."""
        self.env = dict(self.file_env)
        self._assignments(range(*body))

    def _assignments(self, positions) -> None:
        t = self.t
        for i in positions:
            if i + 2 >= len(t) or t[i].kind != "ident" or (i and t[i - 1].value in (".", ",")):
                continue
            j = i + 1
            if t[j].kind == "ident" and t[j].value == "string":
                j += 1  # var name string = ...
            if t[j].value in ("=", ":="):
                try:
                    value, _ = self.expr(j + 1)
                except (Unknown, IndexError, KeyError, TypeError, ValueError):
                    continue
                self.env[t[i].value] = value

    # expression := operand ('+' operand)*; strings, lists of strings, ints
    def expr(self, i: int) -> tuple[object, int]:
        value, i = self.operand(i)
        while i < len(self.t) and self.t[i].value == "+":
            right, i = self.operand(i + 1)
            if not (isinstance(value, str) and isinstance(right, str)):
                raise Unknown("+ of non-strings")
            value += right
        return value, i

    def _call_args(self, i: int) -> tuple[list[object], int]:
        """Arguments of a call whose '(' is at i."""
        if self.t[i].value != "(":
            raise Unknown("not a call")
        args, i = [], i + 1
        while self.t[i].value != ")":
            value, i = self.expr(i)
            args.append(value)
            if self.t[i].value == ",":
                i += 1
            elif self.t[i].value != ")":
                raise Unknown("argument")
        return args, i + 1

    def _list(self, i: int) -> tuple[list[object], int]:
        """`{a, b, ...}` at i."""
        if self.t[i].value != "{":
            raise Unknown("not a list")
        items, i = [], i + 1
        while self.t[i].value != "}":
            value, i = self.expr(i)
            items.append(value)
            if self.t[i].value == ",":
                i += 1
            elif self.t[i].value != "}":
                raise Unknown("list item")
        return items, i + 1

    def _set(self, i: int) -> tuple[list[object], int]:
        """`{"a": {}, "b": {}}` at i: the keys."""
        if self.t[i].value != "{":
            raise Unknown("not a set")
        keys, i = [], i + 1
        while self.t[i].value != "}":
            key, i = self.expr(i)
            if [x.value for x in self.t[i : i + 3]] != [":", "{", "}"]:
                raise Unknown("set item")
            keys.append(key)
            i += 3
            if self.t[i].value == ",":
                i += 1
        return keys, i + 1

    def operand(self, i: int) -> tuple[object, int]:
        t = self.t
        tok = t[i]
        if tok.kind == "string":
            return tok.value, i + 1
        if tok.kind == "number":
            try:
                return int(tok.value), i + 1
            except ValueError:
                raise Unknown("number") from None
        if tok.value == "(":
            value, i = self.expr(i + 1)
            if t[i].value != ")":
                raise Unknown("parenthesis")
            return value, i + 1
        if tok.value == "[" and t[i + 1].value == "]" and t[i + 2].value == "string":
            items, i = self._list(i + 3)  # []string{...}
            return items, i
        if [x.value for x in t[i : i + 5]] == ["[", "]", "[", "]", "string"]:
            items, i = self._list(i + 5)  # [][]string{{...}, ...}: flattened
            return [v for item in items for v in (item if isinstance(item, list) else [item])], i
        if tok.value == "map" and t[i + 4].value == "struct":
            return self._set(i + 7)  # map[string]struct{}{"a": {}, ...}: its keys
        if tok.value == "[" and t[i + 1].value == "]" and t[i + 2].value == "byte":
            args, i = self._call_args(i + 3)  # []byte("...")
            return args[0], i
        if tok.value == "nil":
            return None, i + 1
        if tok.kind != "ident":
            raise Unknown(tok.value)
        name = tok.value
        if i + 1 < len(t) and t[i + 1].value == "(":
            args, j = self._call_args(i + 1)
            return self._call(name, args), j
        if name in self.env:
            return self.env[name], i + 1
        raise Unknown(name)

    @staticmethod
    def _call(name: str, args: list[object]) -> object:
        if name == "fmt.Sprintf" and isinstance(args[0], str):
            return _sprintf(args[0], args[1:])
        if name == "strings.Repeat" and isinstance(args[0], str) and isinstance(args[1], int):
            return args[0] * args[1]
        if name == "strings.Join" and isinstance(args[0], list):
            return str(args[1]).join(map(str, args[0]))
        if name == "strings.ToUpper":
            return str(args[0]).upper()
        if name == "strings.ToLower":
            return str(args[0]).lower()
        if name in ("string", "strings.TrimSpace") and len(args) == 1:
            return str(args[0]).strip() if name != "string" else args[0]
        raise Unknown(name)

    def blocks(self, start: int, end: int) -> Iterator[dict[str, int]]:
        """Every composite literal with keyed fields in t[start:end]: field name -> where its
        value starts."""
        stack: list[dict[str, int]] = []
        t = self.t
        for i in range(start, end):
            tok = t[i]
            if tok.value == "{":
                stack.append({})
            elif tok.value == "}":
                if stack:
                    fields = stack.pop()
                    if fields:
                        yield fields
            elif (
                stack
                and tok.kind == "ident"
                and i + 1 < len(t)
                and t[i + 1].value == ":"
                and t[i - 1].value in ("{", ",")
            ):
                stack[-1].setdefault(tok.value, i + 2)

    def calls(self, name: str, start: int, end: int) -> Iterator[int]:
        """Where the arguments of each call of `name` (a method's name too) start."""
        t = self.t
        for i in range(start, end - 1):
            if t[i].kind == "ident" and t[i].value.split(".")[-1] == name and t[i + 1].value == "(":
                yield i + 2


# -- the test cases -----------------------------------------------------------------------------

_INPUT_FIELDS = ("input", "Input", "data", "in", "text", "payload", "content", "s")
_WANT_FIELDS = (
    "want",
    "Expected",
    "expected",
    "expectedPairs",
    "wantSecrets",
    "wantRawV2",
    "match",
)
_MATCH_FIELDS = ("shouldMatch", "wantCount", "wantMatched")  # false or 0: a negative case
_RAW_FIELDS = ("RawV2", "Raw")


@dataclass
class Tally:
    """What was read, and what was skipped and why."""

    files: int = 0
    cases: int = 0
    negative: int = 0
    unreadable: Counter = field(default_factory=Counter)  # reason -> cases
    set_apart: Counter = field(default_factory=Counter)  # family -> cases of no secret


def _want_values(go: GoFile, start: int) -> list[str] | None:
    """The expected strings of a case (None: it expects nothing)."""
    t = go.t
    if t[start].value == "[" and t[start + 2].value.endswith("Result"):
        # []detectors.Result{{Raw: []byte("...")}, ...}: the Raw of each result
        depth, i, values = 0, start + 3, []
        while i < len(t):
            if t[i].value == "{":
                depth += 1
            elif t[i].value == "}":
                depth -= 1
                if depth == 0:
                    break
            elif t[i].value in _RAW_FIELDS and t[i + 1].value == ":" and t[i - 1].value in "{,":
                value, _ = go.expr(i + 2)
                if isinstance(value, str) and value:
                    values.append(value)
                    # RawV2 before Raw in a result: take one of them
            i += 1
        return values or None
    value, _ = go.expr(start)
    if value is None or value == [] or value is False or value == "":
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v] or None
    raise Unknown("want")


_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# What comes with a key in trufflehog's results but is no secret: an id, an endpoint, an
# account. A URL, a host name (labels, a lower-case top-level domain, maybe a port), an
# email address, a path of words and UUIDs (organizations/<uuid>/apiKeys/<uuid>).
_NOT_SECRET_PART = re.compile(
    r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
    r"|\W?[a-z][a-z0-9+.-]*://\S*"
    r"|\W?(?:[A-Za-z0-9-]+\.)+[a-z]{2,24}(?::\d{1,5})?/?\W?"
    r"|[^@\s]+@[^@\s]+\.[a-z]{2,24}"
    r"|(?:[A-Za-z]+|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})"
    r"(?:/(?:[A-Za-z]+|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}))+"
)
# What the input names an id, a user or an endpoint, right before the value: `hive_id": "`,
# `id: `, `User=`, `sms_id: `, `bulksmsID := "`, `x_domain: ` (not `secret_id`, a secret; not
# `webhook_url`: a webhook URL is a secret)
_ID_NAME = re.compile(
    r"(?:(?<![A-Za-z])|(?<=[a-z_-])(?=[A-Z])|(?<=_|-))(?<!/)(?<!secret_)(?<!secret-)(?<!secret)"
    r"(?:id|Id|ID|user|User|USER|username|userName|Username|email|Email|login"
    r"|domain|Domain|host|Host)\d{0,2}"
    r"""["'\]]?[ \t]*(?::=|=>|[:=]|[ \t]-)?[ \t]*["'`({]?[ \t]*\Z"""
)


def named_as_id(text: str, start: int) -> bool:
    """Whether the input names the value at `start` an id or a user (`x_id: "..."`)."""
    return bool(_ID_NAME.search(text, max(0, start - 40), start))


# A connection URL with a password: the password is its secret.
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^:/@\s]*:([^@/\s]+)@\S*")


def _find_any(text: str, value: str) -> tuple[int, int] | None:
    """Where `value` is in the input: as it is, or JSON-escaped (a key's `\n` written `\\n`),
    once or twice (JSON in a JSON string)."""
    once = json.dumps(value)[1:-1]
    for form in dict.fromkeys((value, once, json.dumps(once)[1:-1])):
        at = text.find(form)
        if at >= 0:
            return at, at + len(form)
    return None


def locate(text: str, secret: str) -> tuple[int, int] | None:
    """Where an expected secret is in the input: as a whole, or cut into the parts the input
    holds (a key and its id reported as one string, or as a JSON object of named values) and
    then the part that is the secret (see `_secret_part`). A connection URL's secret is its
    password, when the input holds it."""
    url = _URL_PASSWORD.fullmatch(secret)
    if url:
        password = _find_any(text, unquote(url.group(1)))
        if password is not None:
            return password
    values = _json_values(secret)
    if values is not None:
        parts = [span for v in values if (span := _find_any(text, v)) is not None]
        return _secret_part(text, parts) if parts else None
    at = text.find(secret)
    if at >= 0:
        return at, at + len(secret)
    parts: list[tuple[int, int]] = []
    rest = secret
    while rest:
        for n in range(len(rest), 3, -1):  # the longest prefix the input holds
            at = text.find(rest[:n])
            if at >= 0:
                parts.append((at, at + n))
                rest = rest[n:]
                break
        else:
            rest = rest[1:]  # a separator trufflehog put between the parts
    return _secret_part(text, parts) if parts else None


def _json_values(secret: str) -> list[str] | None:
    """The string values of an expectation that is a JSON object ({"username": ...,
    "password": ...}), or None."""
    if not secret.startswith("{"):
        return None
    try:
        value = json.loads(secret)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return [v for v in value.values() if isinstance(v, str) and v]


def _secret_part(text: str, parts: list[tuple[int, int]]) -> tuple[int, int]:
    """The secret of a pair or triple: of the parts that are no id, URL, host or email
    address, and that the input does not name an id or a user (when there is one), the
    longest, the later of two as long (ids come first)."""
    secret = [p for p in parts if not _NOT_SECRET_PART.fullmatch(text[p[0] : p[1]])
              and not named_as_id(text, p[0])] or parts  # fmt: skip
    return max(secret, key=lambda p: (p[1] - p[0], p[0]))


def family_of(path: str) -> str:
    """pkg/detectors/<family>[/<sub>][/v2]/x_test.go -> the innermost directory not a version."""
    parts = [p for p in path.split("/")[2:-1] if not re.fullmatch(r"v\d+", p)]
    return parts[-1] if parts else ""


def cases(path: str, source: str, tally: Tally) -> Iterator[Case]:
    go = GoFile(source)
    family = family_of(path)
    for body in go.functions:
        go.enter(body)
        found = 0
        for number, fields in enumerate(go.blocks(*body)):
            input_at = next((fields[f] for f in _INPUT_FIELDS if f in fields), None)
            want_at = next((fields[f] for f in _WANT_FIELDS if f in fields), None)
            if input_at is None or want_at is None:
                continue
            found += 1
            if any(go.t[fields[f]].value in ("false", "0") for f in _MATCH_FIELDS if f in fields):
                tally.negative += 1
                continue
            name = go.t[fields["name"]].value if "name" in fields else str(number)
            sample = _sample(go, f"{path}#{name}", family, input_at, want_at, tally)
            if sample is not None:
                yield sample
        if not found:  # one case a function: FromData(ctx, false, []byte(input)), then want
            yield from _function_case(go, path, family, body, tally)


def _sample(go: GoFile, source: str, family: str, input_at: int, want_at: int | list[str],
            tally: Tally) -> Case | None:  # fmt: skip
    tally.cases += 1
    try:
        text, _ = go.expr(input_at)
        wants = want_at if isinstance(want_at, list) else _want_values(go, want_at)
    except (Unknown, IndexError, KeyError, TypeError, ValueError) as why:
        tally.unreadable[f"unevaluated: {str(why)[:30]}"] += 1
        return None
    if not wants:
        tally.negative += 1
        return None
    if not isinstance(text, str):
        tally.unreadable["input not a string"] += 1
        return None
    spans = []
    for secret in dict.fromkeys(wants):
        span = locate(text, secret)
        if span is not None and span not in spans:
            spans.append(span)
    if not spans:
        tally.unreadable["secret not in input"] += 1
        return None
    ids = [span for span in spans if named_as_id(text, span[0])]
    secrets = [span for span in spans if span not in ids]
    return Case(source, family, text, tuple(sorted(secrets)), tuple(sorted(ids)))


def _function_case(go: GoFile, path: str, family: str, body: tuple[int, int],
                   tally: Tally) -> Iterator[Case]:  # fmt: skip
    """A test function that is one case: the data given to FromData, and what it expects:
    a `want` list, or the values results are compared with (`Equal(key, ...Raw)`)."""
    t = go.t
    data = [j + 4 for i in go.calls("FromData", *body) for j in range(i, i + 8)
            if [x.value for x in t[j : j + 4]] == ["[", "]", "byte", "("]]  # fmt: skip
    if len(data) != 1:
        return
    a, b = body
    if any(t[i].value in ("Empty", "Nil") for i in range(a, b)):
        tally.negative += 1
        return
    wants: list[str] = []
    for i in range(a, b - 2):
        if t[i].value in ("want", "wantedResult", "expected") and t[i + 1].value in (":=", "="):
            try:
                wants.extend(_want_values(go, i + 2) or ())
            except (Unknown, IndexError, KeyError, TypeError, ValueError):
                continue
    for at in go.calls("Equal", a, b):
        try:
            value, end = go.expr(at)
        except (Unknown, IndexError, KeyError, TypeError, ValueError):
            continue
        rest = " ".join(x.value for x in t[end : end + 12])
        if isinstance(value, str) and "Raw" in rest:
            wants.append(value)
    # func Name(...) or func (receiver) Name(...): the last name before a '(' of the header
    header = range(max(0, a - 30), a)
    func = max((i for i in header if t[i].value == "func"), default=a)
    name = next((t[i].value for i in range(func + 1, a) if t[i].kind == "ident"
                 and t[i + 1].value == "(" and t[i - 1].value != "*"), "")  # fmt: skip
    sample = _sample(go, f"{path}#{name}", family, data[0], wants, tally)
    if sample is not None:
        yield sample


def _git(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["git", f"--git-dir={repo}", *args], input=input, capture_output=True,
                          check=True).stdout  # fmt: skip


def _show_all(repo: Path, paths: list[str]) -> list[str]:
    """The contents of `paths` at HEAD, through one `git cat-file --batch`."""
    out = _git(repo, "cat-file", "--batch", input="".join(f"HEAD:{p}\n" for p in paths).encode())
    sources, at = [], 0
    for _ in paths:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        sources.append(out[header_end + 1 : header_end + 1 + size].decode("utf-8", "replace"))
        at = header_end + 1 + size + 1
    return sources


def test_files(repo: Path) -> list[str]:
    """The unit tests of detectors (pkg/detectors/<family>/...), not the integration tests
    (which talk to the services; some are spelled `_integeration_test.go`). A family's
    `common_test.go` tests what its detectors share, not a detector: azure_entra's finders
    of tenant and client ids, atlassiandatacenter's of instance URLs. What they expect is an
    id or a URL, no secret: `trufflehog_cases` reads them and sets them apart (Tally)."""
    listing = _git(repo, "ls-tree", "-r", "--name-only", "HEAD", "pkg/detectors").decode()
    return [p for p in listing.splitlines()
            if p.endswith("_test.go") and "_integ" not in p.rsplit("/", 1)[1]
            and p.count("/") >= 3]  # fmt: skip


def trufflehog_cases(repo: Path = MIRROR, tally: Tally | None = None) -> list[Case]:
    """The positive cases of every detector's unit tests at the mirror's HEAD."""
    tally = tally if tally is not None else Tally()
    paths = test_files(repo)
    found: list[Case] = []
    for path, source in zip(paths, _show_all(repo, paths), strict=True):
        tally.files += 1
        read = list(cases(path, source, tally))
        if path.endswith("/common_test.go"):
            tally.set_apart[family_of(path)] += sum(len(c.spans) + len(c.ids) for c in read)
            continue
        for case in read:
            if case.ids:
                tally.set_apart[case.family] += len(case.ids)
            if case.spans:
                found.append(case)
    return found


def trufflehog_samples(repo: Path = MIRROR, tally: Tally | None = None) -> list[PublicSample]:
    """bench/public_samples.py's source: one sample per expected secret of each case."""
    return [PublicSample("trufflehog", case.family, case.text, start, end, case.origin)
            for case in trufflehog_cases(repo, tally) for start, end in case.spans]  # fmt: skip


def set_apart(repo: Path = MIRROR) -> Counter:
    """The expected values read but not measured, by family: those of `common_test.go`
    files, and those the input names an id or a user (`hive_id: "..."`)."""
    tally = Tally()
    trufflehog_cases(repo, tally)
    return tally.set_apart


# -- the measurement ----------------------------------------------------------------------------

PROMPT = "Can you help me with this? It fails and I do not see why:\n\n```\n{}\n```\n\nThanks!"


def in_prompt(sample: Case) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The sample pasted into a question, and where its secrets are there."""
    shift = PROMPT.index("{}")
    text = PROMPT.format(sample.text)
    return text, tuple((a + shift, b + shift) for a, b in sample.spans)


def aiwarden_finder(tree: Path):
    """The default redaction profile of the tree's shipped policy, through the library (as
    bench/redaction_bench.py measures it): text -> spans of its findings."""
    sys.path.insert(0, str(tree))
    from proxy.policy.loader import load_policy
    from proxy.redact.detectors import scan

    detectors = load_policy(tree / "policies").redaction_profiles["default"].detectors
    return lambda text: [(f.start, f.end, f.type) for f in scan(text, detectors)]


def measure(samples: list[Case], find) -> dict[str, Counter]:
    """Per family: samples, and samples whose every secret a finding overlaps."""
    by_family: dict[str, Counter] = {}
    for sample in samples:
        text, spans = in_prompt(sample)
        findings = find(text)
        hit = all(any(a < e and s < b for s, e, _ in findings) for a, b in spans)
        row = by_family.setdefault(sample.family, Counter())
        row["n"] += 1
        row["found"] += hit
    return by_family


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=MIRROR, help="trufflehog's git mirror")
    parser.add_argument(
        "--tree",
        type=Path,
        default=Path(__file__).resolve().parents[2],
        help="the aiwarden tree to measure (default: this one)",
    )
    parser.add_argument(
        "--show-missed",
        type=int,
        default=0,
        metavar="N",
        help="print N missed samples (public test data) with their secrets",
    )
    parser.add_argument("--family", help="only this family")
    args = parser.parse_args(argv)

    tally = Tally()
    samples = trufflehog_cases(args.repo, tally)
    if args.family:
        samples = [s for s in samples if s.family == args.family]
    find = aiwarden_finder(args.tree)
    by_family = measure(samples, find)
    n = sum(r["n"] for r in by_family.values())
    found = sum(r["found"] for r in by_family.values())
    under = sorted((r["found"] / r["n"], f) for f, r in by_family.items()
                   if r["found"] < 0.95 * r["n"])  # fmt: skip
    print(f"trufflehog {_git(args.repo, 'log', '-1', '--format=%h').decode().strip()}: "
          f"{tally.files} test files, {tally.cases} cases: {tally.negative} negative, "
          f"{sum(tally.unreadable.values())} not evaluated; set apart (ids and URLs, "
          f"not secrets): {dict(tally.set_apart)}")  # fmt: skip
    print(f"cases {n}, families {len(by_family)}, recall {100 * found / max(n, 1):.1f} % "
          f"({found}), families at 100 %: {sum(r['found'] == r['n'] for r in by_family.values())}"
          f", under 95 %: {len(under)}")  # fmt: skip
    print("under 95 %: " + ", ".join(f"{f} {100 * r:.0f}" for r, f in under))
    if args.show_missed:
        shown = 0
        for sample in samples:
            text, spans = in_prompt(sample)
            findings = find(text)
            if all(any(a < e and s < b for s, e, _ in findings) for a, b in spans):
                continue
            print(
                f"\n--- {sample.origin} [{sample.family}] secrets: "
                f"{[text[a:b] for a, b in spans]} found: {[text[s:e] for s, e, _ in findings]}"
            )
            print(sample.text.strip()[:600])
            shown += 1
            if shown >= args.show_missed:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
