"""Putting the originals back: a request's placeholders replaced in the service's answer.

Only exact placeholders of the request are restored (`<EMAIL_1>`, never `<email_1>` or
`< EMAIL_1 >`). In a JSON body they are replaced where they stand inside its strings, also
when written with JSON's `\\u003c...\\u003e` escapes, by the original escaped for JSON; every
other byte stays as it was. A string that holds JSON itself (a tool call's `arguments`) is
restored as JSON inside JSON, the originals escaped twice. Streamed text arrives in pieces
that may split a placeholder anywhere: TextRestorer holds back only the end of the text
that could still be the start of one, until the next piece says what it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string literal


def _escaped(value: str) -> bytes:
    """A value as the inside of a JSON string."""
    return json.dumps(value, ensure_ascii=False)[1:-1].encode("utf-8")


class JsonRestorer:
    """Restores placeholders inside the strings of a JSON text (a body, or an SSE event's
    data), leaving every other byte alone."""

    def __init__(self, originals: Mapping[str, str]) -> None:
        self._by_name = {p[1:-1].encode("ascii"): _escaped(v) for p, v in originals.items()}
        names = b"|".join(re.escape(n) for n in sorted(self._by_name, key=len, reverse=True))
        # an escaped backslash first, so that `\\u003c` (a backslash, then text) is not `<`
        self._pattern = re.compile(rb"\\\\|(?:<|\\u003[cC])(" + names + rb")(?:>|\\u003[eE])")
        self.replaced = 0  # placeholders put back so far (a count, never which)

    def __call__(self, data: bytes) -> bytes:
        if not self._by_name or (b"<" not in data and b"\\u003" not in data):
            return data
        return _STRING.sub(self._string, data)

    def _string(self, m: re.Match[bytes]) -> bytes:
        literal = m.group(0)
        if b"<" not in literal and b"\\u003" not in literal:
            return literal
        restored = self._pattern.sub(self._replace, literal)
        if restored == literal:
            return literal
        return self._inner_json(literal) or restored

    def _inner_json(self, literal: bytes) -> bytes | None:
        """A string holding JSON, restored as such (None: it holds text)."""
        text = json.loads(literal)
        if not text.lstrip().startswith(("{", "[")):
            return None
        try:
            json.loads(text)
        except ValueError:
            return None
        inner = self._pattern.sub(self._replace, text.encode("utf-8")).decode("utf-8")
        return json.dumps(inner, ensure_ascii=False).encode("utf-8")

    def _replace(self, m: re.Match[bytes]) -> bytes:
        name = m.group(1)
        if name is None:
            return m.group(0)
        self.replaced += 1
        return self._by_name[name]


class TextRestorer:
    """Restores placeholders in text that arrives in pieces (the deltas of one streamed
    answer): `feed` returns what can be shown now, `flush` the rest at the end."""

    def __init__(self, originals: Mapping[str, str], json_text: bool = False) -> None:
        """`json_text`: the text is JSON (streamed tool-call arguments), so the originals go
        in escaped for a JSON string."""
        self._originals = {
            p: _escaped(v).decode("utf-8") if json_text else v for p, v in originals.items()
        }
        self._prefixes = {p[:i] for p in originals for i in range(1, len(p))}
        self._longest = max((len(p) for p in originals), default=0)
        names = "|".join(re.escape(p) for p in sorted(originals, key=len, reverse=True))
        self._pattern = re.compile(names) if originals else None
        self.held = ""
        self.replaced = 0  # placeholders put back so far (a count, never which)

    def feed(self, piece: str) -> str:
        text = self.held + piece
        cut = self._hold_from(text)
        self.held = text[cut:]
        return self._restore(text[:cut])

    def flush(self) -> str:
        """The text held back, at the end of the answer (an unfinished placeholder as is)."""
        text, self.held = self.held, ""
        return self._restore(text)

    def _hold_from(self, text: str) -> int:
        """Where the held-back end starts: the earliest `<` in the last characters from which
        the text could still grow into a placeholder (len(text) when none can)."""
        start = max(0, len(text) - self._longest + 1)
        position = text.find("<", start)
        while position >= 0:
            if text[position:] in self._prefixes:
                return position
            position = text.find("<", position + 1)
        return len(text)

    def _restore(self, text: str) -> str:
        if self._pattern is None or "<" not in text:
            return text
        restored, count = self._pattern.subn(lambda m: self._originals[m.group(0)], text)
        self.replaced += count
        return restored
