"""The entry point for people who already run mitmproxy:

    mitmdump -s proxy/mitm/script.py --set aiwarden_policy=policies --set connection_strategy=lazy

The only module that builds addons when it is imported, because that is how mitmproxy finds a
script's addons. (Imports are absolute because mitmdump loads this file outside its package.)

On a mitmproxy version aiwarden was not tested with (compat.py) it loads no policy addon: it
logs one line, which mitmproxy's start-up check turns into an exit, and stops the proxy
should it be running already (a script reloaded in place), so that nothing is relayed
without a decision.
"""

import logging

from mitmproxy import ctx

from proxy.mitm import compat
from proxy.mitm.pipeline import build

logger = logging.getLogger("aiwarden")


class Refused:
    """In place of the addons on an untested mitmproxy: the proxy does not run."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def running(self) -> None:
        logger.error(f"aiwarden: {self.reason}; stopping")
        ctx.master.shutdown()


try:
    if untested := compat.check_mitmproxy_version():
        logger.warning(f"aiwarden: mitmproxy {untested} is untested; {compat.ALLOW_ENV} accepts it")
except compat.UntestedMitmproxy as e:
    logger.error(f"aiwarden: {e}")  # mitmdump exits on an error logged while it starts
    addons: list[object] = [Refused(str(e))]
else:
    addons = build().addons
