"""A real MIT Kerberos realm for tests: its KDC (krb5kdc) on 127.0.0.1 only, on a free port,
with its database, configuration, keytabs and credential caches in a temporary folder.

Nothing here touches /etc: every program gets the realm's own krb5.conf through KRB5_CONFIG
(and the KDC its kdc.conf through KRB5_KDC_PROFILE). Host names are taken as written, never
canonicalised through DNS, so a client that connects to the proxy as `localhost` asks for a
ticket for HTTP/localhost@REALM.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SBIN = ("/usr/sbin", "/usr/bin")


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (f"{d}/{name}" for d in SBIN if Path(f"{d}/{name}").exists()), None
    )


KRB5KDC, KDB5_UTIL, KADMIN_LOCAL, KINIT, KVNO = (
    _tool(n) for n in ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "kvno")
)
MISSING = [
    name
    for name, path in (
        ("krb5kdc", KRB5KDC),
        ("kdb5_util", KDB5_UTIL),
        ("kadmin.local", KADMIN_LOCAL),
        ("kinit", KINIT),
        ("kvno", KVNO),
    )
    if path is None
]
WHY_MISSING = (
    f"MIT Kerberos is not installed ({', '.join(MISSING)} missing; .ci/run installs "
    "krb5-kdc, krb5-admin-server and krb5-user)"
)

REALM = "AIWARDEN.TEST"

KRB5_CONF = """\
[libdefaults]
  default_realm = {realm}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  ignore_acceptor_hostname = false
  udp_preference_limit = 1
[realms]
  {realm} = {{
    kdc = 127.0.0.1:{port}
  }}
[domain_realm]
  localhost = {realm}
  127.0.0.1 = {realm}
"""

KDC_CONF = """\
[kdcdefaults]
  kdc_listen = 127.0.0.1:{port}
  kdc_tcp_listen = 127.0.0.1:{port}
[realms]
  {realm} = {{
    database_name = {dir}/principal
    key_stash_file = {dir}/stash
    acl_file = {dir}/kadm5.acl
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}
    max_life = 10h
    max_renewable_life = 0
  }}
[logging]
  kdc = FILE:{dir}/kdc.log
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Realm:
    """A KDC of its own for REALM, serving until `stop`."""

    def __init__(self, directory: Path, realm: str = REALM) -> None:
        self.dir = directory
        self.realm = realm
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.krb5_conf = directory / "krb5.conf"
        self.krb5_conf.write_text(KRB5_CONF.format(realm=realm, port=self.port))
        (directory / "kdc.conf").write_text(
            KDC_CONF.format(realm=realm, port=self.port, dir=directory)
        )
        (directory / "kadm5.acl").write_text("")
        self.env = {
            **os.environ,
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(directory / "kdc.conf"),
            "KRB5CCNAME": f"FILE:{directory}/nobody.ccache",
        }
        self._run(KDB5_UTIL, "create", "-s", "-r", realm, "-P", "master-secret")
        self.kdc = subprocess.Popen(
            [KRB5KDC, "-n", "-r", realm], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.kdc.poll() is not None:
                    raise RuntimeError(
                        f"krb5kdc exited: {self.kdc.stderr.read().decode()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise RuntimeError("krb5kdc did not start listening") from None
                time.sleep(0.05)

    def _run(self, *cmd: str | None, stdin: str | None = None, env: dict | None = None) -> str:
        r = subprocess.run(
            [str(c) for c in cmd], input=stdin, capture_output=True, text=True,
            env=env or self.env, timeout=30,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"{cmd}: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def kadmin(self, query: str) -> str:
        return self._run(KADMIN_LOCAL, "-r", self.realm, "-q", query)

    def add_user(self, name: str, password: str) -> None:
        self.kadmin(f"addprinc -pw {password} {name}")

    def add_service(self, principal: str, keytab: Path | None = None) -> None:
        """A service principal with a random key, written to `keytab` when given."""
        self.kadmin(f"addprinc -randkey {principal}")
        if keytab is not None:
            self.kadmin(f"ktadd -k {keytab} {principal}")

    def kinit(self, user: str, password: str) -> dict[str, str]:
        """A credential cache of its own holding the user's TGT; the environment a client
        needs to use it (KRB5_CONFIG, KRB5CCNAME)."""
        env = {**self.env, "KRB5CCNAME": f"FILE:{self.dir}/{user}-{time.monotonic_ns()}.ccache"}
        self._run(KINIT, user, stdin=f"{password}\n", env=env)
        return {k: env[k] for k in ("KRB5_CONFIG", "KRB5CCNAME")}

    def kvno(self, env: dict[str, str], principal: str) -> None:
        """Get a service ticket into the cache now (at the real time)."""
        self._run(KVNO, principal, env={**self.env, **env})

    def stop(self) -> None:
        self.kdc.terminate()
        try:
            self.kdc.wait(10)
        except subprocess.TimeoutExpired:
            self.kdc.kill()
            self.kdc.wait()
