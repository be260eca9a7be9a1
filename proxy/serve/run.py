"""`aiwarden run`: mitmproxy embedded with only the addons the product needs.

Stock mitmdump dispatches every hook to about 35 addons; aiwarden loads the few that move
traffic (core, proxyserver, next_layer, tlsconfig), proxyauth for optional proxy
authentication, errorcheck to stop on startup errors, and its own. Three more savings apply
to `aiwarden run` only (not to `mitmdump -s`): hooks go only to the addons that have them
(LeanAddonManager), mitmproxy's per-message type checks are skipped, and tunnels take the
fast path (fastpath.py) in front of mitmproxy on the listener. Those that reach into
mitmproxy's internals live in proxy/mitm/compat.py, which also refuses a mitmproxy version
aiwarden was not tested with.

With `--workers N` (N > 1) this process becomes the supervisor of workers.py, and each worker
is this same command with hidden options: `--worker I` names it in the logs, `--worker-link
FD` ties it to the supervisor, `--protect` names the supervisor's admin listener, and its
listening socket is opened with SO_REUSEPORT so the workers share the port.

With `--upstream-proxy http://[USER:PASS@]HOST:PORT`, mitmproxy runs in its upstream mode
(`upstream:http://HOST:PORT`, credentials in its `upstream_auth` option, which mitmproxy's
UpstreamAuth addon sends on its CONNECTs to the parent), the fast path opens its tunnels
through the parent too, and the loop's resolver never refuses the parent's own name.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from mitmproxy import ctx, exceptions, master, options
from mitmproxy.addons import (
    core,
    errorcheck,
    next_layer,
    proxyauth,
    proxyserver,
    tlsconfig,
    upstream_auth,
)

from proxy import ca, pac
from proxy.mitm.compat import (
    ALLOW_ENV,
    GuardedLoop,
    LeanAddonManager,
    SharedPortLoop,
    UntestedMitmproxy,
    check_mitmproxy_version,
    skip_message_type_checks,
    startup_failed,
)
from proxy.mitm.pipeline import Pipeline, build
from proxy.mitm.proxy_tls import clear_text_warning, log_clear_text_warning
from proxy.observe import logs
from proxy.options import settings_from
from proxy.policy.model import Policy
from proxy.serve.admin import format_address, parse_address
from proxy.serve.fastpath import FastPath
from proxy.serve.preflight import keytab_unusable, port_taken
from proxy.serve.proxycert import certificate_names, mitmproxy_certs
from proxy.serve.workers import Supervisor, available_cpus


@dataclass(frozen=True)
class Flags:
    """`aiwarden run`'s own flags, checked before the policy is read: a typo in a flag is
    reported at once, not after the policy's errors or its load."""

    listen: tuple[str, int]
    protect: list[tuple[str, int]]  # a worker never connects to its supervisor's admin listener
    parent: Parent | None
    proxy_names: list[str]  # the names of --proxy-cert's certificate
    untested: str | None  # a mitmproxy version accepted by ALLOW_ENV, not tested


def check_flags(args: argparse.Namespace) -> Flags | str:
    """The checked flags, or what is wrong with them in one line."""
    try:
        untested = check_mitmproxy_version()  # before anything starts (compat.py)
    except UntestedMitmproxy as e:
        return str(e)
    try:
        listen = parse_address(args.listen)
        if args.admin:
            parse_address(args.admin)
        protect = [parse_address(args.protect)] if args.protect else []
        parent = parse_parent(args.upstream_proxy) if args.upstream_proxy else None
    except ValueError as e:
        return str(e)
    if args.workers is not None and args.workers < 0:
        return "--workers must be 0 (one per usable CPU) or more"
    if args.upstream_ca and not Path(args.upstream_ca).is_file():
        return f"--upstream-ca {args.upstream_ca}: no such file"
    for proxy in args.pac_proxy or ():
        try:
            pac.pac_entry(proxy)
        except ValueError as e:
            return f"--pac-proxy {e}"
    proxy_names: list[str] = []
    if args.proxy_cert:
        try:
            proxy_names = certificate_names(args.proxy_cert)
        except ValueError as e:
            return f"--proxy-cert {args.proxy_cert}: {e}"
    return Flags(listen, protect, parent, proxy_names, untested)


def run(args: argparse.Namespace, flags: Flags, policy: Policy) -> int:
    """Serve with `policy` (checked by the caller, as `flags` were)."""
    logs.setup(args.log_level, args.worker)
    if flags.untested:
        logs.event("mitmproxy_untested", version=flags.untested, accepted_by=ALLOW_ENV)
    listen = flags.listen
    confdir = Path(args.confdir)
    if args.worker is None:  # a worker's supervisor checked all this already
        problem = _preflight(args, listen, confdir)
        if problem:
            print(f"aiwarden run: {problem}", file=sys.stderr)
            return 2
        if warning := clear_text_warning(args.proxyauth, args.require_proxy_tls):
            log_clear_text_warning(warning)  # once, not once per worker
        if args.proxy_cert:
            logs.event("proxy_certificate", file=args.proxy_cert, names=",".join(flags.proxy_names))
    workers = args.workers or available_cpus()
    try:
        if workers > 1:
            return asyncio.run(Supervisor(args, workers, listen, policy).run())
        # SO_REUSEPORT for a worker: the other workers listen on this port too
        loop = SharedPortLoop if args.worker is not None else GuardedLoop
        serve = _serve(args, listen, confdir, flags.protect, flags.parent, policy)
        return asyncio.run(serve, loop_factory=loop)
    except KeyboardInterrupt:
        return 0


