"""What `aiwarden run` checks before it starts anything, so that an operator's mistake is one
clear line and exit code 2, with any number of workers, instead of a traceback in each
worker or a proxy that keeps restarting.

- The ports: a port another process holds is refused. The check binds without SO_REUSEPORT,
  so it also finds another aiwarden on the port (the workers of one instance share their port
  with SO_REUSEPORT, which would otherwise let a second instance join the first silently and
  answer part of its traffic under another policy).
- The CA: readable by the user the proxy runs as, and a PEM key and certificate (ca.py).
- The Kerberos keytab, when single sign-on is on: readable, and holding the service key
  (auth/negotiate.py); and krb5's replay-cache folder writable, without which every ticket
  would be refused (a read-only container: KRB5RCACHEDIR=/tmp).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from proxy.auth.negotiate import Acceptor, KerberosUnavailable


def port_taken(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None when it is free (or port 0)."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as e:
        return f"{host!r} is not an address here: {e.strerror or e}"
    for family, kind, proto, _name, address in dict.fromkeys(infos):
        probe = socket.socket(family, kind, proto)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(address)
        except OSError as e:
            if e.errno == 98:  # EADDRINUSE
                return "another process listens on it (another aiwarden, perhaps)"
            return e.strerror or str(e)
        finally:
            probe.close()
    return None


def keytab_unusable(keytab: str | None, principal: str | None) -> str | None:
    """Why the keytab of --kerberos-keytab cannot be used, or None when it can (or none)."""
    if not keytab:
        return None
    try:
        Acceptor(Path(keytab), principal or None)
    except KerberosUnavailable as e:
        return str(e)
    if "KRB5RCACHENAME" in os.environ or "KRB5RCACHETYPE" in os.environ:
        return None  # a replay cache of the operator's choosing
    folder = os.environ.get("KRB5RCACHEDIR") or "/var/tmp"  # krb5's default
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"krb5's replay cache folder {folder} is not writable (set KRB5RCACHEDIR to one "
            "that is); every ticket would be refused"
        )
    return None
