"""The public secret scanners' own test data, read in place from their repositories at run
time (see bench/public_samples.py). Nothing of it is copied into this repository: the
corpus here holds facts about formats, not other projects' samples.

A source is a function `(repo: Path) -> list[PublicSample]`; `repo` is a bare git
repository (read at HEAD with `git show` / `git ls-tree`) or a checkout directory.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True, slots=True)
class PublicSample:
    """One test case of a scanner: `text` as its test has it (a line, or a few), and where the
    secret is in it. `positive=False` marks the scanner's own near-miss (a false-positive
    case its tests expect it to ignore): clean text, scored apart from the clean prompts."""

    source: str  # gitleaks | detect-secrets | trufflehog
    family: str  # the scanner's rule id, plugin or detector
    text: str
    start: int  # the secret is text[start:end] (0, 0 for a near-miss)
    end: int
    origin: str = ""  # where in the source it came from: a path, a rule function
    positive: bool = True

    @property
    def secret(self) -> str:
        return self.text[self.start : self.end]


def sample(source: str, family: str, text: str, secret: str | None, origin: str = "",
           positive: bool = True) -> PublicSample:  # fmt: skip
    """A sample whose secret is the first occurrence of `secret` in `text` (the longest token
    when `secret` is None or not in it: the test did not say which part is the secret)."""
    if not positive:
        return PublicSample(source, family, text, 0, 0, origin, False)
    at = text.find(secret) if secret else -1
    if at < 0:
        start, end = longest_token(text)
    else:
        start, end = at, at + len(secret or "")
    return PublicSample(source, family, text, start, end, origin)


_TOKEN = re.compile(r"""[^\s"'`=:,;(){}<>]+""")
_KEY_AFTER = re.compile(r"""["'`]?\s*(?:=|:(?!\d|//))""")


def longest_token(text: str) -> tuple[int, int]:
    """Where the secret is in a line the test labels as a whole: a private key block from its
    BEGIN line on; else the longest run without spaces, quotes or assignment punctuation
    that is not a key (followed by `:` or `=`)."""
    if "PRIVATE KEY" in text and "-----BEGIN" in text:
        return text.index("-----BEGIN"), len(text.rstrip())
    runs = [m for m in _TOKEN.finditer(text) if not _KEY_AFTER.match(text, m.end())]
    best = max(runs or _TOKEN.finditer(text), key=lambda m: m.end() - m.start(), default=None)
    return (best.start(), best.end()) if best else (0, len(text))


# -- reading a repository ----------------------------------------------------------------------


def _bare(repo: Path) -> bool:
    return (repo / "HEAD").is_file() and (repo / "objects").is_dir()


@cache
def list_files(repo: Path, folder: str) -> tuple[str, ...]:
    """Paths (relative to the repository) of the files directly in `folder`."""
    if _bare(repo):
        out = subprocess.run(["git", "--git-dir", str(repo), "ls-tree", "--name-only", "HEAD",
                              folder.rstrip("/") + "/"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return tuple(sorted(out.split()))
    base = repo / folder
    if not base.is_dir():
        return ()
    return tuple(sorted(str(p.relative_to(repo)) for p in base.iterdir() if p.is_file()))


@cache
def read_text(repo: Path, path: str) -> str:
    if _bare(repo):
        return subprocess.run(["git", "--git-dir", str(repo), "show", f"HEAD:{path}"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
    return (repo / path).read_text(encoding="utf-8", errors="replace")


def head_commit(repo: Path) -> str:
    git = ["git", "--git-dir", str(repo)] if _bare(repo) else ["git", "-C", str(repo)]
    r = subprocess.run([*git, "log", "-1", "--format=%h %cs"], capture_output=True, text=True)
    return r.stdout.strip() or "?"
