"""`aiwarden run --workers N`: one listen address served by N processes.

The supervisor (this module) checks the policy, holds the listen port, serves the admin
listener and starts N workers: `aiwarden run` processes that each embed mitmproxy and bind the
same address with SO_REUSEPORT, so the kernel spreads new connections across them. Each
worker is tied to the supervisor by a socket pair: it writes "ready" once it listens, and
shuts down when the pair closes (the supervisor is gone). A worker that exits is started
again, after a pause that grows while it keeps failing.

Metrics: workers write to PROMETHEUS_MULTIPROC_DIR, a private directory the supervisor makes
and removes; /metrics sums them (prometheus-client's multiprocess mode) and adds the
supervisor's own aiwarden_workers gauges. Audit: every worker appends whole lines to the one
file (see audit.py). SIGHUP is passed on to the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, multiprocess

from proxy.coach.store import CoachingStore, store_path
from proxy.identity.addresses import AddressStore, apply_push
from proxy.identity.addresses import store_path as identity_store_path
from proxy.observe.audit import AuditLog, AuditTrail, coaching_fields
from proxy.observe.logs import event
from proxy.observe.syslog import SyslogSender
from proxy.options import PARENT_ENV, worker_argv
from proxy.policy.model import Policy
from proxy.policy.reload import PolicyReloader
from proxy.serve.admin import AdminListener, PacSettings, format_address, parse_address

START_TIMEOUT = 120.0  # a worker that is not listening by then is taken for failed
STOP_TIMEOUT = 10.0  # then SIGKILL
RESTART_DELAYS = (0.5, 1, 2, 5, 10, 30)  # seconds, while a worker keeps dying young
STABLE_AFTER = 30.0  # a worker that lived this long starts the delays over
UNHEALTHY_AFTER = 3  # young deaths in a row after which /healthz fails (it restarts anyway)


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota
    (a container's `limits.cpu`), which os.cpu_count() does not see."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux, or a seccomp filter said no
        count = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


def reserve(host: str, port: int) -> list[socket.socket]:
    """Bind (without listening) every address `host` stands for, with SO_REUSEPORT, so the
    port is ours: it fails early if something else holds it, and port 0 becomes a real
    port the workers can share. Bound sockets that do not listen get no connections."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            s = socket.socket(family, kind, proto)
            sockets.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # every family on the port the first got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            s.bind(address)
    except OSError:
        for s in sockets:
            s.close()
        raise
    return sockets


