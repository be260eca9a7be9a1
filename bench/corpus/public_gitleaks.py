"""gitleaks' own test cases: each rule's `tps` (and `fps`) in cmd/generate/config/rules/*.go.

The Go is not run: a small evaluator reads the statements that build the lists (string
literals, `+`, `[]string{...}`, `append`, `fmt.Sprintf("%s")`, local variables) and the
helpers the rules call: `utils.GenerateSampleSecrets` (its templates are read from
cmd/generate/config/utils/generate.go, so they follow gitleaks), `utils.GenerateSampleSecret`,
the `utils.AlphaNumeric("20")`-style character classes, and `secrets.NewSecret(regex)`, for
which a sample is drawn from the regex with Python's own regex parser, seeded per rule so a
run is reproducible. A statement it cannot evaluate (a loop, base64 in Go) is skipped and
counted. Family = rule id. The secret's span is the `{s}` of a generated sample; in a literal
case, the rule's secret group in a match of its regex (config/gitleaks.toml), else the
longest token.
"""

from __future__ import annotations

import contextlib
import random
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from corpus.public_sources import PublicSample, list_files, read_text, sample

RULES_DIR = "cmd/generate/config/rules"
GENERATE_GO = "cmd/generate/config/utils/generate.go"
CONFIG_TOML = "config/gitleaks.toml"


class Unsupported(Exception):
    """Go this evaluator does not read."""


@dataclass(frozen=True, slots=True)
class Case:
    """A test case as built: its text and, when generated, the secret it holds."""

    text: str
    secret: str | None = None


# -- tokens ------------------------------------------------------------------------------------

_TOKENS = re.compile(
    r"(?P<comment>//[^\n]*|/\*.*?\*/)"
    r"|(?P<raw>`[^`]*`)"
    r'|(?P<str>"(?:\\.|[^"\\\n])*")'
    r"|(?P<rune>'(?:\\.|[^'\\\n])+')"
    r"|(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
    r"|(?P<num>\d+)"
    r"|(?P<nl>\n)"
    r"|(?P<op>\.\.\.|:=|\+=|==|!=|&&|\|\||[-+*/%(){}\[\],;:=&!<>.|^])"
    r"|(?P<space>[ \t\r]+)",
    re.DOTALL,
)


def tokens(source: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKENS.finditer(source):
        kind = m.lastgroup or ""
        if kind in ("comment", "space"):
            if kind == "comment" and "\n" in m.group():
                out.append(("nl", "\n"))
            continue
        out.append((kind, m.group()))
    return out


def go_string(token: str) -> str:
    """The value of a Go string literal (interpreted escapes as Python reads them)."""
    if token.startswith("`"):
        return token[1:-1]
    body = token[1:-1]
    return re.sub(
        r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[0-7]{3}|.)",
        lambda m: _ESCAPES.get(m.group(1)) or _escape(m.group(1)),
        body,
    )


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}  # fmt: skip


def _escape(code: str) -> str:
    if code[0] in "xu":
        return chr(int(code[1:], 16))
    if code.isdigit():
        return chr(int(code, 8))
    return "\\" + code


# -- a sample from a regular expression --------------------------------------------------------


def regex_sample(pattern: str, rng: random.Random) -> str:
    """A string the regex matches, drawn at random (repeats without bound get 0-3 more)."""
    from re import _constants as c
    from re import _parser as p

    pattern = re.sub(r"\(\?i\)", "", pattern)
    parsed = p.parse(pattern)
    groups: dict[int, str] = {}

    def pick_in(items: list) -> str:
        chars: list[str] = []
        negate = False
        for op, av in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                chars.append(chr(av))
            elif op is c.RANGE:
                chars.extend(chr(i) for i in range(av[0], av[1] + 1))
            elif op is c.CATEGORY:
                chars.extend(_CATEGORY.get(str(av), "x"))
        if negate:
            chars = [ch for ch in _PRINTABLE if ch not in chars]
        return rng.choice(chars)

    def gen(items) -> str:
        out = []
        for op, av in items:
            if op is c.LITERAL:
                out.append(chr(av))
            elif op is c.NOT_LITERAL:
                out.append(rng.choice([ch for ch in _PRINTABLE if ord(ch) != av]))
            elif op is c.ANY:
                out.append(rng.choice(_ALNUM))
            elif op is c.IN:
                out.append(pick_in(av))
            elif op is c.CATEGORY:
                out.append(rng.choice(_CATEGORY.get(str(av), "x")))
            elif op is c.BRANCH:
                out.append(gen(rng.choice(av[1])))
            elif op is c.SUBPATTERN:
                text = gen(av[3])
                if av[0]:
                    groups[av[0]] = text
                out.append(text)
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
                low, high, inner = av
                high = low + 3 if high is c.MAXREPEAT else high
                out.extend(gen(inner) for _ in range(rng.randint(low, high)))
            elif op is c.GROUPREF:
                out.append(groups.get(av, ""))
            elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
                continue
            else:
                raise Unsupported(f"regex op {op}")
        return "".join(out)

    return gen(parsed)


