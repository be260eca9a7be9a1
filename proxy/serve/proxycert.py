"""The operator's certificate for the proxy's own name (`--proxy-cert`), checked before the
start, and handed to mitmproxy as its `certs` option.

Clients that reach the proxy with TLS (an HTTPS proxy) by default get a certificate the
aiwarden CA mints for the name they used; they trust that CA already. An operator may give
the certificate of the proxy's name instead (from the company's PKI, for the name in the PAC
file): one PEM file with the private key and the certificate chain, leaf first, which is the
format mitmproxy's `certs` option reads. The checks here say in one line what is wrong with
it, instead of a failed handshake at the first client.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID


def certificate_names(path: str | Path) -> list[str]:
    """The names (DNS names and IP addresses) the proxy's certificate in `path` is for, once
    it is checked: readable, a private key and a certificate that belong together, in its
    validity period. ValueError says what is wrong, in one line (never the key)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot be read: {e.strerror or e}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError("holds no PEM certificate") from None
    if b"PRIVATE KEY-----" not in data:
        raise ValueError("holds no private key: put the key and the chain in one PEM file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"its private key cannot be read ({e})") from None
    leaf = certificates[0]
    if leaf.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError("its private key is not the first certificate's (the leaf comes first)")
    now = datetime.datetime.now(datetime.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        until = f"{leaf.not_valid_after_utc:%Y-%m-%d}"
        raise ValueError(f"the certificate is not valid now (valid until {until})")
    return _names(leaf)


def _names(leaf: x509.Certificate) -> list[str]:
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = None
    names: list[str] = []
    if sans is not None:
        names += sans.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    else:
        names += [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names:
        raise ValueError("the certificate names no host (no subjectAltName, no common name)")
    return [name.lower() for name in dict.fromkeys(names)]


def mitmproxy_certs(path: str | Path, names: list[str]) -> list[str]:
    """mitmproxy's `certs` option for them: `NAME=FILE` for each name."""
    return [f"{name}={Path(path).resolve()}" for name in names]