@dataclass(frozen=True)
class Parent:
    """The parent proxy of `--upstream-proxy`."""

    host: str
    port: int
    auth: str | None  # USER:PASS, for mitmproxy's upstream_auth option

    @property
    def mode(self) -> str:
        """mitmproxy's mode for it."""
        return f"upstream:http://{format_address(self.host, self.port)}"


def parse_parent(url: str) -> Parent:
    """`http://[USER:PASS@]HOST:PORT`, or ValueError (which never repeats the credentials)."""
    parts = urllib.parse.urlsplit(url.strip())
    shown = format_address(parts.hostname or "?", parts.port or 0) if "@" in url else url
    problem = None
    if parts.scheme != "http":
        problem = "only http:// parents are supported"
    elif not parts.hostname or parts.port is None:
        problem = "give its host and port, http://HOST:PORT"
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        problem = "a parent proxy URL has no path"
    if problem:
        raise ValueError(f"--upstream-proxy {shown}: {problem}")
    auth = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        auth = f"{user}:{urllib.parse.unquote(parts.password or '')}"
    return Parent(parts.hostname.lower(), parts.port, auth)


def _preflight(args: argparse.Namespace, listen: tuple[str, int], confdir: Path) -> str | None:
    """Why the proxy cannot start (one line), before anything starts; creates the CA when
    there is none."""
    for what, address in (("--listen", listen), ("--admin", args.admin)):
        if not address:
            continue
        if isinstance(address, str):
            address = parse_address(address)
        if why := port_taken(*address):
            return f"{what} {format_address(*address)}: {why}"
    if why := keytab_unusable(args.kerberos_keytab, args.kerberos_principal):
        return f"--kerberos-keytab: {why}"
    try:
        if not ca.exists(confdir):
            info = ca.init(confdir)
            logs.event(
                "ca_created",
                dir=str(confdir),
                subject=info.subject,
                fingerprint=info.fingerprint_sha256,
            )
        ca.check_usable(confdir)
    except ca.CAError as e:
        return f"the CA in {confdir} cannot be used: {e}"
    except OSError as e:
        return f"cannot create a CA in {confdir}: {e.strerror or e}"
    return None


class WorkerLink:
    """A worker's tie to its supervisor: "ready" once the proxy listens; shut down when the
    supervisor's end closes, so no worker outlives it."""

    def __init__(self, fd: int) -> None:
        self.socket = socket.socket(fileno=fd)
        self.socket.setblocking(False)

    def running(self) -> None:
        if startup_failed(ctx.master):
            return  # it will exit: the supervisor reports it as failing to start
        self.socket.send(b"ready\n")
        asyncio.get_running_loop().add_reader(self.socket.fileno(), self._supervisor_gone)

    def _supervisor_gone(self) -> None:
        try:
            if self.socket.recv(64):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        asyncio.get_running_loop().remove_reader(self.socket.fileno())
        logs.event("supervisor_gone")
        ctx.master.shutdown()


async def _serve(
    args: argparse.Namespace,
    listen: tuple[str, int],
    confdir: Path,
    protect: list[tuple[str, int]],
    parent: Parent | None,
    policy: Policy,
) -> int:
    mode = parent.mode if parent else "regular"
    opts = options.Options(
        listen_host=listen[0], listen_port=listen[1], confdir=str(confdir), mode=[mode]
    )
    skip_message_type_checks()
    m = master.Master(opts, with_termlog=False)
    m.addons = LeanAddonManager(m)
    m.addons.add(
        core.Core(),
        proxyauth.ProxyAuth(),
        upstream_auth.UpstreamAuth(),  # the parent's credentials on CONNECTs to it
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        errorcheck.ErrorCheck(repeat_errors_on_stderr=True),
    )
    preloaded = (str(args.policy), policy)  # the policy cmd_run checked: not read again
    pipeline = build(protect, admin=args.worker is None, warns=False, preloaded=preloaded)
    m.addons.add(*pipeline.addons)
    loop = asyncio.get_running_loop()
    if isinstance(loop, GuardedLoop):
        loop.gate = pipeline.gate
        loop.parent = (parent.host, parent.port) if parent else None
        loop.fastpath = FastPath(
            pipeline.gate, pipeline.recorder, pipeline.discovery, pipeline.identity,
            pipeline.directory,
        )  # fmt: skip
        m.addons.add(loop.fastpath)  # after Deadlines: it reads the header timeout
    if args.worker_link is not None:
        m.addons.add(WorkerLink(args.worker_link))
    # the flags of the options the addons above declared (a worker has no admin listener)
    settings = {"connection_strategy": "lazy", **settings_from(args, opts)}  # lazy: blocked
    if args.proxy_cert:  # run() checked it: the names it holds get it, others the CA's
        settings["certs"] = mitmproxy_certs(args.proxy_cert, certificate_names(args.proxy_cert))
    if parent is not None:
        settings["upstream_auth"] = parent.auth
        logs.event("parent_proxy", address=format_address(parent.host, parent.port),
                   credentials=parent.auth is not None)  # fmt: skip
    try:
        opts.update(**settings)
    except exceptions.OptionsError as e:
        print(f"aiwarden run: {e}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, m.shutdown)
    loop.add_signal_handler(signal.SIGHUP, _on_sighup, pipeline)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await m.run()
    logs.event("stopped")
    return 0


def _on_sighup(pipeline: Pipeline) -> None:
    """SIGHUP: read the policy again, and start a new audit log file (logrotate moved it)."""
    pipeline.policy.reload_policy()
    pipeline.recorder.reopen()
