"""SPNEGO/Kerberos (HTTP `Negotiate`, RFC 4559) accepted with the proxy's service key, through
the gssapi package over the system's MIT Kerberos (or Heimdal) GSSAPI library.

`Acceptor` holds the proxy's acceptor credentials, read once from its keytab, and turns one
client token into a user or a failure with a bounded reason (a metric label) and a one-line
detail for the log; the token itself is never kept nor logged. `accept` is blocking (it
decrypts the ticket and checks the replay cache): callers run it in a thread.

Nothing here imports mitmproxy.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# krb5 minor status codes (krb5.h: ERROR_TABLE_BASE_krb5 + n), the same from the krb5 and the
# SPNEGO mechanism, which passes its inner mechanism's status on
KRB5KRB_AP_ERR_BAD_INTEGRITY = -1765328353  # the ticket is not sealed with our key
KRB5KRB_AP_ERR_TKT_EXPIRED = -1765328352
KRB5KRB_AP_ERR_TKT_NYV = -1765328351  # not yet valid: a clock ahead of the KDC's
KRB5KRB_AP_ERR_REPEAT = -1765328350
KRB5KRB_AP_ERR_NOT_US = -1765328349
KRB5KRB_AP_ERR_SKEW = -1765328347
KRB5KRB_AP_ERR_BADKEYVER = -1765328340
KRB5KRB_AP_ERR_NOKEY = -1765328339
KRB5KRB_AP_WRONG_PRINC = -1765328240
KRB5_RC_REPLAY = -1765328221
KRB5_KT_NOTFOUND = -1765328203
KRB5_KT_KVNONOTFOUND = -1765328154

MINOR_REASONS: dict[int, str] = {
    KRB5KRB_AP_ERR_SKEW: "clock_skew",
    KRB5KRB_AP_ERR_TKT_NYV: "clock_skew",
    KRB5KRB_AP_ERR_REPEAT: "replay",
    KRB5_RC_REPLAY: "replay",
    KRB5KRB_AP_ERR_TKT_EXPIRED: "expired",
    KRB5KRB_AP_WRONG_PRINC: "wrong_principal",
    KRB5KRB_AP_ERR_NOT_US: "wrong_principal",
    KRB5_KT_NOTFOUND: "wrong_principal",
    KRB5KRB_AP_ERR_BAD_INTEGRITY: "wrong_key",
    KRB5KRB_AP_ERR_BADKEYVER: "wrong_key",
    KRB5KRB_AP_ERR_NOKEY: "wrong_key",
    KRB5_KT_KVNONOTFOUND: "wrong_key",
}

# every reason a Negotiate attempt can fail for: the values of the metric's label
REASONS = (
    "no_token",  # no Proxy-Authorization, or another scheme (a browser's first request)
    "bad_token",  # not base64, or not a token GSSAPI can read
    "ntlm",  # NTLM instead of Kerberos: the client has no ticket (not in the domain?)
    "wrong_principal",  # a ticket for a service principal that is not in the keytab
    "wrong_key",  # our principal, but a key the keytab does not hold (an old kvno)
    "clock_skew",  # the client's clock and the proxy's differ by more than allowed
    "expired",  # the ticket has expired
    "replay",  # a token seen before
    "error",  # anything else GSSAPI refuses
)

# krb5's messages (krb5_err.et, and rd_req's keytab messages), for MIT's SPNEGO
MESSAGE_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("clock skew",), "clock_skew"),
    (("not yet valid",), "clock_skew"),
    (("replay",), "replay"),
    (("ticket expired",), "expired"),
    (("wrong principal",), "wrong_principal"),
    (("not found in keytab",), "wrong_principal"),
    (("no key table entry",), "wrong_principal"),
    (("cannot find key", "request ticket server"), "wrong_principal"),
    (("cannot find key",), "wrong_key"),
    (("integrity",), "wrong_key"),
    (("malformed",), "bad_token"),
    (("corrupt",), "bad_token"),
)
# GSSAPI major status: routine errors (bits 16-23) and a supplementary bit (RFC 2744)
GSS_S_BAD_MECH = 1 << 16
GSS_S_DEFECTIVE_TOKEN = 9 << 16
GSS_S_DEFECTIVE_CREDENTIAL = 10 << 16
GSS_S_DUPLICATE_TOKEN = 1 << 1

NTLMSSP = b"NTLMSSP\0"
MAX_TOKEN_BYTES = 64 * 1024  # a ticket with a large PAC is some kilobytes


class KerberosUnavailable(Exception):
    """The keytab or the GSSAPI library cannot be used; says why in one line."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one token came to: a user, a continuation, or a failure."""

    user: str | None = None  # the authenticated principal, as rules see it
    principal: str | None = None  # the full principal (realm kept), for the log
    reason: str | None = None  # one of REASONS when it failed
    detail: str | None = None  # one line for the log: what GSSAPI said (never the token)
    token: bytes | None = None  # an output token for the client (mutual auth, or a next leg)
    context: Any = None  # an unfinished context, to be stepped with the client's next token


