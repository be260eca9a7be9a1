"""Who is behind a request: a user, the directory groups an identity source named, and which
source it was (for `aiwarden explain` and the log)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Who:
    user: str | None = None
    groups: frozenset[str] = frozenset()  # lower-cased directory groups
    source: str | None = None  # proxy_auth, header or address_map


NOBODY = Who()
