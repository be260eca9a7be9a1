"""`aiwarden run`: mitmproxy embedded with only the addons the product needs.

Stock mitmdump dispatches every hook to about 35 addons; aiwarden loads the few that move
traffic (core, proxyserver, next_layer, tlsconfig), proxyauth for optional proxy
authentication, errorcheck to stop on startup errors, and its own two.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from mitmproxy import exceptions, master, options
from mitmproxy.addons import core, errorcheck, next_layer, proxyauth, proxyserver, tlsconfig

from . import ca, logs
from .addon import AIWarden
from .admin import AdminServer, parse_address


def run(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    try:
        listen = parse_address(args.listen)
        parse_address(args.admin)
    except ValueError as e:
        print(f"aiwarden run: {e}", file=sys.stderr)
        return 2
    confdir = Path(args.confdir)
    if not ca.exists(confdir):
        info = ca.init(confdir)
        logs.event(
            "ca_created",
            dir=str(confdir),
            subject=info.subject,
            fingerprint=info.fingerprint_sha256,
        )
    try:
        return asyncio.run(_serve(args, listen, confdir))
    except KeyboardInterrupt:
        return 0


async def _serve(args: argparse.Namespace, listen: tuple[str, int], confdir: Path) -> int:
    opts = options.Options(
        listen_host=listen[0], listen_port=listen[1], confdir=str(confdir), mode=["regular"]
    )
    m = master.Master(opts, with_termlog=False)
    m.addons.add(
        core.Core(),
        proxyauth.ProxyAuth(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        errorcheck.ErrorCheck(repeat_errors_on_stderr=True),
        AdminServer(),  # before AIWarden, which protects the admin address once it is bound
        AIWarden(),
    )
    settings: dict[str, object] = {
        "connection_strategy": "lazy",  # blocked hosts are never connected to
        "aiwarden_policy": args.policy,
        "aiwarden_admin": args.admin,
    }
    if args.upstream_ca:
        settings["ssl_verify_upstream_trusted_ca"] = args.upstream_ca
    if args.proxyauth:
        settings["proxyauth"] = args.proxyauth
    if args.audit_log:
        settings["aiwarden_audit_log"] = args.audit_log
    try:
        opts.update(**settings)
    except exceptions.OptionsError as e:
        print(f"aiwarden run: {e}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, m.shutdown)
    loop.add_signal_handler(signal.SIGHUP, _reopen_audit_log, m)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await m.run()
    logs.event("stopped")
    return 0


def _reopen_audit_log(m: master.Master) -> None:
    """SIGHUP: logrotate has moved the audit log; start a new file."""
    warden = m.addons.get("aiwarden")
    if warden is not None and warden.audit is not None:
        warden.audit.reopen()
        logs.event("audit_log_reopened")
