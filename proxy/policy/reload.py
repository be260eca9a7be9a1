"""Policy changes without a restart.

`PolicyReloader` polls the policy's files every few seconds: a stat of the policy file, the
catalog files and the catalog directories' listings, which is cheap enough for the event
loop and sees a Kubernetes ConfigMap update (a symlink swap) as well as an edit. SIGHUP
reloads at once. A changed policy is loaded and prepared in a thread, so a large catalog
never stalls traffic, and then handed to `install` on the event loop in one assignment. A
policy with errors is refused: `rejected` gets the error, and the policy in force stays.

What the poll compares against is the fingerprint the load itself took, each file's stat
before it was read (`Policy.fingerprint`), never a stat taken after loading: a change that
lands while a load reads, or between a worker's first load and the start of its watch,
then differs at the next poll instead of being taken for what was loaded. (A file rewritten
in place with the same size within one tick of the file system's clock keeps its stat;
editors, config tools and ConfigMaps replace the file, which always changes it.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.policy.loader import load_policy
from proxy.policy.model import Policy
from proxy.policy.yamlsource import Sources

logger = logging.getLogger("aiwarden")


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
        self._seen = policy.fingerprint  # what the last load read, however long ago
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

    def changed(self) -> bool:
        """Whether any file or listing the last load read is not as it was before reading."""
        return self._seen.now() != self._seen

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
                if forced or self.changed():
                    await self._reload(forced)
            except Exception:  # never let the watch die: the next change must still count
                logger.exception("policy reload failed")

    async def _reload(self, forced: bool) -> None:
        sources = Sources()
        try:
            policy, prepared = await asyncio.to_thread(self._load, sources)
        except Exception as e:  # PolicyError, or a file that vanished mid-update
            self._seen = sources.fingerprint()  # retried when any of it changes again
            self.rejected(e)
            return
        self._seen = policy.fingerprint  # it may name other catalog files now
        if policy.digest == self.policy.digest and not forced:
            return  # touched, not changed
        self.policy = policy
        self.install(policy, prepared)

    def _load(self, sources: Sources) -> tuple[Policy, Any]:
        policy = load_policy(self.path, sources)
        return policy, self.prepare(policy)
