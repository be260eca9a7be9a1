"""The corporate CA that signs the certificates of intercepted connections.

A CA directory (`certs/` by default, also mitmproxy's confdir) holds:
- `ca.pem`: the certificate (chain) to install on clients; public;
- `mitmproxy-ca.pem`: private key, then the CA certificate and any chain, as mitmproxy reads
  it; mode 0600, never logged, never committed.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PUBLIC_CERT = "ca.pem"
MITMPROXY_BUNDLE = "mitmproxy-ca.pem"  # key + certificates, the file mitmproxy loads
# mitmproxy writes this file at start when it is missing; written here, a CA directory is
# complete and can be mounted read-only (a Kubernetes Secret, a read-only volume).
DHPARAM = "mitmproxy-dhparam.pem"
DEFAULT_NAME = "aiwarden corporate egress CA"


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


class CAError(Exception):
    pass


@dataclass(frozen=True)
class CAInfo:
    subject: str
    fingerprint_sha256: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    chain_length: int


def exists(directory: Path) -> bool:
    return (directory / MITMPROXY_BUNDLE).exists()


def init(
    directory: Path, name: str = DEFAULT_NAME, days: int = 3650, force: bool = False
) -> CAInfo:
    """Create a new root CA in `directory`; refuses to replace one unless `force`."""
    if days < 1:
        raise CAError("--days must be at least 1")
    if exists(directory) and not force:
        raise CAError(f"{directory / MITMPROXY_BUNDLE} exists; use --force to replace it")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(directory, key, [cert])
    return info(directory)


def import_ca(directory: Path, cert_file: Path, key_file: Path, force: bool = False) -> CAInfo:
    """Use an existing CA or intermediate: its certificate (and chain) and its private key."""
    if exists(directory) and not force:
        raise CAError(f"{directory / MITMPROXY_BUNDLE} exists; use --force to replace it")
    try:
        certs = x509.load_pem_x509_certificates(cert_file.read_bytes())
    except (OSError, ValueError) as e:
        raise CAError(f"{cert_file}: not a PEM certificate file ({e})") from e
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CAError(f"{key_file}: not an unencrypted PEM private key ({e})") from e
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CAError(f"{key_file}: only RSA and EC keys are supported")
    leaf = certs[0]
    if _public_der(leaf.public_key()) != _public_der(key.public_key()):
        raise CAError(f"{key_file} is not the key of the first certificate in {cert_file}")
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CAError(f"{cert_file}: the certificate is not a CA (BasicConstraints CA:TRUE)")
    _write(directory, key, certs)
    return info(directory)


def info(directory: Path) -> CAInfo:
    path = directory / PUBLIC_CERT
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as e:
        raise CAError(
            f"no CA in {directory} ({e.strerror}); create one with 'aiwarden ca init'"
        ) from e
    cert = certs[0]
    return CAInfo(
        subject=cert.subject.rfc4514_string(),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        chain_length=len(certs),
    )


def check_usable(directory: Path) -> None:
    """Raise CAError saying, in one line, why the proxy could not load the CA in `directory`
    as the user it runs as: a file it cannot read, or one that is not a PEM key and
    certificate. mitmproxy would otherwise fail with a traceback, in every worker."""
    for name in (MITMPROXY_BUNDLE, DHPARAM):
        path = directory / name
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CAError(_unreadable(path, e)) from e
        if name != MITMPROXY_BUNDLE:
            continue
        try:
            serialization.load_pem_private_key(data, None)
            x509.load_pem_x509_certificates(data)
        except (ValueError, TypeError) as e:
            raise CAError(
                f"{path} is not a PEM private key and certificate ({e}); create the CA with "
                "'aiwarden ca init' or 'aiwarden ca import'"
            ) from e


def _unreadable(path: Path, error: OSError) -> str:
    text = f"cannot read {path}: {error.strerror}"
    if isinstance(error, PermissionError):
        try:
            st = path.stat()
            owner = (
                f"; it is owned by uid {st.st_uid} gid {st.st_gid}, mode {st.st_mode & 0o777:04o}"
            )
        except OSError:
            owner = ""
        text += (
            f" (the proxy runs as uid {os.getuid()} gid {os.getgid()}{owner}: give that user "
            "read access, see README 'Deploying')"
        )
    return text


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write(directory: Path, key, certs: list[x509.Certificate]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    pem_certs = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    _atomic_write(directory / MITMPROXY_BUNDLE, pem_key + pem_certs, mode=0o600)
    _atomic_write(directory / PUBLIC_CERT, pem_certs, mode=0o644)
    if not (directory / DHPARAM).exists():
        from mitmproxy.certs import DEFAULT_DHPARAM

        _atomic_write(directory / DHPARAM, DEFAULT_DHPARAM, mode=0o644)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with `mode`, so a key is never readable by
    others, not even for a moment, and a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
