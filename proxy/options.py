"""aiwarden's options, declared once: each is a mitmproxy option, an `aiwarden run` flag, or both.

Everything else is derived from `OPTIONS`:
- `declare(loader, *names)`: an addon's `load` declares its own mitmproxy options by name;
- `add_run_flags(parser)`: the flags of `aiwarden run` (and `add_flag` for a single one, as
  `--policy` for every command that reads the policy);
- `settings_from(args, known)`: the mitmproxy options `aiwarden run` sets from its flags;
- `worker_argv(args)`: the flags the supervisor of `--workers N` passes on to each worker;
- `markdown()`: the README's table of options (`aiwarden options`), and `update_readme`.

Checks of a value (a timeout of 0 or more, a PAC mode, an address) stay in the `configure`
of the addon that owns the option, where mitmproxy reports them for `--set` as well.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

Action = Literal["store", "store_true", "store_false", "append"]

PAC_GROUP = "the PAC file served at /proxy.pac and /wpad.dat"
PARENT_ENV = "AIWARDEN_PARENT"  # no "PROXY" in it: tools strip those as proxy settings


@dataclass(frozen=True, kw_only=True)
class Option:
    """One setting: the mitmproxy option it is, the `aiwarden run` flag that sets it, or both."""

    # -- the mitmproxy option -------------------------------------------------------------
    option: str | None = None
    """The mitmproxy option: `aiwarden_*` ones are declared by an aiwarden addon, others
    (`proxyauth`, `confdir`...) are mitmproxy's own. None: a flag of the run process itself."""
    type: Any = str
    """Its mitmproxy type: str, int, bool or Sequence[str]; int also makes the flag a number."""
    default: Any = None
    """Its default under mitmproxy."""
    help: str = ""
    """Its help under mitmproxy (`mitmdump --options`)."""
    run_only: bool = False
    """Declared by an addon only `aiwarden run` loads: no such option under `mitmdump -s`."""
    in_settings: bool = True
    """`settings_from` sets it (False: `aiwarden run` gives it to mitmproxy another way)."""
    empty_is_unset: bool = False
    """An empty flag value leaves the option at mitmproxy's default."""

    # -- the `aiwarden run` flag ----------------------------------------------------------
    flag: str | None = None
    """The `aiwarden run` flag; None: under `mitmdump --set` only."""
    dest: str | None = None
    """The flag's attribute in the parsed arguments, when not the flag's own name."""
    action: Action = "store"
    flag_default: Any = None
    """The flag's default when the flag is not given (None: the attribute is None)."""
    env: str | None = None
    """An environment variable whose value, when set, is the flag's default."""
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    flag_help: str | None = None
    """`aiwarden run --help`; None: the flag is listed without a text."""
    group: str | None = None
    """The `--help` section the flag is listed in; None: the main one."""
    hidden: bool = False
    """Set by the supervisor for its workers only: not in `--help` nor in the docs."""
    to_workers: bool = False
    """The supervisor of `--workers N` passes its value on to every worker unchanged."""

    # -- the docs -------------------------------------------------------------------------
    doc: str = ""
    """What the README's table says it does (Markdown)."""
    doc_default: str | None = None
    """The README's default, when not the flag's default in backquotes."""

    @property
    def declared(self) -> bool:
        """Whether an aiwarden addon declares it (else it is mitmproxy's, or no option)."""
        return self.option is not None and self.option.startswith("aiwarden_")

    @property
    def attribute(self) -> str:
        """The flag's attribute in argparse's namespace."""
        assert self.flag is not None
        return self.dest or self.flag.removeprefix("--").replace("-", "_")

    def argv(self, value: Any) -> list[str]:
        """The flag as written to give `value`: nothing for None, nor for a switch left off."""
        assert self.flag is not None
        if self.action == "store_true":
            return [self.flag] if value else []
        if self.action == "store_false":
            return [] if value else [self.flag]
        if self.action == "append":
            return [x for item in value or () for x in (self.flag, str(item))]
        return [] if value is None else [self.flag, str(value)]


SECONDS = "SECONDS"