_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_PRINTABLE = _ALNUM + "-_.~+/=!#$%&*"
_CATEGORY = {
    "CATEGORY_DIGIT": "0123456789",
    "CATEGORY_WORD": _ALNUM + "_",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": _ALNUM,
    "CATEGORY_NOT_WORD": "-.",
    "CATEGORY_NOT_DIGIT": "abcxyz",
}


# -- evaluating the Go that builds tps ---------------------------------------------------------


class Evaluator:
    """Expressions of the rules' Go over an environment of already evaluated names."""

    def __init__(self, templates: list[str], rng: random.Random, env: dict) -> None:
        self.templates, self.rng, self.env = templates, rng, env
        self.toks: list[tuple[str, str]] = []
        self.i = 0

    # the token stream
    def peek(self, skip_nl: bool = False) -> tuple[str, str]:
        j = self.i
        while skip_nl and j < len(self.toks) and self.toks[j][0] == "nl":
            j += 1
        return self.toks[j] if j < len(self.toks) else ("eof", "")

    def take(self, skip_nl: bool = False) -> tuple[str, str]:
        while skip_nl and self.peek()[0] == "nl":
            self.i += 1
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.take(skip_nl=True)
        if tok[1] != value:
            raise Unsupported(f"expected {value!r}, got {tok[1]!r}")

    # expressions
    def expr(self, nested: bool = False) -> object:
        value = self.term(nested)
        while self.peek(skip_nl=nested)[1] == "+":
            self.take(skip_nl=nested)
            value = _add(value, self.term(nested))
        return value

    def term(self, nested: bool) -> object:
        kind, text = self.take(skip_nl=True)
        if kind in ("str", "raw"):
            return go_string(text)
        if kind == "num":
            return text
        if text == "(":
            value = self.expr(nested=True)
            self.expect(")")
            return value
        if text == "[":
            self.expect("]")
            self.take()  # the element type
            return self.elements("}")
        if kind == "name":
            if self.peek()[1] == "(":
                self.take()
                args = self.arguments()
                return self.call(text, args)
            if self.peek()[1] == "{":
                raise Unsupported(f"composite literal {text}")
            if text in self.env:
                return self.env[text]
            if text == "nil":
                return []
            raise Unsupported(f"unknown name {text}")
        raise Unsupported(f"unexpected {text!r}")

    def elements(self, close: str) -> list:
        self.expect("{")
        items: list = []
        while self.peek(skip_nl=True)[1] != close:
            items.append(self.expr(nested=True))
            if self.peek(skip_nl=True)[1] == ",":
                self.take(skip_nl=True)
        self.take(skip_nl=True)
        return items

    def arguments(self) -> list:
        args: list = []
        while self.peek(skip_nl=True)[1] != ")":
            value = self.expr(nested=True)
            if self.peek(skip_nl=True)[1] == "...":
                self.take(skip_nl=True)
                value = _Spread(value)
            args.append(value)
            if self.peek(skip_nl=True)[1] == ",":
                self.take(skip_nl=True)
        self.take(skip_nl=True)
        return args

    def call(self, name: str, args: list) -> object:
        texts = [a if isinstance(a, str) else None for a in args]
        classes = {"utils.Numeric": "[0-9]{%s}", "utils.Hex": "[a-f0-9]{%s}",
                   "utils.AlphaNumeric": "[a-z0-9]{%s}",
                   "utils.AlphaNumericExtendedShort": "[a-z0-9_-]{%s}",
                   "utils.AlphaNumericExtended": r"[a-z0-9=_\-]{%s}",
                   "utils.AlphaNumericExtendedLong": r"[a-z0-9\/=_\+\-]{%s}"}  # fmt: skip
        if name in classes and texts[0] is not None:
            return classes[name] % texts[0]
        if name == "utils.Hex8_4_4_4_12":
            return r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        if name in ("secrets.NewSecret", "newPlausibleSecret") and texts[0] is not None:
            secret = regex_sample(texts[0], self.rng)
            while name == "newPlausibleSecret" and not re.search("[1-9]", secret):
                secret = regex_sample(texts[0], self.rng)
            return secret
        if name == "utils.GenerateSampleSecrets" and None not in texts[:2]:
            ident, secret = texts[0], texts[1]
            return [Case(t.replace("{i}", ident).replace("{I}", ident.upper())
                         .replace("{s}", secret), secret) for t in self.templates]  # fmt: skip
        if name == "utils.GenerateSampleSecret" and None not in texts[:2]:
            return Case(f'{texts[0]}_api_token = "{texts[1]}"', texts[1])
        if name == "fmt.Sprintf" and texts and texts[0] is not None:
            return _sprintf(texts[0], args[1:])
        if name == "append" and args:
            out = list(_as_list(args[0]))
            for a in args[1:]:
                out.extend(_as_list(a.value) if isinstance(a, _Spread) else [a])
            return out
        raise Unsupported(f"call {name}")


