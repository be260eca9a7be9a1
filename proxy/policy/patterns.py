"""Host and path patterns, and the index that finds every host pattern matching a host.

Host patterns:
- `api.openai.com`: that host only;
- `*.openai.com`: any name below openai.com, at any depth (not openai.com itself);
- `*` inside a label matches within that one label: `bedrock-runtime.*.amazonaws.com`,
  `*-aiplatform.googleapis.com`, `antigravity*.googleapis.com`.
Path patterns: `*` matches within one path segment, `**` across segments (`/**/` also
matches a single `/`), `{a,b}` either alternative; a pattern must match the whole canonical
path (see normalize.py), ignoring case.

The index looks a host up in time that depends on its number of labels, not on the number of
patterns: exact names in a dict, `*.suffix` by walking the host's suffixes, label globs grouped
under their literal suffix and tried only for hosts under it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.policy.normalize import HOST_NAME, BadHost, is_ip, normalize_host

_GLOB_LABEL = re.compile(r"[a-z0-9_*-]+")
_PATH_CHARS = re.compile(r"[A-Za-z0-9._~!$&'()+,;=:@/*{}-]+")


class PatternError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class HostPattern:
    text: str  # canonical spelling
    kind: str  # "exact", "subdomains" or "glob"
    suffix: str  # exact: the host; subdomains: below this; glob: literal suffix
    regex: str | None = None  # glob: the regex a matching host fully matches

    def __str__(self) -> str:
        return self.text


def parse_host_pattern(raw: str) -> HostPattern:
    """Parse and canonicalise a host pattern, or raise PatternError saying why not."""
    text = raw.strip().rstrip(".").lower()
    if not text:
        raise PatternError("empty host pattern")
    if "/" in text or text.count(":") == 1:
        raise PatternError(f"{raw!r}: a host pattern holds no scheme, port or path")
    if "*" not in text:
        if len(text) <= 253 and HOST_NAME.fullmatch(text) and not text[-1].isdigit():
            return HostPattern(text, "exact", text)  # already canonical: the common case
        try:
            host = normalize_host(text)
        except BadHost as e:
            raise PatternError(str(e)) from e
        return HostPattern(host, "exact", host)
    labels = text.split(".")
    leading = labels[0] == "*"
    body = labels[1:] if leading else labels
    try:
        body = [
            label if "*" in label else normalize_host(label) if not label.isascii() else label
            for label in body
        ]
    except BadHost as e:
        raise PatternError(str(e)) from e
    for label in body:
        if not label or not _GLOB_LABEL.fullmatch(label):
            raise PatternError(f"{raw!r}: {label!r} is not a valid label")
        if "**" in label:
            raise PatternError(f"{raw!r}: '**' has no meaning in a host pattern")
    if "*" in body[-1]:
        raise PatternError(f"{raw!r}: the last label (the top-level domain) must be literal")
    last_glob = max((i for i, label in enumerate(body) if "*" in label), default=-1)
    suffix_labels = body[last_glob + 1 :]
    if last_glob < 0:
        if len(body) < 2:
            raise PatternError(f"{raw!r} would match a whole top-level domain")
        suffix = ".".join(body)
        return HostPattern("*." + suffix, "subdomains", suffix)
    prefix = r"(?:[a-z0-9_-]+\.)+" if leading else ""
    regex = prefix + r"\.".join(
        "[a-z0-9_-]*".join(re.escape(part) for part in label.split("*")) for label in body
    )
    canonical = ("*." if leading else "") + ".".join(body)
    return HostPattern(canonical, "glob", ".".join(suffix_labels), regex)


def covers(outer: HostPattern, inner: HostPattern) -> bool:
    """Whether every host `inner` matches is also matched by `outer` (conservatively: a
    False may only mean that it could not be shown)."""
    if outer.text == inner.text:
        return True
    if inner.kind == "exact":
        host = inner.suffix
        if outer.kind == "subdomains":
            return host.endswith("." + outer.suffix)
        return outer.kind == "glob" and re.fullmatch(outer.regex or "", host) is not None
    # *.suffix or a label glob: every host it matches lies below its literal suffix, at
    # least one label deep; `*.outer` covers that when the suffix is outer or below it
    if outer.kind != "subdomains":
        return False
    return inner.suffix == outer.suffix or inner.suffix.endswith("." + outer.suffix)


class HostIndex[T]:
    """Maps host patterns to payloads; `lookup` returns the payloads of every pattern that
    matches a host, most specific first (exact, then longer suffixes before shorter ones)."""

    def __init__(self) -> None:
        self._exact: dict[str, list[T]] = {}
        self._subdomains: dict[str, list[T]] = {}
        self._globs: dict[str, list[tuple[str, T]]] = {}
        self._compiled_globs: dict[str, list[tuple[re.Pattern[str], T]]] = {}

    def add(self, pattern: HostPattern, payload: T) -> None:
        if pattern.kind == "exact":
            self._exact.setdefault(pattern.suffix, []).append(payload)
        elif pattern.kind == "subdomains":
            self._subdomains.setdefault(pattern.suffix, []).append(payload)
        else:
            assert pattern.regex is not None
            self._globs.setdefault(pattern.suffix, []).append((pattern.regex, payload))

    def _globs_under(self, suffix: str) -> list[tuple[re.Pattern[str], T]]:
        """The glob patterns under `suffix`, compiled when first needed: a catalog of
        thousands of globs loads without compiling regexes for suffixes never visited."""
        compiled = self._compiled_globs.get(suffix)
        if compiled is None:
            compiled = [(re.compile(source), payload) for source, payload in self._globs[suffix]]
            self._compiled_globs[suffix] = compiled
        return compiled

    def __bool__(self) -> bool:
        return bool(self._exact or self._subdomains or self._globs)

    def lookup(self, host: str) -> list[T]:
        """Payloads for a canonical host (see normalize_host), most specific first."""
        found: list[T] = []
        hit = self._exact.get(host)
        if hit:
            found.extend(hit)
        if is_ip(host):
            return found
        globs, subdomains = self._globs, self._subdomains
        suffix, start = host, 0
        while True:
            if globs and suffix in globs:
                for regex, payload in self._globs_under(suffix):
                    if regex.fullmatch(host):
                        found.append(payload)
            if start:
                hit = subdomains.get(suffix)
                if hit:
                    found.extend(hit)
            dot = host.find(".", start)
            if dot < 0:
                return found
            start = dot + 1
            suffix = host[start:]


def compile_path_patterns(patterns: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive regex that fully matches a canonical path matching any pattern."""
    parts = [_path_regex(p) for p in patterns]
    if not parts:
        raise PatternError("no path patterns")
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


