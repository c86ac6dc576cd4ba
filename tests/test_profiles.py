"""Server profiles: learned from successes, bounded, saved and loaded."""

from __future__ import annotations

import copy
import json
import os
import stat
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import profiles
from analyzer.profiles import Profile, ProfileError, ProfileStore
from tests.support.pki import make_pki
from tests.support.summaries import make_summary


@pytest.fixture(scope="module")
def pki():
    return make_pki()


def test_learn_counts_versions_suites_sni_chain(pki):
    st = ProfileStore()
    for i in range(3):
        st.learn(make_summary(chain=[pki.leaf, pki.inter], start=1000.0 + i))
    st.learn(make_summary(sni=None, version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256", start=2000.0))
    p = st.get("10.2.0.9:443", "API.example.com")
    assert p is not None and p.count == 3
    assert dict(p.versions) == {"TLSv1.2": 3}
    assert p.with_sni == 3 and p.without_sni == 0
    assert dict(p.chains) == {f"{pki.leaf.sha256},{pki.inter.sha256}": 3}
    assert (p.first_seen, p.last_seen) == (1000.0, 1002.0)
    agg = st.for_server("10.2.0.9:443")
    assert agg.count == 4 and agg.without_sni == 1 and set(agg.versions) == {"TLSv1.2", "TLSv1.3"}
    assert st.for_server("10.9.9.9:443") is None


def test_round_trip(tmp_path, pki):
    st = ProfileStore()
    for i in range(4):
        st.learn(make_summary(chain=[pki.leaf], server=f"10.2.0.{i}:443", start=10.0 + i))
    path = tmp_path / "p.json"
    st.save(str(path))
    st2 = ProfileStore()
    assert st2.load(str(path)) == 4
    assert [p.to_json() for p in st2] == [p.to_json() for p in st]
    # loading again merges counts
    st2.load(str(path))
    assert st2.get("10.2.0.0:443", "api.example.com").count == 2


def test_lru_bound():
    st = ProfileStore(max_entries=3)
    for i in range(5):
        st.learn(make_summary(server=f"10.0.0.{i}:443"))
    assert len(st) == 3 and st.evicted == 2
    assert st.get("10.0.0.0:443", "api.example.com") is None
    assert st.for_server("10.0.0.0:443") is None
    assert st.get("10.0.0.4:443", "api.example.com") is not None


@pytest.mark.parametrize("content,msg", [
    ("not json", "not JSON"),
    ('{"format": "other"}', "not a tlsdiag profiles file"),
    ('{"format": "tlsdiag-profiles", "version": 99, "profiles": []}', "unsupported"),
    ('{"format": "tlsdiag-profiles", "version": 1, "profiles": [{"count": 1}]}', "bad profile"),
    ('{"format": "tlsdiag-profiles", "version": 1, "profiles": [5]}', "must be an object"),
    ("[" * 100_000 + "]" * 100_000, "not JSON: nested too deeply"),
    ('{"format": "tlsdiag-profiles", "version": 1, "profiles": [{"server": "a:1", '
     '"count": 1e400}]}', "bad profile: bad count inf"),
    ('{"format": "tlsdiag-profiles", "version": 1, "profiles": [{"server": "a:1", '
     '"versions": {"TLSv1.2": 1e400}}]}', "bad profile: bad count inf"),
    ('{"format": "tlsdiag-profiles", "version": 1, "profiles": [{"server": "a:1", '
     '"first_seen": 1e300}]}', "bad profile: bad time stamp"),
])
def test_load_errors_are_clear(tmp_path, content, msg):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ProfileError, match=msg):
        ProfileStore().load(str(path))


@pytest.mark.parametrize("item", [
    5, [1], "x", None, {"server": 5}, {"server": "a:1", "count": 1e400},
    {"server": "a:1", "count": float("nan")}, {"server": "a:1", "count": -1},
    {"server": "a:1", "count": "5"}, {"server": "a:1", "count": 2 ** 64},
    {"server": "a:1", "versions": {"TLSv1.2": 1e400}}, {"server": "a:1", "chains": []},
    {"server": "a:1", "first_seen": float("inf")}, {"server": "a:1", "last_seen": 1e300},
    {"server": "a:1", "first_seen": "x"}, {"server": "a:1", "with_sni": 1.5},
])
def test_from_json_raises_only_value_or_type_error(item):
    """A saved profile is read back or rejected with ValueError/TypeError -- never
    AttributeError or OverflowError (the analyzer's restore skips those; they stopped it)."""
    with pytest.raises((ValueError, TypeError)) as e:
        Profile.from_json(item)
    assert type(e.value) in (ProfileError, ValueError, TypeError)


def test_load_is_bounded(tmp_path, monkeypatch):
    """A file (or a device) past MAX_PROFILES_BYTES is refused after reading one byte more."""
    monkeypatch.setattr(profiles, "MAX_PROFILES_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"format": "tlsdiag-profiles", "version": 1,
                                "profiles": [{"server": "10.0.0.%d:443" % i} for i in range(50)]}))
    for p in (str(path), "/dev/zero"):
        with pytest.raises(ProfileError, match="larger than 1000 bytes"):
            ProfileStore().load(p)