OPTIONS: tuple[Option, ...] = (
    Option(
        option="aiwarden_policy", default="policies",
        help="aiwarden policy: a directory holding policy.yaml, or a policy file.",
        flag="--policy", metavar="DIR", flag_default="policies", env="AIWARDEN_POLICY",
        flag_help="policy directory holding policy.yaml, or a policy file "
        "(default: $AIWARDEN_POLICY or ./policies)",
        to_workers=True,
        doc="the policy directory or file; every error is listed and the proxy does not start",
        doc_default="`$AIWARDEN_POLICY` or `./policies`",
    ),
    Option(
        flag="--listen", metavar="HOST:PORT", flag_default="127.0.0.1:3128",
        flag_help="proxy listen address (default 127.0.0.1:3128; port 0: any free port)",
        doc="where clients connect (`0.0.0.0:3128` for a network; `network.clients` decides "
        "who may); port `0`: any free port",
    ),
    Option(
        option="aiwarden_admin", default="127.0.0.1:3129",
        help="aiwarden admin listener HOST:PORT (/healthz, /readyz, /metrics, /ca.pem, "
        "/proxy.pac, /wpad.dat); empty: none.",
        flag="--admin", metavar="HOST:PORT", flag_default="127.0.0.1:3129",
        flag_help="admin listener for /healthz, /readyz, /ca.pem (default 127.0.0.1:3129)",
        doc="`/healthz` (alive), `/readyz` (policy loaded and proxy listening), `/metrics`, "
        "`/ca.pem` (the certificate users install), `/proxy.pac` and `/wpad.dat`; empty: none",
    ),
    Option(
        option="confdir", in_settings=False,  # run.py builds mitmproxy's Options with it
        flag="--confdir", metavar="DIR", flag_default="certs",
        flag_help="the CA directory (default certs/); a CA is created there if none",
        to_workers=True,
        doc="the CA directory; a CA is created there when there is none",
        doc_default="`certs/`",
    ),
    Option(
        option="ssl_verify_upstream_trusted_ca", empty_is_unset=True,
        flag="--upstream-ca", metavar="FILE",
        flag_help="PEM bundle to verify upstream servers with, instead of the public roots "
        "(must also hold the public roots if public sites are intercepted)",
        to_workers=True,
        doc="PEM bundle to verify upstream servers when intercepting (corporate TLS "
        "inspection upstream); it must also hold the public roots",
        doc_default="the public roots",
    ),
    Option(
        flag="--upstream-proxy", metavar="URL", env=PARENT_ENV,
        flag_help="send every connection through this parent proxy, http://[USER:PASS@]HOST:PORT "
        "(default: $AIWARDEN_PARENT, which keeps credentials off the command line)",
        doc="a parent proxy every upstream connection goes through, "
        "`http://[USER:PASS@]HOST:PORT` (see [Behind a parent proxy](#behind-a-parent-proxy)); "
        "under mitmdump: `--mode upstream:http://HOST:PORT` and `--set upstream_auth=USER:PASS`",
        doc_default="`$AIWARDEN_PARENT`, else none",
    ),
    Option(
        option="proxyauth", empty_is_unset=True,
        flag="--proxyauth", metavar="SPEC",
        flag_help="proxy authentication, as mitmproxy's proxyauth option "
        "(@htpasswd-file, user:pass, or ldap:...)",
        to_workers=True,
        doc="Basic proxy authentication through mitmproxy's own `proxyauth` (`@/path/htpasswd`, "
        "`user:pass`, `ldap:...`); the user is then matched by `users` and `groups` in rules "
        "(password-free: `--kerberos-keytab`)",
        doc_default="none",
    ),
    Option(
        option="aiwarden_require_proxy_tls", type=bool, default=False,
        help="aiwarden: clients must connect to the proxy with TLS (an HTTPS proxy); plain "
        "HTTP to the proxy is refused with a 403.",
        flag="--require-proxy-tls", action="store_true", flag_default=False,
        flag_help="clients must connect with TLS (https:// proxy); plain HTTP to the proxy is "
        "refused with a 403 and counted",
        to_workers=True,
        doc="clients must reach the proxy over TLS (`--proxy https://...`, PAC `HTTPS`); plain "
        "HTTP to the proxy gets a 403 and is counted (see [Serving the proxy over TLS]"
        "(#serving-the-proxy-over-tls-https-proxy))",
        doc_default="off: TLS and plain HTTP",
    ),
    Option(
        flag="--proxy-cert", metavar="FILE",
        flag_help="PEM file with the private key and certificate chain the proxy shows to "
        "clients connecting with TLS by a name the certificate holds (default: minted by the CA "
        "for the name the client used)",
        to_workers=True,
        doc="the certificate (PEM: private key, then the chain) the proxy shows to clients "
        "that connect with TLS by a name it holds; other names get one from the CA. Under "
        "mitmdump: `--set certs=NAME=FILE` for each name",
        doc_default="minted by the CA",
    ),
    Option(
        option="aiwarden_kerberos_keytab", default="", empty_is_unset=True,
        help="aiwarden: Kerberos single sign-on (Proxy-Authenticate: Negotiate) with the "
        "proxy's service key from this keytab; empty: off.",
        flag="--kerberos-keytab", metavar="FILE",
        flag_help="Kerberos single sign-on (Negotiate) with the service key of HTTP/<proxy "
        "host> from this keytab; beside --proxyauth's Basic when both are given",
        to_workers=True,
        doc="Kerberos single sign-on (`Proxy-Authenticate: Negotiate`) with the proxy's "
        "service key from this keytab (see [Single sign-on with Kerberos]"
        "(#single-sign-on-with-kerberos)); with `--proxyauth` too, browsers may use either",
        doc_default="off",
    ),
    Option(
        option="aiwarden_kerberos_principal", default="", empty_is_unset=True,
        help="aiwarden: the service principal tickets must be for (HTTP/host@REALM); "
        "empty: any principal in the keytab.",
        flag="--kerberos-principal", metavar="PRINCIPAL",
        flag_help="accept tickets for this service principal only (default: any in the keytab)",
        to_workers=True,
        doc="accept tickets for this service principal only (`HTTP/proxy.corp.example@CORP."
        "EXAMPLE`)",
        doc_default="any in the keytab",
    ),
    Option(
        option="aiwarden_kerberos_keep_realm", type=bool, default=False,
        help="aiwarden: keep the realm in Kerberos user names (alice@CORP.EXAMPLE).",
        flag="--kerberos-keep-realm", action="store_true", flag_default=False,
        flag_help="users are alice@CORP.EXAMPLE in rules and logs, not alice",
        to_workers=True,
        doc="a Kerberos user is `alice@CORP.EXAMPLE` in rules and the audit log, not `alice` "
        "(for several realms)",
        doc_default="realm stripped",
    ),
    Option(
        option="aiwarden_audit_log", default="", empty_is_unset=True,
        help="aiwarden audit log: a file (JSON Lines, reopened on SIGHUP), '-' for stdout, "
        "or empty for none.",
        flag="--audit-log", metavar="PATH",
        flag_help="JSON Lines audit log of every block, redact and monitor decision; "
        "'-' for stdout; reopened on SIGHUP (logrotate)",
        to_workers=True,
        doc="the JSON Lines audit log (see [Metrics and the audit log]"
        "(#metrics-and-the-audit-log)); `-` for stdout; reopened on SIGHUP",
        doc_default="none",
    ),
    Option(
        option="aiwarden_audit_syslog", default="", empty_is_unset=True,
        help="aiwarden audit records to syslog too (RFC 5424): udp://HOST[:514], "
        "tcp://HOST[:601] or tls://HOST[:6514]; empty for none.",
        flag="--audit-syslog", metavar="URL",
        flag_help="send every audit record to syslog as well, RFC 5424: udp://HOST[:514], "
        "tcp://HOST[:601] or tls://HOST[:6514] (octet counted)",
        to_workers=True,
        doc="send every audit record to a syslog server too, as RFC 5424 with the record's "
        "JSON (see [Syslog](#syslog-and-a-siem)): `udp://HOST[:514]`, `tcp://HOST[:601]` or "
        "`tls://HOST[:6514]`",
        doc_default="none",
    ),
    Option(
        option="aiwarden_audit_syslog_ca", default="", empty_is_unset=True,
        help="aiwarden: PEM CA bundle to verify a tls:// syslog server with; empty: the "
        "system's roots.",
        flag="--audit-syslog-ca", metavar="FILE",
        flag_help="PEM CA bundle to verify a tls:// syslog server with (default: the system's "
        "roots)",
        to_workers=True,
        doc="the CA bundle a `tls://` syslog server's certificate is verified with (its name "
        "is checked too)",
        doc_default="the system's roots",
    ),
    Option(
        option="aiwarden_audit_syslog_facility", default="local0", empty_is_unset=True,
        help="aiwarden: the syslog facility of audit messages, by name (local0...local7, "
        "audit, authpriv...) or number.",
        flag="--audit-syslog-facility", metavar="NAME",
        flag_help="syslog facility of the audit messages (default local0)",
        to_workers=True,
        doc="the syslog facility of the audit messages: `local0`...`local7`, `audit`, "
        "`authpriv`..., or a number 0-23",
        doc_default="`local0`",
    ),
    Option(
        option="aiwarden_coaching_store", default="", empty_is_unset=True,
        help="aiwarden coaching: the SQLite file of warning tickets and grants, shared by the "
        "workers; empty for aiwarden-coaching.sqlite3 in the confdir.",
        flag="--coaching-store", metavar="FILE",
        flag_help="the SQLite file where `warn` rules keep acknowledgement tickets and grants "
        "(shared by the workers; created 0600); default: aiwarden-coaching.sqlite3 in --confdir",
        to_workers=True,
        doc="where `warn` rules keep their tickets and grants (see [Coaching](#coaching-warn-"
        "justify-proceed)); one file the workers share",
        doc_default="`aiwarden-coaching.sqlite3` in `--confdir`",
    ),
    Option(
        option="aiwarden_identity_store", default="", empty_is_unset=True,
        help="aiwarden identity: the SQLite file of addresses an identity collector mapped to "
        "users, shared by the workers; empty for aiwarden-identity.sqlite3 in the confdir.",
        flag="--identity-store", metavar="FILE",
        flag_help="the SQLite file where addresses pushed by an identity collector "
        "(POST /identity/addresses) are kept, shared by the workers; default: "
        "aiwarden-identity.sqlite3 in --confdir",
        to_workers=True,
        doc="where pushed address-to-user entries are kept (see [Identity](#identity-who-is-"
        "behind-each-request)); one file the workers share",
        doc_default="`aiwarden-identity.sqlite3` in `--confdir`",
    ),
    Option(
        flag="--log-level", flag_default="info", choices=("debug", "info", "warning", "error"),
        to_workers=True,
        doc="the least severe log lines written (JSON lines on stderr)",
    ),
    Option(
        option="aiwarden_upstream_timeout", type=int, default=300,
        help="aiwarden: seconds a server may take to start answering a request before the "
        "client gets a 504 (0: no limit).",
        flag="--upstream-timeout", metavar=SECONDS, flag_default=300,
        flag_help="how long a server may take to start answering before the client gets a 504 "
        "(default 300; 0: no limit)",
        to_workers=True,
        doc="seconds a server may take to start answering before the client gets a 504; "
        "`0`: no limit",
    ),
    Option(
        option="aiwarden_client_header_timeout", type=int, default=30,
        help="aiwarden: seconds a client may take to send its request headers (after it "
        "connects, and after a CONNECT) before it is disconnected (0: no limit).",
        flag="--client-header-timeout", metavar=SECONDS, flag_default=30,
        flag_help="how long a client may take to send its request headers before it is "
        "disconnected (default 30; 0: no limit)",
        to_workers=True,
        doc="seconds a client may take to send its request headers, after connecting and "
        "after a CONNECT, before it is disconnected (slowloris); `0`: no limit",
    ),
    Option(
        option="aiwarden_policy_watch", type=int, default=2,
        help="aiwarden: look for policy changes every this many seconds (0: only on SIGHUP).",
        flag="--policy-watch", metavar=SECONDS, flag_default=2,
        flag_help="look for policy changes this often (default 2; 0: only on SIGHUP)",
        to_workers=True,
        doc="seconds between looks at the policy files; `0`: only on SIGHUP (see "
        "[Changing the policy](#changing-the-policy-while-it-runs))",
    ),
    Option(
        option="aiwarden_fast_tunnels", type=bool, default=True, run_only=True,
        help="aiwarden: relay tunnelled CONNECTs without mitmproxy's per-connection "
        "machinery (aiwarden run only).",
        flag="--no-fast-tunnels", dest="fast_tunnels", action="store_false", flag_default=True,
        flag_help="relay tunnels through mitmproxy's own machinery instead of aiwarden's fast "
        "path (slower; for troubleshooting)",
        to_workers=True,
        doc="relay tunnels through mitmproxy's own machinery instead of the fast path (see "
        "below); slower, for troubleshooting",
        doc_default="fast tunnels on",
    ),
    Option(
        option="aiwarden_proxy_protocol_from", type=Sequence[str], default=[], run_only=True,
        help="aiwarden: networks of load balancers whose connections start with a PROXY "
        "protocol header (v1 or v2) naming the client (aiwarden run only).",
        flag="--proxy-protocol-from", action="append", metavar="CIDR",
        flag_help="a load balancer's network: its connections must start with a PROXY protocol "
        "header (v1 or v2), whose source is then the client; never honoured from others",
        to_workers=True,
        doc="a network of load balancers whose connections start with a PROXY protocol header "
        "(v1 or v2); the client is the header's source, for rules, grants and the audit log. "
        "Required from those addresses, never honoured from others; repeat for more",
        doc_default="none",
    ),
    Option(
        flag="--workers", type=int, metavar="N",
        flag_help="processes serving the listen address; 1: a single process; 0 (the "
        "default): one per CPU this process may use, a cgroup CPU quota included",
        doc="processes serving the listen address (see [Several cores](#several-cores)); "
        "`1`: a single process",
        doc_default="one per usable CPU",
    ),
    Option(
        option="aiwarden_pac_proxy", type=Sequence[str], default=[],
        help="Proxies the PAC file names (HOST:PORT, or https://HOST:PORT for an HTTPS "
        "proxy; in failover order); default: this one.",
        flag="--pac-proxy", action="append", metavar="HOST:PORT", group=PAC_GROUP,
        flag_help="a proxy the PAC file names, in failover order; https://HOST:PORT for one "
        "reached over TLS (default: this proxy's address)",
        doc="a proxy the served PAC file names, in failover order; `https://HOST:PORT`: an "
        "HTTPS proxy (PAC `HTTPS`); repeat for more (see "
        "[PAC and WPAD](#pointing-browsers-at-the-proxy-pac-and-wpad))",
        doc_default="this proxy",
    ),
    Option(
        option="aiwarden_pac_mode", default="all",
        help="PAC mode: all (egress) or ai-only (monitor-first rollout).",
        flag="--pac-mode", choices=("all", "ai-only"), flag_default="all", group=PAC_GROUP,
        flag_help="default: all",
        doc="`all`: the PAC file sends everything through the proxy; `ai-only`: only AI "
        "services (a monitor-first rollout)",
    ),
    Option(
        option="aiwarden_pac_bypass", type=Sequence[str], default=[],
        help="Domains the PAC file sends DIRECT (never AI hosts).",
        flag="--pac-bypass", action="append", metavar="DOMAIN", group=PAC_GROUP,
        flag_help="a domain sent DIRECT",
        doc="a domain the PAC file sends DIRECT in mode `all` (AI hosts never are); repeat "
        "for more",
        doc_default="none",
    ),
    Option(
        option="aiwarden_pac_spread", type=bool, default=False,
        help="Rotate the PAC's proxies by a stable hash of the host.",
        flag="--pac-spread", action="store_true", flag_default=False, group=PAC_GROUP,
        flag_help="rotate the proxies by a hash of the host",
        doc="rotate the PAC file's proxies by a stable hash of the host",
        doc_default="off",
    ),
    # set by the supervisor of --workers N for each worker (see serve/run.py)
    Option(flag="--worker", type=int, hidden=True, doc="the worker's number, for its logs"),
    Option(
        flag="--worker-link", type=int, hidden=True,
        doc="the worker's end of its socket pair with the supervisor",
    ),
    Option(flag="--protect", hidden=True, doc="the supervisor's admin listener"),
)  # fmt: skip

