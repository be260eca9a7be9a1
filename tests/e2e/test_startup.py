"""What an operator's mistakes at start look like: one clear line and exit code 2 before any
worker starts (a CA that cannot be used, a port another process holds, a second aiwarden on
the same port), a supervisor whose worker keeps dying that says so on /healthz, and no
traceback when the output of a command is cut short."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import SHIPPED
from proxyharness import AIWARDEN, Proxy, plain_request

from proxy import ca


@pytest.fixture(scope="module")
def confdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("startup") / "ca"
    ca.init(path)
    return path


def run(confdir: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AIWARDEN, "run", "--policy", str(SHIPPED), "--confdir", str(confdir), *flags],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_ca_that_cannot_be_used_stops_the_start_with_one_line(tmp_path, workers):
    broken = tmp_path / "ca"
    ca.init(broken)
    (broken / ca.MITMPROXY_BUNDLE).write_text("not a key\n")
    result = run(broken, "--listen", "127.0.0.1:0", "--admin", "", "--workers", workers)
    assert result.returncode == 2
    assert result.stderr.startswith(f"aiwarden run: the CA in {broken} cannot be used: ")
    assert "is not a PEM private key and certificate" in result.stderr
    assert len(result.stderr.splitlines()) == 1  # no traceback, no worker started
    assert "Traceback" not in result.stdout + result.stderr


def test_a_second_instance_on_the_port_is_refused_and_the_first_keeps_it(confdir, tmp_path):
    first = Proxy(SHIPPED, confdir, "--workers", "2")
    try:
        port = int(first.address.rsplit(":", 1)[1])
        second = run(confdir, "--listen", f"127.0.0.1:{port}", "--admin", "", "--workers", "2")
        assert second.returncode == 2
        assert f"--listen 127.0.0.1:{port}: another process listens on it" in second.stderr
        # every request is the first instance's: a blocked request says the shipped rule
        for _ in range(8):
            request = (
                "GET http://chatgpt.com/ HTTP/1.1\r\nHost: chatgpt.com\r\nConnection: close\r\n\r\n"
            )
            answer = plain_request(first.address, request)
            assert b"x-aiwarden-rule: block-ai" in answer.lower()
    finally:
        assert first.stop() == 0


def test_a_busy_admin_port_is_one_line(confdir):
    first = Proxy(SHIPPED, confdir)
    try:
        result = run(confdir, "--listen", "127.0.0.1:0", "--admin", first.admin)
    finally:
        first.stop()
    assert result.returncode == 2
    assert result.stderr == (
        f"aiwarden run: --admin {first.admin}: another process listens on it "
        "(another aiwarden, perhaps)\n"
    )


def workers_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_a_worker_that_keeps_dying_makes_healthz_fail(confdir):
    proxy = Proxy(SHIPPED, confdir, "--workers", "2")
    health = f"http://{proxy.admin}/healthz"
    try:
        assert httpx.get(health).status_code == 200
        victim = min(workers_of(proxy.process.pid))
        for death in range(3):  # the same slot, each time soon after it started
            others = set(workers_of(proxy.process.pid)) - {victim}
            os.kill(victim, signal.SIGKILL)
            proxy.wait_for(lambda r: r.get("event") == "worker_exited", timeout=30)
            proxy.logs.clear()
            if death < 2:
                deadline = time.monotonic() + 30
                while not (new := set(workers_of(proxy.process.pid)) - others - {victim}):
                    assert time.monotonic() < deadline, "the worker was not started again"
                    time.sleep(0.1)
                victim = new.pop()
        unhealthy = httpx.get(health)
        assert unhealthy.status_code == 503
        assert "died 3 times in a row" in unhealthy.text
    finally:
        proxy.stop()


def test_no_traceback_when_the_reader_stops_early():
    result = subprocess.run(
        f"{AIWARDEN} catalog --json | head -c 10", shell=True, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.stdout == "[\n  {\n    " and result.stderr == ""
