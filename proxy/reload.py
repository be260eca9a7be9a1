"""Policy changes without a restart.

`PolicyReloader` polls the policy's files every few seconds: a stat of the policy file, the
catalog files and the catalog directories' listings, which is cheap enough for the event
loop and sees a Kubernetes ConfigMap update (a symlink swap) as well as an edit. SIGHUP
reloads at once. A changed policy is loaded and prepared in a thread, so a large catalog
never stalls traffic, and then handed to `install` on the event loop in one assignment. A
policy with errors is refused: `rejected` gets the error, and the policy in force stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .policy import Policy, load_policy

logger = logging.getLogger("aiwarden")

Fingerprint = tuple[tuple[str, int, int, int], ...]


def fingerprint(policy_path: str | Path, policy: Policy | None) -> Fingerprint:
    """What changes when a policy file is edited, replaced, added or removed."""
    path = Path(policy_path)
    paths = {path / "policy.yaml" if path.is_dir() else path}
    if policy is not None:
        paths.update(policy.files)
        for directory in {f.parent for f in policy.files[1:]}:
            paths.update(directory.glob("*.yaml"))
    out = []
    for p in sorted(paths):
        try:
            st = p.stat()
        except OSError:
            out.append((str(p), -1, -1, -1))
        else:
            out.append((str(p), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class PolicyReloader:
    def __init__(
        self,
        path: str | Path,
        policy: Policy,
        prepare: Callable[[Policy], Any],
        install: Callable[[Policy, Any], None],
        rejected: Callable[[Exception], None],
    ) -> None:
        """`prepare(policy)` runs in a thread (build what the policy needs, e.g. an engine);
        `install(policy, prepared)` and `rejected(error)` run on the event loop."""
        self.path = path
        self.policy = policy
        self.prepare, self.install, self.rejected = prepare, install, rejected
        self._seen = fingerprint(path, policy)
        self._task: asyncio.Task | None = None
        self._now = asyncio.Event()

    def start(self, interval: float) -> None:
        """Poll every `interval` seconds (0: only on reload_now())."""
        self._task = asyncio.get_running_loop().create_task(self._run(interval))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def reload_now(self) -> None:
        """SIGHUP: load the policy again even if no file looks changed."""
        self._now.set()

    async def _run(self, interval: float) -> None:
        while True:
            forced = False
            try:
                await asyncio.wait_for(self._now.wait(), interval or None)
                forced = True
            except TimeoutError:
                pass
            self._now.clear()
            try:
                seen = fingerprint(self.path, self.policy)
                if forced or seen != self._seen:
                    self._seen = seen
                    await self._reload(forced)
            except Exception:  # never let the watch die: the next change must still count
                logger.exception("policy reload failed")

    async def _reload(self, forced: bool) -> None:
        try:
            policy, prepared = await asyncio.to_thread(self._load)
        except Exception as e:  # PolicyError, or a file that vanished mid-update
            self.rejected(e)
            return
        if policy.digest == self.policy.digest and not forced:
            return  # touched, not changed
        self.policy = policy
        self._seen = fingerprint(self.path, policy)  # it may name other catalog files now
        self.install(policy, prepared)

    def _load(self) -> tuple[Policy, Any]:
        policy = load_policy(self.path)
        return policy, self.prepare(policy)
