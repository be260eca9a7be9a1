"""`aiwarden run --workers N`: one port served by several processes, the kernel spreading the
connections; one admin listener summing their metrics; one audit log with whole lines; a
worker that dies is started again; no worker outlives the supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import SHIPPED
from proxyharness import AIWARDEN, Proxy, metrics, plain_request

from proxy import ca
from proxy.serve.workers import available_cpus

BLOCKED = "GET http://chatgpt.com/{path} HTTP/1.1\r\nHost: chatgpt.com\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def confdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("workers") / "ca"
    ca.init(path)
    return path


@pytest.fixture()
def two(confdir, tmp_path):
    audit = tmp_path / "audit.jsonl"
    proxy = Proxy(SHIPPED, confdir, "--workers", "2", "--audit-log", str(audit))
    yield proxy, audit
    assert proxy.stop() == 0


def workers_of(pid: int) -> list[int]:
    """The supervisor's child processes, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def block_many(proxy: Proxy, count: int, path_length: int = 10) -> list[bytes]:
    """`count` blocked requests, each on a connection of its own, 16 at a time."""

    def one(i: int) -> bytes:
        path = f"{i:06d}" + "x" * path_length
        return plain_request(proxy.address, BLOCKED.format(path=path))

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def wait_until(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def audit_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_connections_spread_and_metrics_add_up(two):
    proxy, audit = two
    assert (
        proxy.wait_for(lambda r: r.get("event") == "listening" and "worker" not in r)["workers"]
        == 2
    )
    replies = block_many(proxy, 120)
    assert all(r.startswith(b"HTTP/1.1 403") for r in replies)
    wait_until(lambda: len(audit_lines(audit)) == 120)
    served_by = {r["worker"] for r in proxy.drain() if r.get("event") == "block"}
    assert served_by == {0, 1}  # SO_REUSEPORT spread them: both workers blocked some
    m = metrics(proxy)
    blocked = (("rule", "block-ai"), ("service", "chatgpt"))
    assert m[("aiwarden_blocked_total", blocked)] == 120  # the sum over both workers
    assert m[("aiwarden_policy_reloads_total", (("result", "success"),))] == 2
    assert m[("aiwarden_workers", ())] == 2
    assert m[("aiwarden_workers_serving", ())] == 2
    assert m[("aiwarden_open_connections", ())] == 0
    # gauges combine, not add up: one build, one policy
    assert [k for k in m if k[0] == "aiwarden_build_info"] and all(
        v == 1 for k, v in m.items() if k[0] in ("aiwarden_build_info", "aiwarden_policy_info")
    )
    ready = httpx.get(f"http://{proxy.admin}/readyz").text
    assert ready.startswith("ready: 2 of 2 workers serving, policy ")


def test_one_audit_log_with_whole_lines_under_concurrent_writers(two):
    proxy, audit = two
    block_many(proxy, 400, path_length=400)  # ~600-byte lines, from both workers at once
    wait_until(lambda: len(audit_lines(audit)) >= 400)
    lines = audit_lines(audit)
    assert len(lines) == 400
    records = [json.loads(line) for line in lines]  # any interleaving would break one
    assert sorted(r["path"][1:7] for r in records) == [f"{i:06d}" for i in range(400)]


def test_sighup_reopens_the_audit_log_in_every_worker(two):
    proxy, audit = two
    block_many(proxy, 10)
    wait_until(lambda: len(audit_lines(audit)) == 10)
    audit.rename(audit.with_suffix(".1"))
    proxy.process.send_signal(signal.SIGHUP)
    wait_until(
        lambda: len([r for r in proxy.drain() if r.get("event") == "audit_log_reopened"]) == 2
    )
    block_many(proxy, 60)
    wait_until(lambda: len(audit_lines(audit)) == 60)
    assert len(audit_lines(audit.with_suffix(".1"))) == 10


def test_a_worker_that_dies_is_started_again(two):
    proxy, _ = two
    first, second = sorted(workers_of(proxy.process.pid))
    os.kill(first, signal.SIGKILL)
    exited = proxy.wait_for(lambda r: r.get("event") == "worker_exited")
    assert exited["code"] == -signal.SIGKILL and exited["restart_in"] == 0.5
    # the other worker serves meanwhile
    assert httpx.get(f"http://{proxy.admin}/readyz").status_code == 200
    assert all(r.startswith(b"HTTP/1.1 403") for r in block_many(proxy, 20))
    wait_until(lambda: metrics(proxy).get(("aiwarden_workers_serving", ())) == 2)
    now = set(workers_of(proxy.process.pid))
    assert second in now and first not in now and len(now) == 2
    assert metrics(proxy)[("aiwarden_worker_restarts_total", ())] == 1
    assert all(r.startswith(b"HTTP/1.1 403") for r in block_many(proxy, 40))


def test_no_worker_outlives_the_supervisor(confdir):
    proxy = Proxy(SHIPPED, confdir, "--workers", "2")
    pids = workers_of(proxy.process.pid)
    assert len(pids) == 2
    proxy.process.kill()  # SIGKILL: no chance to stop them itself
    proxy.process.wait()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids))


