"""The shipped catalog: broad, precise, and consistent with itself."""

import re

import pytest
from conftest import DATA

from proxy.policy.catalog import CATEGORIES
from proxy.policy.normalize import split_url
from proxy.policy.patterns import HostIndex

CASES_FILE = DATA / "urls.txt"


def _cases():
    for number, line in enumerate(CASES_FILE.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        service, activity, method, url = line.split()
        yield pytest.param(
            None if service == "-" else service,
            None if activity == "-" else activity,
            method,
            url,
            id=f"{number}:{service}:{url[:60]}",
        )


CASES = list(_cases())

# What the shipped policy does, by category (block-ai for every other category).
SHIPPED_OUTCOME = {
    None: ("allow", "default"),
    "writing": ("block", "block-writing-and-translation"),
    "translation": ("block", "block-writing-and-translation"),
    "model-hub": ("monitor", "watch-model-hubs"),
}


@pytest.mark.parametrize("service, activity, method, url", CASES)
def test_url_is_classified(shipped_engine, service, activity, method, url):
    _scheme, host, path, _port = split_url(url)
    found, found_activity = shipped_engine.classify(method, host, path)
    assert (found.id if found else None, found_activity) == (service, activity)


@pytest.mark.parametrize("service, activity, method, url", CASES)
def test_shipped_policy_blocks_ai_and_passes_the_rest(
    shipped_engine, service, activity, method, url
):
    scheme, host, path, _port = split_url(url)
    decision = shipped_engine.decide_request(method, host, path, client="10.1.2.3")
    category = shipped_engine.services[service].category if service else None
    assert (decision.action, decision.rule) == SHIPPED_OUTCOME.get(category, ("block", "block-ai"))
    if scheme in ("https", "wss"):
        connect = shipped_engine.decide_connect(host, client="10.1.2.3")
        if service:
            assert connect.connect == "intercept"  # so the user can be shown why
        elif not any(
            s.paths and _host_matches(host, s.hosts) for s in shipped_engine.policy.services
        ):
            assert connect.connect == "tunnel", connect.reason


def _host_matches(host, patterns):
    index = HostIndex()
    for p in patterns:
        index.add(p, p)
    return bool(index.lookup(host))


def test_corpus_is_broad():
    caught = {c.values[0] for c in CASES if c.values[0]}
    assert len(caught) >= 60
    assert sum(1 for c in CASES if c.values[0] is None) >= 40


def test_every_shipped_entry_says_where_it_comes_from_and_when_it_was_checked(shipped_policy):
    services = shipped_policy.services
    assert len(services) >= 1000  # issue 16: commercial gateways claim 1,500 to 3,400
    assert [s.id for s in services if not s.checked] == []
    assert [s.id for s in services if len(s.source) < 8] == []
    # where the vendor is based: left out rather than guessed when nobody knew
    with_country = sum(1 for s in services if s.country)
    assert with_country >= 0.7 * len(services), f"{with_country} of {len(services)}"


def test_catalog_is_broad(shipped_policy):
    services = shipped_policy.services
    assert len(services) >= 60
    assert {s.category for s in services} == set(CATEGORIES)
    vendors = {s.vendor for s in services}
    for vendor in [
        "OpenAI",
        "Anthropic",
        "Google",
        "Microsoft",
        "GitHub",
        "Amazon",
        "DeepSeek",
        "Alibaba",
        "Moonshot AI",
        "Zhipu AI",
        "Baidu",
        "Tencent",
        "ByteDance",
    ]:
        assert vendor in vendors
    assert all(s.source for s in services)


def _example_host(pattern: str) -> str:
    return (
        pattern.replace("*.", "sub.", 1) if pattern.startswith("*.") else pattern.replace("*", "x")
    )


def _example_path(pattern: str) -> str:
    path = re.sub(r"\{([^,}]+)[^}]*\}", r"\1", pattern)
    return path.replace("**", "x").replace("*", "x")


def test_every_host_pattern_leads_to_its_own_service(shipped_policy, shipped_engine):
    for service in shipped_policy.services:
        path = _example_path(service.paths[0]) if service.paths else "/"
        for pattern in map(str, service.hosts):
            found, _ = shipped_engine.classify("GET", _example_host(pattern), path)
            assert found is service, f"{pattern} -> {found.id if found else None}"


def test_every_activity_path_is_reachable(shipped_policy, shipped_engine):
    for service in shipped_policy.services:
        for activity in service.activities:
            host = _example_host(str((activity.hosts or service.hosts)[0]))
            method = sorted(activity.methods)[0] if activity.methods else "GET"
            for pattern in activity.paths:
                path = _example_path(pattern)
                if service.paths and not shipped_engine.classify(method, host, path)[0]:
                    continue  # activity path outside the service's own paths: never reached
                found, name = shipped_engine.classify(method, host, path)
                assert found is service and name is not None, (service.id, pattern)
