"""The pushed address map (proxy/identity/addresses.py): what an identity collector pushes
holds until it expires, is shared through one file, and an address that changes hands too
often is not believed for a while."""

from __future__ import annotations

import time

import pytest

from proxy.identity.addresses import AddressStore, apply_push
from proxy.policy.identity import AddressMap


@pytest.fixture
def store(tmp_path):
    s = AddressStore(tmp_path / "identity.sqlite3")
    yield s
    s.close()


def test_a_push_holds_until_it_expires_and_a_logoff_ends_it(store, tmp_path):
    amap = AddressMap(ttl=60)
    assert apply_push(store, amap, "10.1.2.3", "alice", 1) == {"address": "10.1.2.3",
                                                               "user": "alice"}  # fmt: skip
    other = AddressStore(tmp_path / "identity.sqlite3")  # another worker
    assert other.user_at("10.1.2.3") == "alice"
    time.sleep(1.1)
    assert store.user_at("10.1.2.3") is None
    apply_push(store, amap, "10.1.2.3", "alice", None)
    assert apply_push(store, amap, "10.1.2.3", None, None)["forgotten"] is True
    assert other.user_at("10.1.2.3") is None
    other.close()
    assert store.path.stat().st_mode & 0o077 == 0


def test_an_address_changing_hands_too_often_is_not_believed(store):
    amap = AddressMap(max_changes=2, window=600, quarantine=3600)
    for user in ("alice", "bob", "alice"):  # two changes: still believed
        assert apply_push(store, amap, "10.1.2.3", user, None)["user"] == user
    answer = apply_push(store, amap, "10.1.2.3", "bob", None)  # the third within the window
    assert answer["user"] is None and answer["quarantined_until"] > time.time() + 3000
    assert store.user_at("10.1.2.3") is None
    assert apply_push(store, amap, "10.9.9.9", "carol", None)["user"] == "carol"  # others fine


def test_no_map_in_the_policy_means_nothing_to_push_to(store):
    with pytest.raises(LookupError, match=r"no identity\.address_map"):
        apply_push(store, None, "10.1.2.3", "alice", None)