@dataclass(frozen=True, slots=True)
class _Spread:
    value: object


def _as_list(value: object) -> list:
    if isinstance(value, list):
        return value
    raise Unsupported("not a list")


def _text(value: object) -> str:
    if isinstance(value, Case):
        return value.text
    if isinstance(value, str):
        return value
    raise Unsupported("not a string")


def _add(a: object, b: object) -> object:
    if isinstance(a, list) or isinstance(b, list):
        raise Unsupported("+ of lists")
    secret = next((v.secret for v in (a, b) if isinstance(v, Case)), None)
    text = _text(a) + _text(b)
    return Case(text, secret) if secret is not None else text


def _sprintf(fmt: str, args: list) -> str:
    values = iter(args)
    return re.sub(r"%[sdvq%]", lambda m: "%" if m.group() == "%%" else _text(next(values)), fmt)


def templates(repo: Path) -> list[str]:
    """GenerateSampleSecrets' templates, in gitleaks' own file (its map, in file order)."""
    source = read_text(repo, GENERATE_GO)
    body = source.split("func GenerateSampleSecrets", 1)[1].split("replacer", 1)[0]
    out = []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("//"):
            continue
        m = re.match(r'"[^"]*"\s*:\s*(`[^`]*`|"(?:\\.|[^"\\])*")\s*,', line)
        if m:
            out.append(go_string(m.group(1)))
    return out


# -- rules -------------------------------------------------------------------------------------


def _functions(source: str) -> Iterator[tuple[str, str]]:
    """(name, body) of each top-level function."""
    for m in re.finditer(r"^func (\w+)\([^)]*\)[^{\n]*\{\n(.*?)^\}", source, re.M | re.S):
        yield m.group(1), m.group(2)


def _package_vars(source: str) -> Iterator[tuple[str, str]]:
    for m in re.finditer(r"^var (\w+)\s*=\s*([^\n]*\{\n.*?^\}|[^\n]*)", source, re.M | re.S):
        yield m.group(1), m.group(2)


def _statements(body: str) -> Iterator[tuple[str, str, str]]:
    """(name, operator, expression source) of each `name := ...`/`name = ...` at the start of
    a line of the body (the expression runs to the next such line or the body's end)."""
    for m in re.finditer(r"^\t(?:var )?(\w+)(?: \[\]string)?\s*(:=|=)\s*", body, re.M):
        end = re.compile(r"^\t[^\t})\]\n]", re.M).search(body, m.end())
        yield m.group(1), m.group(2), body[m.end() : end.start() if end else len(body)]


@dataclass
class RuleCases:
    rule: str
    function: str
    path: str
    tps: list[Case]
    fps: list[Case]
    skipped: list[str]  # statements not evaluated, and why