class Worker:
    """One worker slot: the process in it now, and whether it serves."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.serving = False
        self.started = 0.0  # time.monotonic() when the process in the slot started
        self.young_deaths = 0  # exits in a row, each before STABLE_AFTER
        self.first_ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def keeps_dying(self) -> bool:
        """Died young UNHEALTHY_AFTER times in a row, and the one now has not lasted."""
        lasting = self.serving and time.monotonic() - self.started > STABLE_AFTER
        return self.young_deaths >= UNHEALTHY_AFTER and not lasting


class Supervisor:
    def __init__(
        self, args: argparse.Namespace, count: int, listen: tuple[str, int], policy: Policy
    ) -> None:
        self.args = args
        self.count = count
        self.listen = listen
        self._policy = policy
        self.stopping = asyncio.Event()
        self.workers: list[Worker] = []
        self.metrics_dir = tempfile.mkdtemp(prefix="aiwarden-metrics-")
        self.registry = CollectorRegistry()
        self.workers_metrics = multiprocess.MultiProcessCollector(
            self.registry, path=self.metrics_dir
        )
        Gauge(
            "aiwarden_workers", "Worker processes configured (--workers).", registry=self.registry
        ).set(count)
        self.serving_gauge = Gauge(
            "aiwarden_workers_serving", "Worker processes listening now.", registry=self.registry
        )
        self.restarts = Counter(
            "aiwarden_worker_restarts",
            "Worker processes that exited and were started again.",
            registry=self.registry,
        )
        self.admin = AdminListener(self)
        # the supervisor's own copy of the policy, for the PAC file; each worker reloads its own
        self.reloader = PolicyReloader(
            args.policy, policy, lambda _: None, self._policy_changed, lambda _: None
        )

    # -- Backend (what the admin listener reports) -----------------------------------------

    def health(self) -> tuple[bool, str]:
        """Alive unless a worker keeps dying young: then an orchestrator should act (the
        supervisor restarts it anyway, with growing delays)."""
        for w in self.workers:
            if w.keeps_dying():
                return (
                    False,
                    f"worker {w.index} died {w.young_deaths} times in a row, each "
                    f"within {STABLE_AFTER:.0f} s of starting; its log lines say why",
                )
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        serving = sum(w.serving for w in self.workers)
        if serving == 0:
            return False, f"0 of {self.count} workers serving"
        if self._audit_failing():
            return False, "the audit log cannot be written (see the workers' log lines)"
        digest = self._policy.digest[:12]
        why = f"{serving} of {self.count} workers serving, policy {digest}"
        if self._audit_failing("aiwarden_audit_syslog_ok"):  # said; traffic goes on
            why += "; audit syslog not reached (see the workers' log lines)"
        return True, why

    def _audit_failing(self, gauge: str = "aiwarden_audit_log_ok") -> bool:
        return any(
            sample.value == 0
            for family in self.workers_metrics.collect()
            if family.name == gauge
            for sample in family.samples
        )

    def metrics(self) -> bytes:
        return generate_latest(self.registry)

    def policy(self) -> Policy | None:
        return self._policy

    def proxy_addresses(self) -> list[tuple[str, int]]:
        return [self.listen]

    def pac_settings(self) -> PacSettings:
        return pac_settings(self.args)

    def confdir(self) -> Path:
        return Path(self.args.confdir).expanduser()

    def revoke_grants(self, user: str | None, client: str | None, service: str | None) -> int:
        """The workers share one store: ending grants there ends them for every worker."""
        store = CoachingStore(store_path(self.args.coaching_store or "", self.args.confdir))
        try:
            revoked = store.revoke(user=user, client=client, target=service)
        finally:
            store.close()
        audit = audit_trail(self.args) if revoked else None
        for g in revoked:
            fields = coaching_fields("revoked", g.client, g.user, g.target, g.rule, until=g.expires)
            event("coaching_revoked", **fields)
            if audit is not None:
                audit.write_event({"event": "coaching", **fields, "justification": None})
        if audit is not None:
            audit.close()
        return len(revoked)

    def push_address(self, address: str, user: str | None, ttl: int | None) -> dict:
        """The workers share one identity store: a push there reaches every worker."""
        store = AddressStore(identity_store_path(self.args.identity_store or "",
                                                 self.args.confdir))  # fmt: skip
        try:
            return apply_push(store, self._policy.identity.address_map, address, user, ttl)
        finally:
            store.close()

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            reserved = reserve(*self.listen)
        except OSError as e:
            print(f"aiwarden run: cannot listen on {format_address(*self.listen)}: {e}",
                  file=sys.stderr)  # fmt: skip
            return 1
        self.listen = (self.listen[0], reserved[0].getsockname()[1])
        try:
            if self.args.admin:
                await self.admin.start(*parse_address(self.args.admin))
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stopping.set)
            loop.add_signal_handler(signal.SIGHUP, self._sighup)
            self.reloader.start(self.args.policy_watch)
            self.workers = [Worker(i) for i in range(self.count)]
            slots = [asyncio.create_task(self._keep(w)) for w in self.workers]
            if not await self._started():
                self.stopping.set()
                await asyncio.gather(*slots)
                return 1
            if not self.stopping.is_set():
                address = self.admin.address
                event(
                    "listening",
                    proxy=format_address(*self.listen),
                    admin=format_address(*address) if address else None,
                    workers=self.count,
                )
            await self.stopping.wait()
            await asyncio.gather(*slots)
            event("stopped")
            return 0
        finally:
            self.reloader.stop()
            await self.admin.stop()
            for s in reserved:
                s.close()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    async def _started(self) -> bool:
        """Whether every worker came up (or a stop signal came first); the first one that
        could not is reported."""
        started = asyncio.gather(*(w.first_ready for w in self.workers))
        stop = asyncio.create_task(self.stopping.wait())
        await asyncio.wait(
            (started, stop), timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        stop.cancel()
        if not started.done():
            started.cancel()
            if self.stopping.is_set():
                return True
            print(f"aiwarden run: workers not listening after {START_TIMEOUT:.0f} s",
                  file=sys.stderr)  # fmt: skip
            return False
        if isinstance(e := started.exception(), WorkerFailed):
            print(f"aiwarden run: worker {e.args[0]} exited with {e.args[1]} while starting; "
                  "its log lines above say why", file=sys.stderr)  # fmt: skip
            return False
        return True

    async def _keep(self, worker: Worker) -> None:
        """Run the slot's worker until the supervisor stops, starting it again if it exits."""
        while not self.stopping.is_set():
            worker.started = time.monotonic()
            code = await self._run_once(worker)
            if self.stopping.is_set():
                return
            if not worker.first_ready.done():
                worker.first_ready.set_exception(WorkerFailed(worker.index, code))
                return
            if time.monotonic() - worker.started > STABLE_AFTER:
                worker.young_deaths = 0
            delay = RESTART_DELAYS[min(worker.young_deaths, len(RESTART_DELAYS) - 1)]
            worker.young_deaths += 1
            event("worker_exited", worker=worker.index, code=code, restart_in=delay)
            self.restarts.inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _run_once(self, worker: Worker) -> int:
        """Start the worker, note when it serves, and wait for it to exit (or stop it)."""
        ours, theirs = socket.socketpair()
        try:
            process = worker.process = await asyncio.create_subprocess_exec(
                *worker_command(self.args, worker.index, self.listen, self.admin.address,
                                theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                env=worker_environment(self.args, self.metrics_dir),
                stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        stop = asyncio.create_task(self.stopping.wait())
        try:
            ready = asyncio.create_task(reader.readline())
            await asyncio.wait((ready, stop), return_when=asyncio.FIRST_COMPLETED)
            if _said_ready(ready):
                self._set_serving(worker, True)
                if not worker.first_ready.done():
                    worker.first_ready.set_result(None)
            exited = asyncio.create_task(process.wait())
            await asyncio.wait((exited, stop), return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                await _terminate(process)
            ready.cancel()
            return await exited
        finally:
            stop.cancel()
            writer.close()
            self._set_serving(worker, False)
            multiprocess.mark_process_dead(process.pid, self.metrics_dir)

    def _set_serving(self, worker: Worker, serving: bool) -> None:
        worker.serving = serving
        self.serving_gauge.set(sum(w.serving for w in self.workers))

    def _policy_changed(self, policy: Policy, _prepared: None) -> None:
        self._policy = policy

    def _sighup(self) -> None:
        """Read the policy again, here and in every worker (which also reopen the audit log)."""
        self.reloader.reload_now()
        for w in self.workers:
            if w.process is not None and w.process.returncode is None:
                w.process.send_signal(signal.SIGHUP)


def _said_ready(line: asyncio.Task[bytes]) -> bool:
    return (
        line.done()
        and not line.cancelled()
        and not line.exception()
        and (line.result() == b"ready\n")
    )


class WorkerFailed(Exception):
    """A worker exited before it listened: (index, exit code)."""


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()


def worker_environment(args: argparse.Namespace, metrics_dir: str) -> dict[str, str]:
    """The supervisor's environment, with the metrics directory and the parent proxy: its
    URL may hold credentials, so it goes to the workers here, not on their command line."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    env.pop(PARENT_ENV, None)
    if getattr(args, "upstream_proxy", None):
        env[PARENT_ENV] = args.upstream_proxy
    return env


def worker_command(
    args: argparse.Namespace,
    index: int,
    listen: tuple[str, int],
    admin: tuple[str, int] | None,
    link: int,
) -> list[str]:
    """`aiwarden run` for one worker: the supervisor's settings, its port, no admin."""
    command = [sys.executable, "-m", "proxy", "run", "--workers", "1"]
    command += ["--listen", format_address(*listen), "--admin", "", *worker_argv(args)]
    command += ["--worker", str(index), "--worker-link", str(link)]
    if admin:
        command += ["--protect", format_address(*admin)]
    return command


def audit_trail(args: argparse.Namespace) -> AuditTrail | None:
    """The supervisor's own way to the audit log and syslog, for the revocations it makes."""
    file = AuditLog(args.audit_log) if args.audit_log else None
    syslog = None
    if args.audit_syslog:
        try:
            syslog = SyslogSender(
                args.audit_syslog,
                args.audit_syslog_ca or None,
                args.audit_syslog_facility or "local0",
            )
        except (ValueError, OSError) as e:  # the workers refused to start with it already
            event("audit_syslog_error", error=str(e))
    return AuditTrail(file, syslog) if file or syslog else None


def pac_settings(args: argparse.Namespace) -> PacSettings:
    return PacSettings(
        tuple(args.pac_proxy or ()),
        args.pac_mode,
        tuple(args.pac_bypass or ()),
        args.pac_spread,
        args.require_proxy_tls,
    )
