"""`aiwarden ca`: a proper root CA, a private key nobody else can read, imports checked."""

from __future__ import annotations

import datetime
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from proxy import ca

AIWARDEN = str(Path(sys.executable).parent / "aiwarden")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AIWARDEN, "ca", *args], capture_output=True, text=True, timeout=60)


def test_init_makes_a_root_ca_with_the_right_extensions(tmp_path):
    r = run("init", "--dir", str(tmp_path), "--name", "Corp Egress CA", "--days", "30")
    assert r.returncode == 0, r.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == (
        "Corp Egress CA"
    )
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=29) < lifetime <= datetime.timedelta(days=30)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert f"sha256:      {fingerprint}" in r.stdout


def test_the_private_key_is_0600_and_in_mitmproxys_format(tmp_path):
    ca.init(tmp_path)
    bundle = tmp_path / "mitmproxy-ca.pem"
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca.pem").stat().st_mode) == 0o644
    raw = bundle.read_bytes()
    assert raw.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    key = serialization.load_pem_private_key(raw, None)
    cert = x509.load_pem_x509_certificates(raw)[0]
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert b"PRIVATE KEY" not in (tmp_path / "ca.pem").read_bytes()


def test_init_refuses_to_overwrite_without_force(tmp_path):
    ca.init(tmp_path)
    first = (tmp_path / "ca.pem").read_bytes()
    r = run("init", "--dir", str(tmp_path))
    assert r.returncode == 2
    assert "exists; use --force to replace it" in r.stderr
    assert (tmp_path / "ca.pem").read_bytes() == first
    assert run("init", "--dir", str(tmp_path), "--force").returncode == 0
    assert (tmp_path / "ca.pem").read_bytes() != first


def test_show(tmp_path):
    ca.init(tmp_path, name="Shown CA")
    r = run("show", "--dir", str(tmp_path))
    assert r.returncode == 0
    assert "subject:     O=Shown CA,CN=Shown CA" in r.stdout
    missing = run("show", "--dir", str(tmp_path / "none"))
    assert missing.returncode == 2 and "aiwarden ca init" in missing.stderr


def _issue(name: str, issuer_key, issuer_name, key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name or subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )  # fmt: skip


def _pem(*objects) -> bytes:
    out = b""
    for o in objects:
        if isinstance(o, x509.Certificate):
            out += o.public_bytes(serialization.Encoding.PEM)
        else:
            out += o.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    return out


def test_import_an_intermediate_serves_its_chain(tmp_path):
    root_key, inter_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = _issue("Corp Root", root_key, None, root_key, ca=True)
    inter = _issue("Corp Egress Intermediate", root_key, root.subject, inter_key, ca=True)
    r = _import(tmp_path, [inter, root], inter_key)
    assert r.returncode == 0, r.stderr
    assert "chain:       2 certificates" in r.stdout
    bundle = (tmp_path / "ca" / "mitmproxy-ca.pem").read_bytes()
    assert [c.subject for c in x509.load_pem_x509_certificates(bundle)] == [
        inter.subject,
        root.subject,
    ]
    assert stat.S_IMODE((tmp_path / "ca" / "mitmproxy-ca.pem").stat().st_mode) == 0o600


def _import(tmp_path: Path, certs: list, key) -> subprocess.CompletedProcess:
    (tmp_path / "cert.pem").write_bytes(_pem(*certs))
    (tmp_path / "key.pem").write_bytes(_pem(key))
    return run(
        "import",
        "--dir",
        str(tmp_path / "ca"),
        "--cert",
        str(tmp_path / "cert.pem"),
        "--key",
        str(tmp_path / "key.pem"),
    )


def test_import_refuses_a_key_that_does_not_match(tmp_path):
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    r = _import(tmp_path, [_issue("CA", key, None, key, ca=True)], other)
    assert r.returncode == 2 and "is not the key of the first certificate" in r.stderr
    assert not (tmp_path / "ca").exists()


def test_import_refuses_a_certificate_that_is_not_a_ca(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    r = _import(tmp_path, [_issue("leaf", key, None, key, ca=False)], key)
    assert r.returncode == 2 and "is not a CA" in r.stderr


def test_a_ca_directory_is_complete_so_it_can_be_mounted_read_only(tmp_path):
    from conftest import SHIPPED
    from proxyharness import Proxy, write_policy

    ca.init(tmp_path / "ca")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "ca").iterdir()}
    assert set(before) == {"ca.pem", "mitmproxy-ca.pem", "mitmproxy-dhparam.pem"}
    policy = write_policy(tmp_path / "policy", "rules: []\n", SHIPPED / "catalog")
    proxy = Proxy(policy, tmp_path / "ca")
    try:
        after = {
            p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "ca").iterdir()
        }
        assert after == before, "starting the proxy must not write into the CA directory"
    finally:
        assert proxy.stop() == 0


def _check_as(uid: int, directory, answers) -> None:
    os.setgid(uid)
    os.setuid(uid)
    try:
        ca.check_usable(directory)
        answers.put("usable")
    except ca.CAError as e:
        answers.put(str(e))


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user")
def test_a_key_the_service_user_cannot_read_is_explained():
    base = Path(tempfile.mkdtemp(prefix="aiwarden-ca-"))  # pytest's own tmp is root's, 0700
    base.chmod(0o755)
    directory = base / "ca"
    ca.init(directory)
    directory.chmod(0o755)  # the directory is open; the key is root's, 0600
    answers = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(
        target=_check_as, args=(10001, directory, answers)
    )
    child.start()
    child.join(30)
    why = answers.get(timeout=5)
    assert why.startswith(f"cannot read {directory / ca.MITMPROXY_BUNDLE}: Permission denied")
    assert "the proxy runs as uid 10001 gid 10001; it is owned by uid 0 gid 0, mode 0600" in why
    ca.check_usable(directory)  # root can: the control
    shutil.rmtree(base)
