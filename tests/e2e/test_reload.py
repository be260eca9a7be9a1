"""Policy changes without a restart, on the real proxy: an edited policy is in force within
the watch interval, a broken one (or a catalog file truncated to nothing) is refused with its
file:line errors while the last good one stays, SIGHUP reloads at once, a request in flight
finishes under the policy it started with, and the PAC file, /readyz and every worker follow,
also edits made right after start or while a reload reads."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from conftest import SHIPPED_CATALOG, local_ai_policy
from proxyharness import WORKERS, Proxy, Upstream, by_label, curl, write_policy

from proxy import ca
from proxy.policy.loader import load_policy
from proxy.policy.reload import PolicyReloader

W = int(WORKERS)  # processes per proxy the harness starts; each loads the policy itself

SERVICE = local_ai_policy()  # no rules: each version below adds its own
BLOCK = (
    SERVICE
    + """
rules:
  - id: no-local-ai
    match: {services: [local-ai]}
    action: block
"""
)
MONITOR = (
    SERVICE
    + """
rules:
  - id: watch-local-ai
    match: {services: [local-ai]}
    action: monitor
"""
)
BROKEN = (
    SERVICE
    + """
rules:
  - id: watch-local-ai
    match: {services: [local-ia]}
    action: monitor
"""
)


@pytest.fixture(scope="module")
def confdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reload") / "ca"
    ca.init(path)
    return path


@pytest.fixture(scope="module")
def upstream():
    server = Upstream()
    yield server
    server.close()


def status(proxy: Proxy, upstream: Upstream, path: str = "/page") -> int:
    r = curl("-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy.url,
             f"http://localhost:{upstream.port}{path}")  # fmt: skip
    return int(r.stdout)


def rewrite(directory: Path, body: str) -> None:
    """Replace policy.yaml the way editors and config tools do: a new file moved in place."""
    write_policy(directory / "next", body, SHIPPED_CATALOG)
    os.replace(directory / "next" / "policy.yaml", directory / "policy.yaml")


def loaded(proxy: Proxy, count: int, workers: int = W, timeout: float = 15) -> list[dict]:
    """Wait for the count-th policy_loaded event (the first is the start)."""
    return _events(proxy, "policy_loaded", count * workers, timeout)


def _events(proxy: Proxy, name: str, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in proxy.drain() if r.get("event") == name]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"no {count} {name} events: {proxy.logs[-5:]}"
        time.sleep(0.05)


def reloads(proxy: Proxy) -> dict[str, float]:
    return by_label(proxy, "aiwarden_policy_reloads_total", "result")


def test_an_edit_is_in_force_within_the_watch_interval(confdir, upstream, tmp_path):
    policy = write_policy(tmp_path / "p", BLOCK, SHIPPED_CATALOG)
    proxy = Proxy(policy, confdir, "--policy-watch", "1")
    try:
        assert status(proxy, upstream) == 403
        before = httpx.get(f"http://{proxy.admin}/proxy.pac").text
        rewrite(policy, MONITOR)
        events = loaded(proxy, 2)
        first, second = events[0], events[-1]
        assert first["digest"] != second["digest"]
        assert status(proxy, upstream) == 200
        assert reloads(proxy) == {"success": 2.0 * W}  # each worker counts its own
        ready = httpx.get(f"http://{proxy.admin}/readyz").text
        assert ready.startswith("ready: ") and f"policy {second['digest']}" in ready
        after = httpx.get(f"http://{proxy.admin}/proxy.pac").text
        assert first["digest"] in before and second["digest"] in after
    finally:
        assert proxy.stop() == 0


def test_a_broken_change_is_refused_and_the_last_good_policy_stays(confdir, upstream, tmp_path):
    policy = write_policy(tmp_path / "p", BLOCK, SHIPPED_CATALOG)
    proxy = Proxy(policy, confdir, "--policy-watch", "1")
    try:
        start = loaded(proxy, 1)[0]
        rewrite(policy, BROKEN)
        rejected = _events(proxy, "policy_rejected", W, 15)[0]
        assert rejected["level"] == "error" and rejected["in_force"] == start["digest"]
        assert rejected["errors"] == [
            f"{policy / 'policy.yaml'}:12: rule 'watch-local-ai', match: unknown service "
            "'local-ia' (did you mean 'local-ai'?)"
        ]
        assert status(proxy, upstream) == 403  # still the old policy
        assert reloads(proxy) == {"success": 1.0 * W, "error": 1.0 * W}
        assert start["digest"] in httpx.get(f"http://{proxy.admin}/readyz").text
        rewrite(policy, MONITOR)  # fixed: taken
        loaded(proxy, 2)
        assert status(proxy, upstream) == 200
        assert reloads(proxy) == {"success": 2.0 * W, "error": 1.0 * W}
    finally:
        assert proxy.stop() == 0


def test_sighup_reloads_when_watching_is_off(confdir, upstream, tmp_path):
    policy = write_policy(tmp_path / "p", BLOCK, SHIPPED_CATALOG)
    proxy = Proxy(policy, confdir, "--policy-watch", "0")
    try:
        rewrite(policy, MONITOR)
        time.sleep(2.5)  # would have been seen by a watcher; none runs
        assert status(proxy, upstream) == 403
        proxy.process.send_signal(__import__("signal").SIGHUP)
        loaded(proxy, 2)
        assert status(proxy, upstream) == 200
    finally:
        assert proxy.stop() == 0


def test_a_configmap_symlink_swap_is_seen(confdir, upstream, tmp_path):
    """Kubernetes mounts a ConfigMap as policy.yaml -> ..data/policy.yaml, ..data -> a
    timestamped directory, and updates it by swapping ..data."""
    root = tmp_path / "configmap"
    write_policy(root / "v1", BLOCK, SHIPPED_CATALOG)
    write_policy(root / "v2", MONITOR, SHIPPED_CATALOG)
    (root / "..data").symlink_to("v1")
    (root / "policy.yaml").symlink_to("..data/policy.yaml")
    proxy = Proxy(root, confdir, "--policy-watch", "1")
    try:
        assert status(proxy, upstream) == 403
        (root / "..data_tmp").symlink_to("v2")
        os.replace(root / "..data_tmp", root / "..data")
        loaded(proxy, 2)
        assert status(proxy, upstream) == 200
    finally:
        assert proxy.stop() == 0


def test_a_request_in_flight_finishes_under_the_policy_it_started_with(confdir, upstream, tmp_path):
    policy = write_policy(tmp_path / "p", MONITOR, SHIPPED_CATALOG)
    proxy = Proxy(policy, confdir, "--policy-watch", "1")
    upstream.sse_gate.clear()
    events = []
    try:
        with (
            httpx.Client(proxy=proxy.url, timeout=30) as client,
            client.stream("GET", f"http://localhost:{upstream.port}/sse") as response,
        ):
            assert response.status_code == 200
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                events.append(line)
                if len(events) == 1:  # the stream is open: now the policy blocks it
                    rewrite(policy, BLOCK)
                    loaded(proxy, 2)
                    assert status(proxy, upstream) == 403  # new requests: the new policy
                    upstream.sse_gate.set()
        assert events == ["data: event 0", "data: event 1", "data: event 2"]
    finally:
        upstream.sse_gate.set()
        assert proxy.stop() == 0


def test_every_worker_and_the_supervisors_pac_follow(confdir, upstream, tmp_path):
    policy = write_policy(tmp_path / "p", BLOCK, SHIPPED_CATALOG)
    proxy = Proxy(policy, confdir, "--workers", "2", "--policy-watch", "1")
    try:
        assert "new-ai.example" not in httpx.get(f"http://{proxy.admin}/proxy.pac").text
        rewrite(
            policy,
            MONITOR.replace("hosts: [localhost]", "hosts: [localhost, new-ai.example]"),
        )
        changed = [r for r in loaded(proxy, 2, workers=2) if "worker" in r][2:]
        assert sorted(r["worker"] for r in changed) == [0, 1]
        assert all(status(proxy, upstream) == 200 for _ in range(20))  # whichever worker
        assert reloads(proxy) == {"success": 4.0}

        deadline = time.monotonic() + 15
        while "new-ai.example" not in httpx.get(f"http://{proxy.admin}/proxy.pac").text:
            assert time.monotonic() < deadline, "the PAC file did not follow"
            time.sleep(0.1)
    finally:
        assert proxy.stop() == 0


def test_a_touched_file_is_not_a_new_policy(tmp_path):
    import asyncio

    policy_dir = write_policy(tmp_path / "p", BLOCK, SHIPPED_CATALOG)
    installed, rejected = [], []

    async def scenario() -> None:
        reloader = PolicyReloader(
            policy_dir,
            load_policy(policy_dir),
            lambda policy: policy.digest,
            lambda policy, prepared: installed.append(prepared),
            rejected.append,
        )
        os.utime(policy_dir / "policy.yaml", ns=(1, 1))  # same bytes, new mtime
        await reloader._reload(forced=False)
        await reloader._reload(forced=True)  # SIGHUP installs even the same policy
        (policy_dir / "policy.yaml").write_text("version: [")
        await reloader._reload(forced=False)

    asyncio.run(scenario())
    assert len(installed) == 1
    assert [type(e).__name__ for e in rejected] == ["PolicyError"]


def test_a_catalog_file_truncated_to_nothing_is_refused_and_the_block_stays(
    confdir, upstream, tmp_path
):
    """A write caught half-way, or a full disk: loaded, the empty file would drop its
    services, and the service it blocked would be allowed."""
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    local = "services:\n" + SERVICE.split("services:\n")[1]
    (catalog / "local.yaml").write_text(local)
    (catalog / "openai.yaml").write_text((SHIPPED_CATALOG / "openai.yaml").read_text())
    network = SERVICE.split("services:")[0]
    rules = "rules:\n  - {id: no-chat, match: {categories: [chat]}, action: %s}\n"
    policy = write_policy(tmp_path / "p", network + rules % "block", catalog)
    proxy = Proxy(policy, confdir, "--policy-watch", "1")
    try:
        start = loaded(proxy, 1)[0]
        assert status(proxy, upstream) == 403
        os.truncate(catalog / "local.yaml", 0)
        rejected = _events(proxy, "policy_rejected", W, 15)[0]
        assert rejected["errors"] == [
            f"{catalog / 'local.yaml'}:1: the file is empty: only whitespace or comments"
        ]
        assert rejected["in_force"] == start["digest"]
        assert status(proxy, upstream) == 403  # still blocked: the last good policy stays
        assert reloads(proxy) == {"success": 1.0 * W, "error": 1.0 * W}
        assert start["digest"] in httpx.get(f"http://{proxy.admin}/readyz").text

        (catalog / "local.yaml").write_text(local)  # control: the 403 was the rule's
        write_policy(tmp_path / "next", network + rules % "monitor", catalog)
        os.replace(tmp_path / "next" / "policy.yaml", policy / "policy.yaml")
        loaded(proxy, 2)
        assert status(proxy, upstream) == 200
    finally:
        assert proxy.stop() == 0


def bulk_catalog(directory: Path, hosts: int) -> Path:
    """A catalog large enough that loading it takes a while (about 0.5 s at 30,000 hosts)."""
    directory.mkdir()
    lines = ["services:"]
    for s in range(hosts // 10):
        lines += [
            f"  - {{id: bulk-{s}, name: Bulk {s}, vendor: Bulk, category: api, source: test,",
            f"     hosts: [{', '.join(f'h{h}.bulk{s}.example' for h in range(10))}]}}",
        ]
    (directory / "bulk.yaml").write_text("\n".join(lines) + "\n")
    return directory


def test_every_worker_converges_on_edits_made_right_after_start_and_while_reloading(
    confdir, upstream, tmp_path
):
    """Each worker loads its policy at start and watches it on its own. Edits come right
    after start, quickly one after another, and then while every process is reading the
    policy (SIGHUP makes them all load at once; the edit lands during that load). Every
    worker, and the supervisor behind /readyz, must end on the last edit: a fingerprint
    taken after loading took the last edit for loaded, and that worker never loaded it."""
    catalog = bulk_catalog(tmp_path / "catalog", 30_000)
    policy = tmp_path / "p"

    def edit(n: int, body: str) -> None:
        write_policy(tmp_path / "next", f"# edit {n}\n{body}", catalog)
        os.replace(tmp_path / "next" / "policy.yaml", policy / "policy.yaml")

    def converge(timeout: float = 60) -> None:
        """Until each worker's last policy_loaded, and /readyz, name the policy on disk."""
        want = load_policy(policy).digest[:12]
        deadline = time.monotonic() + timeout
        while True:
            in_force = {}  # worker -> digest of its last policy_loaded
            for r in proxy.drain():
                if r.get("event") == "policy_loaded" and "worker" in r:
                    in_force[r["worker"]] = r["digest"]
            ready = httpx.get(f"http://{proxy.admin}/readyz").text
            if in_force == {0: want, 1: want} and f"policy {want}" in ready:
                return
            assert time.monotonic() < deadline, f"not all on {want}: {in_force}; {ready!r}"
            time.sleep(0.1)

    write_policy(policy, BLOCK, catalog)
    proxy = Proxy(policy, confdir, "--workers", "2", "--policy-watch", "1")
    try:
        for n, body in enumerate([MONITOR, BLOCK, MONITOR, BLOCK]):
            edit(n, body)
            time.sleep(0.3)  # pacing, so that some edits land while a reload reads
        converge()
        assert all(status(proxy, upstream) == 403 for _ in range(10))  # whichever worker

        proxy.process.send_signal(signal.SIGHUP)  # every process starts loading now
        time.sleep(0.2)  # pacing: each has read policy.yaml and is parsing the catalog
        edit(4, MONITOR)
        converge()
        assert all(status(proxy, upstream) == 200 for _ in range(10))
    finally:
        assert proxy.stop() == 0