def rule_cases(repo: Path, seed: int = 0) -> list[RuleCases]:
    tmpl = templates(repo)
    paths = [p for p in list_files(repo, RULES_DIR) if p.endswith(".go")
             and not p.endswith("_test.go")]  # fmt: skip
    sources = {p: read_text(repo, p) for p in paths}
    env: dict = {}
    for source in sources.values():  # package-level `var x = ...` (lists of keys, identifiers)
        for name, expr in _package_vars(source):
            with contextlib.suppress(Unsupported, StopIteration, IndexError, ValueError, re.error):
                env[name] = _evaluate(expr, tmpl, random.Random(f"{seed}:var:{name}"), env)
    out = []
    for path, source in sources.items():
        for function, body in _functions(source):
            m = re.search(r'RuleID:\s*"([^"]+)"', body)
            if not m:
                continue
            rng = random.Random(f"{seed}:gitleaks:{m.group(1)}")
            local = dict(env)
            skipped = []
            for name, _, expr in _statements(body):
                try:
                    local[name] = _evaluate(expr, tmpl, rng, local)
                except (Unsupported, StopIteration, IndexError, ValueError, re.error) as e:
                    if name in ("tps", "fps"):
                        skipped.append(f"{name}: {e}")
            call = re.search(r"utils\.Validate(?:WithPaths)?\(\s*\w+,\s*(\w+),\s*(\w+)", body)
            tps_name, fps_name = call.groups() if call else ("tps", "fps")
            out.append(RuleCases(m.group(1), function, path,
                                 _cases(local.get(tps_name)), _cases(local.get(fps_name)),
                                 skipped))  # fmt: skip
    return out


def _cases(value: object) -> list[Case]:
    if not isinstance(value, list):
        return []
    return [v if isinstance(v, Case) else Case(v) for v in value if isinstance(v, (str, Case))]


def _evaluate(expr: str, tmpl: list[str], rng: random.Random, env: dict) -> object:
    ev = Evaluator(tmpl, rng, env)
    ev.toks = tokens(expr)
    value = ev.expr()
    while ev.peek()[0] == "nl":
        ev.take()
    if ev.peek()[0] != "eof":
        raise Unsupported(f"trailing {ev.peek()[1]!r}")
    return value


# -- the rules' regexes, to find the secret in a literal case ----------------------------------


def go_regex(pattern: str) -> re.Pattern[str] | None:
    """gitleaks' (RE2) regex in Python's dialect, or None when it does not translate."""
    flags = 0
    if "(?i)" in pattern:
        pattern, flags = pattern.replace("(?i)", ""), re.IGNORECASE
    pattern = pattern.replace(r"\z", r"\Z")
    for posix, cls in (("[:alnum:]", "A-Za-z0-9"), ("[:alpha:]", "A-Za-z"), ("[:digit:]", "0-9"),
                       ("[:upper:]", "A-Z"), ("[:lower:]", "a-z"), ("[:space:]", r"\s"),
                       ("[:xdigit:]", "0-9A-Fa-f"), ("[:punct:]", r"!-/:-@\[-`{-~")):  # fmt: skip
        pattern = pattern.replace(posix, cls)
    try:
        return re.compile(pattern, flags)
    except re.error:
        return None


def rule_regexes(repo: Path) -> dict[str, tuple[re.Pattern[str] | None, int]]:
    config = tomllib.loads(read_text(repo, CONFIG_TOML))
    return {r["id"]: (go_regex(r["regex"]) if "regex" in r else None, r.get("secretGroup", 0))
            for r in config.get("rules", [])}  # fmt: skip


def secret_in(text: str, regex: re.Pattern[str] | None, group: int) -> str | None:
    if regex is None:
        return None
    m = regex.search(text)
    if not m:
        return None
    if group and m.group(group):
        return m.group(group)
    return next((g for g in m.groups() if g), m.group())


def gitleaks_samples(repo: Path, seed: int = 0) -> list[PublicSample]:
    regexes = rule_regexes(repo)
    out = []
    for rc in rule_cases(repo, seed):
        regex, group = regexes.get(rc.rule, (None, 0))
        origin = f"{rc.path}:{rc.function}"
        for case in rc.tps:
            secret = case.secret if case.secret and case.secret in case.text else None
            secret = secret or secret_in(case.text, regex, group)
            out.append(sample("gitleaks", rc.rule, case.text, secret, origin))
        for case in rc.fps:
            out.append(sample("gitleaks", rc.rule, case.text, None, origin, positive=False))
    return out
