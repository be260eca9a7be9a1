"""compat.LeanAddonManager calls hooks as mitmproxy's own manager does — chain order, nested
addons, awaited results, an addon's error logged without stopping the others, AddonHalt
stopping the chain, addons added later included — while looking each hook's handlers up once."""

from __future__ import annotations

import asyncio
import logging

import pytest
from mitmproxy import addonmanager, exceptions, hooks, master, options

from proxy.mitm.compat import LeanAddonManager


class Recorder:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def running(self) -> None:
        self.calls.append(self.name)


class AsyncRecorder(Recorder):
    async def running(self) -> None:
        await asyncio.sleep(0)
        self.calls.append(self.name)


class Parent(Recorder):
    def __init__(self, name: str, calls: list[str], child: Recorder) -> None:
        super().__init__(name, calls)
        self.addons = [child]


class Failing:
    def running(self) -> None:
        raise ValueError("addon bug")


class Halting:
    def running(self) -> None:
        raise exceptions.AddonHalt


def dispatch(*addons, manager=LeanAddonManager) -> None:
    async def go() -> None:
        m = master.Master(options.Options(), with_termlog=False)
        m.addons = manager(m)
        m.addons.add(*addons)
        await m.addons.trigger_event(hooks.RunningHook())

    asyncio.run(go())


@pytest.mark.parametrize("manager", [LeanAddonManager, addonmanager.AddonManager])
def test_order_nesting_and_awaiting_match_mitmproxy(manager):
    calls: list[str] = []
    dispatch(
        Recorder("a", calls),
        Parent("b", calls, AsyncRecorder("b.child", calls)),
        AsyncRecorder("c", calls),
        manager=manager,
    )
    assert calls == ["a", "b", "b.child", "c"]


@pytest.mark.parametrize("manager", [LeanAddonManager, addonmanager.AddonManager])
def test_an_addon_error_is_logged_and_the_next_addon_runs(manager, caplog):
    calls: list[str] = []
    with caplog.at_level(logging.ERROR):
        dispatch(Failing(), Recorder("after", calls), manager=manager)
    assert calls == ["after"]
    assert any("Addon error: addon bug" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("manager", [LeanAddonManager, addonmanager.AddonManager])
def test_addon_halt_stops_the_chain(manager):
    calls: list[str] = []
    dispatch(Recorder("before", calls), Halting(), Recorder("after", calls), manager=manager)
    assert calls == ["before"]


def test_an_addon_added_after_a_dispatch_gets_the_next_one():
    calls: list[str] = []

    async def go() -> None:
        m = master.Master(options.Options(), with_termlog=False)
        m.addons = LeanAddonManager(m)
        m.addons.add(Recorder("first", calls))
        await m.addons.trigger_event(hooks.RunningHook())
        m.addons.add(Recorder("second", calls))
        await m.addons.trigger_event(hooks.RunningHook())
        m.addons.remove(m.addons.chain[0])
        await m.addons.trigger_event(hooks.RunningHook())

    asyncio.run(go())
    assert calls == ["first", "first", "second", "second"]