def check_path_pattern(raw: str) -> None:
    """Raise PatternError when `raw` is not a valid path pattern."""
    _path_regex(raw)


def _path_regex(raw: str) -> str:
    if not raw.startswith("/"):
        raise PatternError(f"{raw!r}: a path pattern starts with '/'")
    if "?" in raw or "#" in raw:
        raise PatternError(f"{raw!r}: paths are matched without the query string; leave it out")
    if "%" in raw:
        raise PatternError(f"{raw!r}: write characters as themselves, not percent-encoded")
    if not _PATH_CHARS.fullmatch(raw):
        raise PatternError(f"{raw!r}: holds characters that cannot appear in a path")
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "*":
            if raw.startswith("**/", i):
                out.append("(?:.*/)?")  # zero or more whole segments
                i += 3
                continue
            if raw.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "{":
            end = raw.find("}", i)
            if end < 0 or "{" in raw[i + 1 : end]:
                raise PatternError(f"{raw!r}: unbalanced '{{'")
            choices = raw[i + 1 : end].split(",")
            if not all(choices) or any("*" in ch or "/" in ch for ch in choices):
                raise PatternError(f"{raw!r}: alternatives in {{}} must be plain, non-empty words")
            out.append("(?:" + "|".join(re.escape(ch) for ch in choices) + ")")
            i = end + 1
            continue
        elif c == "}":
            raise PatternError(f"{raw!r}: unbalanced '}}'")
        else:
            out.append(re.escape(c))
        i += 1
    regex = "".join(out)
    if len(regex) > 1 and regex.endswith("/") and not raw.endswith("**"):
        regex = regex[:-1]  # canonical paths have no trailing slash
    return regex
