"""Test-only name resolution for a proxy started by a test: with this directory first on
PYTHONPATH, the names listed in AIWARDEN_TEST_LOOPBACK_NAMES (comma-separated) resolve to
127.0.0.1, so a test can reach local upstreams under names such as api.some-llm.ai; those in
AIWARDEN_TEST_UNRESOLVABLE_NAMES do not resolve at all, as for a proxy whose parent proxy
resolves the names it cannot (and no lookup leaves the machine)."""

import os
import socket

_NAMES = {n for n in os.environ.get("AIWARDEN_TEST_LOOPBACK_NAMES", "").split(",") if n}
_NOWHERE = {n for n in os.environ.get("AIWARDEN_TEST_UNRESOLVABLE_NAMES", "").split(",") if n}

if _NAMES or _NOWHERE:
    _getaddrinfo = socket.getaddrinfo

    def _loopback_getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str):
            name = name.lower().rstrip(".")
            if name in _NOWHERE:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            if name in _NAMES:
                host = "127.0.0.1"
        return _getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = _loopback_getaddrinfo