def test_load_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="cannot read"):
        ProfileStore().load(str(tmp_path / "nope.json"))


def test_saved_file_is_plain_json(tmp_path):
    st = ProfileStore()
    st.learn(make_summary())
    path = tmp_path / "p.json"
    st.save(str(path))
    doc = json.loads(path.read_text())
    assert doc["format"] == "tlsdiag-profiles" and doc["profiles"][0]["versions"] == {"TLSv1.2": 1}


def _saved(path) -> list:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["profiles"]


def test_save_keeps_the_mode_and_replaces_a_symlinks_target_not_the_link(tmp_path):
    st = ProfileStore()
    st.learn(make_summary())
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o644)
    st.save(str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 and _saved(target)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    target.write_text("old")
    st.save(str(link))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _saved(target) and stat.S_IMODE(target.stat().st_mode) == 0o644
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "new.json")
    st.save(str(dangling))
    assert dangling.is_symlink() and _saved(tmp_path / "new.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.json", "link.json",
                                                           "new.json", "real.json"]


def test_save_writes_a_fifo_or_a_device_in_place_never_replacing_it(tmp_path):
    """As root, --profiles-save /dev/null (or /dev/stdout) replaced the device node (the
    symlink) with a regular 0600 file: other programs then wrote into that file."""
    st = ProfileStore()
    st.learn(make_summary())
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "stdout"                     # as /dev/stdout -> /proc/self/fd/1 -> a pipe
    link.symlink_to(fifo)
    for path in (fifo, link):
        got = []
        reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
        reader.start()
        st.save(str(path))
        reader.join(10)
        assert json.loads(got[0])["profiles"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert link.is_symlink() and os.readlink(link) == str(fifo)
    null = tmp_path / "null"                      # a /dev/null twin
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    st.save(str(null))
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "null", "stdout"]


def _merged(store: ProfileStore, server: str) -> Profile | None:
    """The server's profiles merged from scratch: for_server() of a copy of the store that
    holds no kept view (the store's own merge, which the kept view must equal)."""
    fresh = copy.deepcopy(store)
    fresh._agg.clear()
    return fresh.for_server(server)


def _shape(p: Profile | None):
    if p is None:
        return None
    return (p.to_json(), [list(t.items()) for t in (p.versions, p.ciphers, p.chains,
                                                     p.groups)])


_SUMMARY = st.fixed_dictionaries({
    "server": st.sampled_from(["10.0.0.1:443", "10.0.0.2:443"]),
    "server_name": st.one_of(st.none(), st.sampled_from([f"h{i}.example" for i in range(6)])),
    "version": st.sampled_from(["TLSv12", "TLSv13"]),
    "cipher": st.sampled_from([f"S{i}" for i in range(70)]),       # past MAX_VALUES (64)
    "curve": st.one_of(st.none(), st.sampled_from(["x25519", "secp256r1"])),
    "certificates": st.lists(st.fixed_dictionaries({"sha256": st.sampled_from("abc")}),
                             max_size=2),
    "start": st.floats(1e9, 2e9),
})


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.booleans(), _SUMMARY), max_size=120),
       size=st.integers(3, 20))
def test_the_merged_view_kept_current_equals_a_merge_from_scratch(steps, size):
    """The store keeps each server's merged view up to date as it learns (a merge of
    thousands of SNI profiles after every learn made the analyzer service quadratic): after
    any mix of learning and asking, it is what merging the profiles again gives -- counts,
    tallies and the order of their values (most_common breaks ties by it), eviction too."""
    store = ProfileStore(max_entries=size)
    for ask, s in steps:
        if ask:
            assert _shape(store.for_server(s["server"])) == _shape(_merged(store, s["server"]))
        store.learn(s)
    for server in ("10.0.0.1:443", "10.0.0.2:443"):
        assert _shape(store.for_server(server)) == _shape(_merged(store, server))


@pytest.mark.parametrize("first, last, want", [(50.0, 10.0, (10.0, 50.0)),
                                               (None, 60.0, (60.0, 60.0)),
                                               (None, None, (None, None))])
def test_a_loaded_profile_has_its_times_in_order(first, last, want):
    """A saved profile's first/last seen out of order, or one of them missing (a hand-edited
    file): read as learning gives them, so that the store's kept merged view of the server
    equals a merge from scratch (the review helper's repro: 10.0/60.0 against 50.0/60.0)."""
    p = Profile.from_json({"server": "10.0.0.1:443", "first_seen": first, "last_seen": last})
    assert (p.first_seen, p.last_seen) == want
    store = ProfileStore()
    store.put(p)
    assert store.for_server("10.0.0.1:443") is not None
    store.learn({"server": "10.0.0.1:443", "version": "TLSv13", "start": 30.0})
    assert _shape(store.for_server("10.0.0.1:443")) == _shape(_merged(store, "10.0.0.1:443"))
