"""What TLS to the proxy (an HTTPS proxy) costs: the proxy's CPU per new tunnelled
connection, through the plain HTTP proxy (fast path, mitmproxy, Basic authentication) and
through the HTTPS proxy (README: Serving the proxy over TLS).

    PYTHONPATH=. .venv/bin/python bench/https_proxy_bench.py [N]

curl opens N new tunnels one after another to a local TLS server; the proxy (one process)
reports its utime + stime from /proc before and after. Loopback only; needs curl with
HTTPS-proxy support.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import SHIPPED_CATALOG
from proxyharness import Proxy, Upstream, make_upstream_pki, write_policy

from proxy import ca

POLICY = "network:\n  clients: [127.0.0.0/8]\n  deny_destinations: [169.254.0.0/16]\nrules: []\n"
AUTH = ("--proxyauth", "u:p")
CASES = (
    ("plain HTTP proxy, fast path", (), "http"),
    ("plain HTTP proxy, --no-fast-tunnels", ("--no-fast-tunnels",), "http"),
    ("plain HTTP proxy, --proxyauth", AUTH, "http"),
    ("HTTPS proxy", (), "https"),
    ("HTTPS proxy, --proxyauth", AUTH, "https"),
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(count: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="https-proxy-bench-"))
    ca.init(work / "ca")
    upstream_ca, cert, key = make_upstream_pki(work)
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    server = Upstream(tls=(cert, key))
    try:
        for label, flags, scheme in CASES:
            proxy = Proxy(policy, work / "ca", "--workers", "1", *flags)
            port = proxy.address.rsplit(":", 1)[1]
            command = [
                "curl", "-sS", "-o", "/dev/null",
                # credentials only where asked: the fast path leaves them to mitmproxy
                *(("--proxy-user", "u:p") if flags == AUTH else ()),
                "--proxy", f"{scheme}://127.0.0.1:{port}",
                "--proxy-cacert", str(work / "ca" / "ca.pem"),
                "--cacert", str(upstream_ca), f"https://localhost:{server.port}/",
            ]  # fmt: skip
            subprocess.run(command, check=True)  # warm-up
            before = cpu_seconds(proxy.process.pid)
            for _ in range(count):
                subprocess.run(command, check=True)
            used = cpu_seconds(proxy.process.pid) - before
            proxy.stop()
            print(f"{label:40s} {1000 * used / count:6.2f} ms CPU per new tunnelled connection")
    finally:
        server.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
