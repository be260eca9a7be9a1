"""Who is behind a request: a user, the directory groups an identity source named or the
directory gave, and which source it was (for `aiwarden explain` and the log)."""

from __future__ import annotations

from dataclasses import dataclass


class GroupsUnknown(frozenset):
    """No groups, because the directory could not say which (down past its stale window,
    and its `on_error` is block). Rules naming directory groups neither match nor fail to:
    a request one of them would decide is blocked (decide/engine.py), so that nothing a
    group rule would have refused passes for want of an answer; other requests are decided
    as usual."""

    why: str

    def __new__(cls, why: str, known: frozenset[str] = frozenset()) -> GroupsUnknown:
        """`known`: groups another source named (a trusted header), which still count."""
        unknown = super().__new__(cls, known)
        unknown.why = why
        return unknown

    def __repr__(self) -> str:
        return f"GroupsUnknown({self.why!r}, {set(self)!r})"


@dataclass(frozen=True, slots=True)
class Who:
    user: str | None = None
    groups: frozenset[str] = frozenset()  # lower-cased directory groups
    source: str | None = None  # proxy_auth, header or address_map
    directory: str | None = None  # where the directory groups came from (GroupCache outcomes)
    named: frozenset[str] = frozenset()  # with `directory`: the groups the source itself named


NOBODY = Who()
