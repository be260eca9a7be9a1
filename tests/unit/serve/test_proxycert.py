"""The operator's certificate for the proxy's own name (`--proxy-cert`): what is accepted,
and the one line that says what is wrong with anything else."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.serve.proxycert import certificate_names, mitmproxy_certs


def pem_of(key, cert: x509.Certificate) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + cert.public_bytes(serialization.Encoding.PEM)


def certificate(key, names=("proxy.corp.example",), ips=("10.0.0.5",), days=30, cn="proxy"):
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=days))
    )  # fmt: skip
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.fixture
def key():
    return ec.generate_private_key(ec.SECP256R1())


def test_the_names_of_a_good_certificate(tmp_path, key):
    path = tmp_path / "proxy.pem"
    path.write_bytes(pem_of(key, certificate(key, names=("Proxy.Corp.Example", "*.corp.example"))))
    names = certificate_names(path)
    assert names == ["proxy.corp.example", "*.corp.example", "10.0.0.5"]
    assert mitmproxy_certs(path, names)[0] == f"proxy.corp.example={path.resolve()}"


def test_the_common_name_when_there_is_no_subject_alt_name(tmp_path, key):
    path = tmp_path / "proxy.pem"
    path.write_bytes(pem_of(key, certificate(key, names=(), ips=(), cn="proxy.corp.example")))
    assert certificate_names(path) == ["proxy.corp.example"]


def test_problems_each_in_one_line(tmp_path, key):
    other = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(key)
    cases = {
        "missing.pem": (None, "cannot be read"),
        "empty.pem": (b"", "holds no PEM certificate"),
        "nokey.pem": (cert.public_bytes(serialization.Encoding.PEM), "holds no private key"),
        "otherkey.pem": (pem_of(other, cert), "its private key is not the first certificate's"),
        "expired.pem": (pem_of(key, certificate(key, days=-1)), "is not valid now"),
        "badkey.pem": (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            + cert.public_bytes(serialization.Encoding.PEM),
            "its private key cannot be read",
        ),
    }
    for name, (data, why) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ValueError, match=why) as e:
            certificate_names(path)
        assert "\n" not in str(e.value)
        assert "PRIVATE KEY" not in str(e.value)