BY_OPTION: dict[str, Option] = {o.option: o for o in OPTIONS if o.option is not None}
BY_FLAG: dict[str, Option] = {o.flag: o for o in OPTIONS if o.flag is not None}
RUN_FLAGS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.flag is not None)


class Loader(Protocol):
    """What `declare` needs of mitmproxy's addonmanager.Loader."""

    def add_option(self, name: str, typespec: Any, default: Any, help: str) -> None: ...


def declare(loader: Loader, *names: str) -> None:
    """Declare these aiwarden options, from an addon's `load`."""
    for name in names:
        o = BY_OPTION[name]
        if not o.declared:
            raise ValueError(f"{name} is mitmproxy's own option, not aiwarden's to declare")
        loader.add_option(name, o.type, o.default, o.help)


# -- `aiwarden run` ---------------------------------------------------------------------------


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, o: Option | str) -> None:
    """One flag, by its Option or its spelling (`--policy`)."""
    if isinstance(o, str):
        o = BY_FLAG[o]
    assert o.flag is not None
    kwargs: dict[str, Any] = {"action": o.action}
    if o.dest:
        kwargs["dest"] = o.dest
    if o.action in ("store", "append"):
        kwargs["metavar"] = o.metavar
        if o.type is int:
            kwargs["type"] = int
        if o.choices:
            kwargs["choices"] = o.choices
    if o.action in ("store", "append"):  # store_true and store_false have their own
        kwargs["default"] = os.environ.get(o.env, o.flag_default) if o.env else o.flag_default
    kwargs["help"] = argparse.SUPPRESS if o.hidden else o.flag_help
    parser.add_argument(o.flag, **kwargs)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag of `aiwarden run`, in the table's order, each in its `--help` section."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for o in RUN_FLAGS:
        if o.group is None:
            add_flag(parser, o)
        else:
            if o.group not in groups:
                groups[o.group] = parser.add_argument_group(o.group)
            add_flag(groups[o.group], o)


