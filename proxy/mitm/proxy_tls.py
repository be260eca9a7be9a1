"""TLS from the client to the proxy itself (an HTTPS proxy, a "secure web proxy").

Basic proxy authentication sends the password with every request; over plain HTTP to the
proxy anyone on the path reads it. A client that connects with TLS to the proxy's port and
speaks proxy HTTP inside (curl's `--proxy https://`, a PAC file's `HTTPS host:port`) keeps it
private. mitmproxy's regular mode terminates that TLS itself (a ClientHello as a client's
first bytes), with a certificate the aiwarden CA mints for the name the client used, or the
operator's for the names it holds (run.py's `--proxy-cert`, mitmproxy's `certs`). Inside,
every CONNECT and request is decided exactly as on plain HTTP; admission.py leaves this
ClientHello alone (it names the proxy, not a destination).

This addon adds:
- `aiwarden_require_proxy_tls`: a client's first bytes to the proxy must be a TLS handshake;
  plain proxy HTTP gets a 403 saying so, is closed before anything is read or forwarded, and
  is counted in `aiwarden_bad_requests_total{reason="proxy_tls_required"}`;
- the warning at start when Basic credentials may cross the network in clear
  (`clear_text_warning`): logged here under `mitmdump -s`, by run.py under `aiwarden run`.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, tls
from mitmproxy.proxy import layer

from proxy.mitm import compat, framing
from proxy.mitm.recording import Recorder
from proxy.observe.audit import new_reference
from proxy.options import declare

logger = logging.getLogger("aiwarden")

REQUIRED_REASON = "proxy_tls_required"


def clear_text_warning(proxyauth: str | None, require_tls: bool) -> str | None:
    """Why Basic passwords may cross the network in clear, or None: Basic is on
    (`--proxyauth`) and plain HTTP to the proxy is accepted. Kerberos alone sends no
    password; with TLS required every password is inside TLS."""
    if not proxyauth or require_tls:
        return None
    return (
        "Basic proxy authentication (--proxyauth) is on and plain HTTP to the proxy is "
        "accepted: passwords cross the network in clear text; serve the proxy over TLS "
        "and require it (--require-proxy-tls; mitmdump: aiwarden_require_proxy_tls), or use "
        "Kerberos"
    )


def log_clear_text_warning(message: str) -> None:
    """The one line of the warning."""
    logger.warning(message, extra={"event": "proxy_auth_in_clear", "fields": {"detail": message}})


class ProxyTLS:
    def __init__(self, recorder: Recorder, warns: bool = True) -> None:
        self.recorder = recorder
        self.warns = warns  # False under `aiwarden run`: run.py warns once, for every worker

    def load(self, loader) -> None:
        declare(loader, "aiwarden_require_proxy_tls")

    def running(self) -> None:
        if not self.warns:
            return
        message = clear_text_warning(ctx.options.proxyauth, ctx.options.aiwarden_require_proxy_tls)
        if message:
            log_clear_text_warning(message)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        """The client's TLS to the proxy carries HTTP/1.1: mitmproxy takes no CONNECT over
        HTTP/2, which browsers offer."""
        if compat.is_tls_to_the_proxy(data.context):
            compat.speak_http1_to_the_proxy(data.context)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """With TLS required, a client's first bytes to the proxy that are not a TLS
        handshake are refused before mitmproxy reads them as a request."""
        if not ctx.options.aiwarden_require_proxy_tls:
            return
        if not compat.is_proxy_first_layer(nextlayer):
            return
        data = nextlayer.data_client()
        if not data or data[:1] == framing.HANDSHAKE:
            return  # TLS to the proxy (mitmproxy's ClientTLSLayer), or nothing yet
        reference = new_reference()
        client = nextlayer.context.client.peername[0]
        self.recorder.bad_request(REQUIRED_REASON, reference=reference, client=client)
        text = (
            "aiwarden: this proxy takes TLS only; set it as an https:// proxy "
            f"(nothing was forwarded; reference {reference})"
        )
        answer = _forbidden(text, reference) if data[:1].isalpha() else b""  # else: close
        compat.refuse(nextlayer, answer)


def _forbidden(text: str, reference: str) -> bytes:
    """A 403 to a plain proxy request: the client shows it, and the connection ends."""
    body = text.encode() + b"\n"
    return (
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"X-AIWarden-Reference: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
        % (reference.encode(), len(body), body)
    )