def test_sigterm_stops_workers_and_removes_the_metrics_directory(confdir):
    proxy = Proxy(SHIPPED, confdir, "--workers", "2")
    pids = workers_of(proxy.process.pid)
    environ = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
    directory = next(e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    directory = Path(directory.split(b"=", 1)[1].decode())
    assert directory.is_dir() and oct(directory.stat().st_mode & 0o777) == "0o700"
    assert proxy.stop() == 0
    assert not directory.exists()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_worker_that_cannot_start_stops_the_supervisor(confdir, tmp_path):
    result = subprocess.run(
        [
            AIWARDEN, "run", "--policy", str(SHIPPED), "--confdir", str(confdir),
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", "2",
            "--proxyauth", f"@{tmp_path / 'missing.htpasswd'}",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "while starting; its log lines above say why" in result.stderr
    assert "missing.htpasswd" in result.stderr


def test_a_busy_port_is_reported_before_any_worker_starts(confdir):
    with socket_on_loopback() as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                AIWARDEN, "run", "--policy", str(SHIPPED), "--confdir", str(confdir),
                "--listen", f"127.0.0.1:{port}", "--admin", "", "--workers", "2",
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"aiwarden run: --listen 127.0.0.1:{port}: another process listens on it "
        "(another aiwarden, perhaps)\n"
    )


def test_pac_and_ca_come_from_the_supervisor(confdir):
    proxy = Proxy(SHIPPED, confdir, "--workers", "2", "--pac-mode", "ai-only",
                  "--pac-proxy", "proxy.corp.example:3128")  # fmt: skip
    try:
        pac = httpx.get(f"http://{proxy.admin}/proxy.pac")
        assert pac.headers["content-type"] == "application/x-ns-proxy-autoconfig"
        assert '"PROXY proxy.corp.example:3128"' in pac.text and "ai-only" in pac.text
        assert httpx.get(f"http://{proxy.admin}/ca.pem").text.startswith("-----BEGIN CERT")
        # the workers refuse to connect to the admin listener
        reply = plain_request(
            proxy.address,
            f"GET http://{proxy.admin}/metrics HTTP/1.1\r\nHost: {proxy.admin}\r\n"
            "Connection: close\r\n\r\n",
        )
        assert reply.startswith(b"HTTP/1.1 403") and b"aiwarden_" not in reply
    finally:
        assert proxy.stop() == 0


def test_default_is_one_worker_per_usable_cpu(confdir):
    proxy = Proxy(SHIPPED, confdir, "--workers", "0")
    try:
        listening = proxy.wait_for(lambda r: r.get("event") == "listening" and "worker" not in r)
        assert listening.get("workers", 1) == available_cpus()
    finally:
        assert proxy.stop() == 0


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("50000 100000\n", 1), ("150000 100000\n", 2), ("garbage", None)],
)
def test_usable_cpus_follow_the_cgroup_quota(tmp_path, cpu_max, expected):
    mask = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text(cpu_max)
    got = available_cpus(tmp_path / "cpu.max")
    assert got == (mask if expected is None else min(mask, expected))


def socket_on_loopback():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_an_audit_log_failing_in_a_worker_makes_the_supervisor_unready(confdir):
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is missing: no way to make writes fail with ENOSPC here")
    proxy = Proxy(SHIPPED, confdir, "--workers", "2", "--audit-log", "/dev/full")
    try:
        assert httpx.get(f"http://{proxy.admin}/readyz").status_code == 200
        assert all(r.startswith(b"HTTP/1.1 403") for r in block_many(proxy, 10))
        wait_until(lambda: httpx.get(f"http://{proxy.admin}/readyz").status_code == 503)
        assert "audit log cannot be written" in httpx.get(f"http://{proxy.admin}/readyz").text
        assert metrics(proxy)[("aiwarden_audit_log_ok", ())] == 0
    finally:
        assert proxy.stop() == 0
