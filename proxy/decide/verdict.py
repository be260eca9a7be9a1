"""What a decision says: its action, stage and connection mode as enums, and the Decision.

Strictness is defined here, once: when the names a request claims (CONNECT host, TLS server
names, request target, Host headers) are decided differently, the strictest decision wins.
The enums are strings, so they read and compare as the policy spells them ("block") in logs,
metrics labels and the audit log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

from proxy.policy.model import Coaching


class Action(StrEnum):
    ALLOW = "allow"
    MONITOR = "monitor"
    REDACT = "redact"
    WARN = "warn"  # coaching: blocked until the user acknowledges (proxy/mitm/coaching.py)
    BLOCK = "block"
    INSPECT = "inspect"  # connect stage only: the outcome depends on each request

    @property
    def strictness(self) -> int:
        """allow < monitor < redact < warn < block; `inspect` is no request's final action.
        Warn is stricter than redact: until the user proceeds, nothing passes."""
        return _STRICTNESS[self]


_STRICTNESS = {
    Action.ALLOW: 0,
    Action.MONITOR: 1,
    Action.REDACT: 2,
    Action.WARN: 3,
    Action.BLOCK: 4,
}


class Stage(StrEnum):
    CONNECT = "connect"  # the CONNECT host, or a TLS server name: the connection as a whole
    REQUEST = "request"  # one HTTP request, its whole request line seen


class Mode(StrEnum):
    """What happens to a connection at the connect stage."""

    TUNNEL = "tunnel"  # relayed undecrypted
    INTERCEPT = "intercept"  # opened, so that each request is decided (or shown a block page)
    REFUSE = "refuse"  # refused outright


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    stage: Stage
    rule: str  # the rule that decided, or "default"
    reason: str
    service: str | None = None
    category: str | None = None
    vendor: str | None = None
    country: str | None = None
    activity: str | None = None
    connect: Mode | None = None  # at the connect stage
    message: str | None = None  # what a blocked user is told
    contact: str | None = None
    profile: str | None = None  # the redaction profile, for action: redact
    style: str | None = None  # the LLM API style of an unlisted AI endpoint's request body
    coaching: Coaching | None = None  # for action: warn, what the user is told and granted
    audit: bool = False  # an allow decision that asks for an audit line (rule audit: true)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def tunnels(self) -> bool:
        """Relayed undecrypted and allowed: the one case where bytes pass undecided."""
        return self.connect is Mode.TUNNEL and self.action is Action.ALLOW


def stricter(candidate: Decision, than: Decision | None) -> bool:
    """Whether `candidate` wins over `than` (the first of equally strict decisions wins)."""
    return than is None or candidate.action.strictness > than.action.strictness