def parse_header(value: str | None) -> bytes | str:
    """The token of a `Negotiate <base64>` header, or the failure reason."""
    if not value:
        return "no_token"
    scheme, _, data = value.strip().partition(" ")
    if scheme.lower() != "negotiate":
        return "no_token"
    data = data.strip()
    if not data or len(data) > MAX_TOKEN_BYTES * 4 // 3 + 4:
        return "bad_token"
    try:
        token = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return "bad_token"
    if token.startswith(NTLMSSP):
        return "ntlm"
    return token


def user_name(principal: str, keep_realm: bool) -> str:
    """`alice@CORP.EXAMPLE` as rules and the audit log see it: `alice`, or kept whole."""
    if keep_realm:
        return principal
    name, at, _realm = principal.rpartition("@")
    return name if at else principal


class Acceptor:
    """The proxy's side of Kerberos: its service credentials from a keytab."""

    def __init__(self, keytab: Path, principal: str | None = None, keep_realm: bool = False):
        try:
            import gssapi  # the system's GSSAPI library, loaded only when Kerberos is on
        except ImportError as e:
            raise KerberosUnavailable(
                f"the gssapi package is not installed ({e}); pip install 'aiwarden[kerberos]'"
            ) from None
        self.gssapi = gssapi
        self.keep_realm = keep_realm
        if not keytab.is_file():
            raise KerberosUnavailable(f"{keytab}: no such file")
        try:
            keytab.open("rb").close()
        except OSError as e:
            raise KerberosUnavailable(f"{keytab}: {e.strerror or e}") from None
        try:
            name = gssapi.Name(principal, gssapi.NameType.kerberos_principal) if principal else None
            self.credentials = gssapi.Credentials(
                name=name, usage="accept", store={"keytab": str(keytab)}
            )
        except gssapi.exceptions.GSSError as e:
            raise KerberosUnavailable(f"{keytab}: {_one_line(e)}") from None

    def accept(self, token: bytes, context: Any = None) -> Outcome:
        """Step an acceptor context with the client's token (blocking: run it in a thread)."""
        gssapi = self.gssapi
        try:
            if context is None:
                context = gssapi.SecurityContext(creds=self.credentials, usage="accept")
            out = context.step(token)
            if not context.complete:
                return Outcome(token=out, context=context)
            principal = str(context.initiator_name)
        except gssapi.exceptions.GSSError as e:
            return Outcome(reason=failure_reason(e), detail=_one_line(e))
        return Outcome(user=user_name(principal, self.keep_realm), principal=principal, token=out)


def failure_reason(error: Exception) -> str:
    """The bounded reason of a GSSAPI failure: by its krb5 minor code when the mechanism's
    code comes through as it is (Heimdal, or a bare krb5 token), else by krb5's message
    (MIT's SPNEGO hands back a code of its own, and the krb5 message with it), else by the
    GSSAPI major code."""
    minor = getattr(error, "min_code", 0)
    if minor in MINOR_REASONS:
        return MINOR_REASONS[minor]
    text = _one_line(error).lower()
    for words, reason in MESSAGE_REASONS:
        if all(w in text for w in words):
            return reason
    major = getattr(error, "maj_code", 0)
    if major & 0xFF0000 in (GSS_S_BAD_MECH, GSS_S_DEFECTIVE_TOKEN, GSS_S_DEFECTIVE_CREDENTIAL):
        return "bad_token"
    if major & GSS_S_DUPLICATE_TOKEN:
        return "replay"
    return "error"


def _one_line(error: Exception) -> str:
    """GSSAPI's own words on one line: krb5's message ("Clock skew too great", "Request
    ticket server HTTP/x@R not found in keytab"), else the GSSAPI one. They name principals,
    never keys or tokens."""
    text = getattr(error, "gen_message", None)
    text = " ".join(str(text() if callable(text) else error).split())
    major, _, minor = text.partition(", Minor (")
    minor = minor.partition("): ")[2]
    if minor and minor != "Unknown error":
        return minor[:300]
    return major.partition("): ")[2][:300] or text[:300]
