"""The policy in force: loaded at start, watched and reloaded, put into the gate.

A policy with errors never replaces a good one: at start it stops the proxy with every
`file:line` problem; on a reload it is counted and logged, and the one in force stays.
Also the start-up checks that concern every decision (listeners protected,
connection_strategy).
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, exceptions

from proxy.decide.gate import Gate, InForce
from proxy.mitm.compat import startup_failed
from proxy.mitm.recording import Recorder
from proxy.observe.logs import event
from proxy.options import declare
from proxy.policy.loader import load_policy
from proxy.policy.model import Policy
from proxy.policy.reload import PolicyReloader
from proxy.policy.yamlsource import PolicyError

logger = logging.getLogger("aiwarden")


class PolicyInForce:
    def __init__(
        self,
        gate: Gate,
        recorder: Recorder,
        admin=None,
        preloaded: tuple[str, Policy] | None = None,
    ) -> None:
        """`admin`: the admin listener addon, whose address the gate protects once bound;
        `preloaded`: a policy path and the policy `aiwarden run` loaded from it to check it
        before starting anything (see `_preloaded`)."""
        self.gate = gate
        self.recorder = recorder
        self.admin = admin
        self.preloaded = preloaded
        self.reloader: PolicyReloader | None = None

    def load(self, loader) -> None:
        declare(loader, "aiwarden_policy", "aiwarden_policy_watch")

    def configure(self, updated: set[str]) -> None:
        if "aiwarden_policy_watch" in updated and ctx.options.aiwarden_policy_watch < 0:
            raise exceptions.OptionsError("aiwarden_policy_watch must be 0 or more seconds")
        if "aiwarden_policy" in updated:
            path = ctx.options.aiwarden_policy
            try:
                policy = self._preloaded(path) or load_policy(path)
            except PolicyError as e:
                self.recorder.metrics.policy_reloads("error").inc()
                raise exceptions.OptionsError(f"aiwarden: the policy has errors:\n{e}") from None
            self.install(policy, self.gate.prepare(policy))
        if self.reloader is not None and updated & {"aiwarden_policy", "aiwarden_policy_watch"}:
            self._watch()  # changed at run time: watch the new path, at the new pace

    def _preloaded(self, path: str) -> Policy | None:
        """The policy `aiwarden run` loaded, taken once, when it is of `path` and nothing it
        read has changed since (the reloader's own test): reading the catalog a second time
        was a third of the proxy's start."""
        preloaded, self.preloaded = self.preloaded, None
        if preloaded is None or preloaded[0] != path:
            return None
        policy = preloaded[1]
        return policy if policy.fingerprint.now() == policy.fingerprint else None

    def install(self, policy: Policy, prepared: InForce) -> None:
        """Put a checked policy in force: a request already decided keeps its decision, the
        next one is decided by the new policy."""
        self.gate.install(prepared)
        self.recorder.metrics.policy_loaded(
            policy.digest, len(policy.files), len(policy.rules), len(policy.services)
        )
        event(
            "policy_loaded",
            policy=str(policy.files[0]),
            digest=policy.digest[:12],
            rules=len(policy.rules),
            services=len(policy.services),
        )

    def reload_policy(self) -> None:
        """SIGHUP: read the policy again now."""
        if self.reloader is not None:
            self.reloader.reload_now()

    def _watch(self) -> None:
        if self.reloader is not None:
            self.reloader.stop()
        self.reloader = PolicyReloader(
            ctx.options.aiwarden_policy, self.gate.policy, self.gate.prepare, self.install,
            self._rejected,
        )  # fmt: skip
        self.reloader.start(ctx.options.aiwarden_policy_watch)

    def _rejected(self, error: Exception) -> None:
        """A changed policy with errors: counted and logged; the one in force stays."""
        self.recorder.metrics.policy_reloads("error").inc()
        errors = str(error).splitlines() if isinstance(error, PolicyError) else [repr(error)]
        in_force = self.gate.policy.digest[:12]
        logger.error(
            "policy change refused, %s stays in force:\n%s",
            in_force,
            "\n".join(errors),
            extra={"event": "policy_rejected", "fields": {"errors": errors, "in_force": in_force}},
        )

    def running(self) -> None:
        if startup_failed(ctx.master):
            return  # errorcheck stops the process: nothing is listening for long
        self._watch()
        proxy = _listen_addrs()
        admin = self.admin.address if self.admin is not None else None
        for host, port, *_ in [*proxy, *([admin] if admin else [])]:
            self.gate.protect(host, port)
        event(
            "listening",
            proxy=" ".join(f"{h}:{p}" for h, p, *_ in proxy),
            admin=f"{admin[0]}:{admin[1]}" if admin else None,
        )
        if ctx.options.connection_strategy != "lazy":
            logger.warning(
                "connection_strategy is not 'lazy': blocked hosts will be "
                "connected to at CONNECT; set connection_strategy=lazy"
            )

    def done(self) -> None:
        if self.reloader is not None:
            self.reloader.stop()


def _listen_addrs() -> list:
    """The addresses mitmproxy's proxy listens on."""
    proxyserver = ctx.master.addons.get("proxyserver")
    return list(proxyserver.listen_addrs()) if proxyserver else []