def settings_from(args: argparse.Namespace, known: Container[str]) -> dict[str, object]:
    """The mitmproxy options `aiwarden run` sets from its flags: those in `known` (the options
    the addons loaded in this process declare, and mitmproxy's own), given a value."""
    settings: dict[str, object] = {}
    for o in RUN_FLAGS:
        if o.option is None or not o.in_settings or o.option not in known:
            continue
        value = getattr(args, o.attribute)
        if value is None or (o.empty_is_unset and not value):
            continue  # mitmproxy's default stands
        settings[o.option] = list(value) if o.action == "append" else value
    return settings


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The supervisor's flags each worker gets as they are (the rest is the worker's own)."""
    return [x for o in RUN_FLAGS if o.to_workers for x in o.argv(getattr(args, o.attribute))]


# -- the docs ---------------------------------------------------------------------------------

BEGIN = "<!-- options: generated by `aiwarden options`; edit proxy/options.py instead -->"
END = "<!-- options: end -->"
WIDTH = 96  # the synopsis' lines


def synopsis() -> str:
    """`aiwarden run [--listen HOST:PORT] ...`, wrapped."""
    words = [_synopsis_word(o) for o in RUN_FLAGS if not o.hidden]
    lines, line = [], "aiwarden run"
    for word in words:
        if len(line) + 1 + len(word) > WIDTH:
            lines.append(line)
            line = " " * len("aiwarden run")
        line += " " + word
    return "\n".join([*lines, line])


def _synopsis_word(o: Option) -> str:
    assert o.flag is not None
    if o.action in ("store_true", "store_false"):
        return f"[{o.flag}]"
    value = "|".join(o.choices) if o.choices else o.metavar or o.attribute.upper()
    return f"[{o.flag} {value}{' ...' if o.action == 'append' else ''}]"


def markdown() -> str:
    """The README's section on the options: the synopsis and the table."""
    rows = [
        "| `aiwarden run` | `mitmdump --set` | default | meaning |",
        "|---|---|---|---|",
    ]
    for o in OPTIONS:
        if o.hidden:
            continue
        flag = f"`{o.flag}`" if o.flag else "—"
        mitmdump = f"`{o.option}`" if o.option and not o.run_only else "—"
        rows.append(f"| {flag} | {mitmdump} | {_doc_default(o)} | {o.doc} |")
    return "\n".join(["```", synopsis(), "```", "", *rows]) + "\n"


def _doc_default(o: Option) -> str:
    if o.doc_default is not None:
        return o.doc_default
    default = o.flag_default if o.flag else o.default
    return "none" if default in (None, "", []) else f"`{default}`"


SECTION = re.compile(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), re.DOTALL)


def readme_section(text: str) -> str | None:
    """The generated part of a README's text, or None when it has no markers."""
    found = SECTION.search(text)
    return found.group(1) if found else None


def update_readme(path: Path) -> bool:
    """Write the generated section into the README between its markers; whether it changed."""
    text = path.read_text()
    if readme_section(text) is None:
        raise ValueError(f"{path}: no {BEGIN} ... {END} markers")
    new = SECTION.sub(lambda _: f"{BEGIN}\n{markdown()}{END}", text, count=1)
    if new != text:
        path.write_text(new)
    return new != text
