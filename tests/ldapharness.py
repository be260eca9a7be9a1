"""A real OpenLDAP slapd on loopback, for the tests of LDAP proxy authentication and directory
groups: its own database under a temporary directory, filled from LDIF, on a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
SCHEMA = Path("/etc/ldap/schema")
SUFFIX = "dc=corp,dc=example"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"
CONFIG = """
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
pidfile {dir}/slapd.pid
{tls}modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{admin}"
rootpw {password}
directory {dir}/db
"""


def installed() -> bool:
    return Path(SLAPD).exists() and Path(SLAPADD).exists() and SCHEMA.is_dir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slapd:
    """slapd serving `ldif` (`{suffix}` in it is the suffix) at ldap://127.0.0.1:port."""

    def __init__(
        self, work: Path, ldif: str, overlays: str = "", tls: tuple[Path, Path] | None = None
    ) -> None:
        """`overlays`: more slapd.conf lines for the database (`overlay memberof`); `tls`:
        (certificate, key) for StartTLS on the ldap:// port and for ldaps:// at `tls_port`."""
        self.work = work
        (work / "db").mkdir(parents=True)
        lines = ""
        if tls is not None:
            lines = f"TLSCertificateFile {tls[0]}\nTLSCertificateKeyFile {tls[1]}\n"
        config = CONFIG.format(schema=SCHEMA, dir=work, suffix=SUFFIX, admin=ADMIN_DN,
                               password=ADMIN_PASSWORD, tls=lines) + overlays  # fmt: skip
        (work / "slapd.conf").write_text(config)
        (work / "data.ldif").write_text(ldif.format(suffix=SUFFIX).lstrip())
        subprocess.run([SLAPADD, "-f", str(work / "slapd.conf"), "-l", str(work / "data.ldif")],
                       check=True, capture_output=True)  # fmt: skip
        self.port = free_port()
        self.tls_port = free_port() if tls is not None else None
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (again, on the same port and database)."""
        urls = f"{self.url}/"
        if self.tls_port is not None:
            urls += f" ldaps://127.0.0.1:{self.tls_port}/"
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(self.work / "slapd.conf"), "-h", urls],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.process.poll() is None, self.process.stderr.read().decode()
                assert time.monotonic() < deadline, "slapd did not start"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def modify(self, dn: str, changes: dict) -> None:
        """Change an entry as the directory's administrator (ldap3's modify changes)."""
        with self._admin() as conn:
            assert conn.modify(dn, changes), conn.result

    def add(self, dn: str, object_class: str, attributes: dict) -> None:
        """Add an entry over LDAP (overlays see it, unlike what slapadd loaded)."""
        with self._admin() as conn:
            assert conn.add(dn, object_class, attributes), conn.result

    def _admin(self):
        import ldap3

        server = ldap3.Server("127.0.0.1", port=self.port, get_info=ldap3.NONE)
        return ldap3.Connection(server, ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)
