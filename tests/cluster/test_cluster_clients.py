"""Clients over a discovered cluster: ketama (pylibmc / libmemcached) spreading 10,000 keys over
3 nodes, a 4th node joining while a poller watches, twemproxy (nutcracker) with ketama, PHP
memcache with consistent hashing, and PHP sessions kept on two nodes surviving one node's stop.
Percentages are printed (pytest -s shows them)."""

import json
import secrets

import pylibmc
import pytest
from pymemcache.client.base import Client as PymemcacheClient

from clusterlib import HERE, Nutcracker, Raw, curr_items, holders, need, run
from discovery import Poller, discover

KEYS = 10_000
PHP = HERE / "php"
# Every PHP warning on stderr, except deprecations: php-memcache 4.0.5.2 itself creates a
# dynamic property (Memcache::$connection), which PHP 8.2 reports as deprecated on every run.
PHP_ARGS = ["-d", "display_errors=stderr", "-d", "error_reporting=E_ALL & ~E_DEPRECATED"]


def ketama_client(addresses: list[str]) -> pylibmc.Client:
    # libmemcached's ketama: MD5, consistent distribution over points on a continuum.
    return pylibmc.Client(addresses, behaviors={"ketama": True})


def dataset(tag: str) -> dict[str, str]:
    return {f"{tag}:{i}": f"{tag}-value-{i}" for i in range(KEYS)}


def shares(cluster, before: dict[int, int] | None = None) -> dict[int, float]:
    """Percent of KEYS on each node (curr_items, minus `before`)."""
    before = before or {}
    return {p: 100.0 * (curr_items(p) - before.get(p, 0)) / KEYS for p in cluster.ports}


def assert_balanced(share: dict[int, float], what: str, low: float = 20.0, high: float = 47.0) -> None:
    print(f"\n{what}: " + ", ".join(f"{p}: {s:.1f}%" for p, s in share.items()))
    assert round(sum(share.values()), 6) == 100.0, share
    for port, pct in share.items():
        assert low <= pct <= high, (what, port, share)


def test_ketama_over_three_discovered_nodes(make_cluster):
    cluster = make_cluster(3)
    first = discover("127.0.0.1", cluster.ports[0])
    assert len(first.nodes) == 3 and first.version == cluster.version
    assert sorted(first.addresses) == sorted(f"127.0.0.1:{p}" for p in cluster.ports)

    writer = ketama_client(first.addresses)
    data = dataset("k3")
    assert writer.set_multi(data) == []
    assert_balanced(shares(cluster), "pylibmc ketama, 3 nodes")
    where = holders(cluster.ports, data)
    assert all(len(ports) == 1 for ports in where.values())

    # A second client discovers the same cluster through another node's endpoint.
    second = discover("127.0.0.1", cluster.ports[2])
    assert second == first and second.raw == first.raw
    reader = ketama_client(second.addresses)
    assert reader.get_multi(list(data)) == data


def test_fourth_node_joins(make_cluster):
    cluster = make_cluster(3)
    with Poller("127.0.0.1", cluster.ports[1], interval=0.05) as poller:
        old = poller.wait_for(lambda c: len(c.nodes) == 3, 5)
        assert old is not None, poller.errors
        data = dataset("k4")
        assert ketama_client(old.addresses).set_multi(data) == []
        before = {k: ports[0] for k, ports in holders(cluster.ports, data).items()}

        new_server = cluster.add_node()

        # Every node, the new one included, serves the higher version and the 4 nodes.
        for port in cluster.ports:
            info = discover("127.0.0.1", port)
            assert info.version > old.version and len(info.nodes) == 4, (port, info)
        new = poller.wait_for(lambda c: len(c.nodes) == 4, 5)
        assert new is not None, (poller.applied, poller.errors)
        assert new.version == cluster.version > old.version
        assert poller.applied == sorted(set(poller.applied)) and poller.ignored == []
        assert f"127.0.0.1:{new_server.port}" in new.addresses

    # Where each key lives now: write a new value through a 4-node ketama client and find it.
    moved_data = {k: v + "-after" for k, v in data.items()}
    assert ketama_client(new.addresses).set_multi(moved_data) == []
    after = {}
    for port in cluster.ports:
        with Raw(port) as raw:
            for key, value in raw.get_multi(data).items():
                if value.decode() == moved_data[key]:
                    after[key] = port
    assert len(after) == KEYS
    moved = [k for k in data if after[k] != before[k]]
    pct = 100.0 * len(moved) / KEYS
    print(f"\nketama 3 -> 4 nodes: {len(moved)} of {KEYS} keys moved ({pct:.1f}%)")
    assert 0 < pct <= 35.0
    # Consistent hashing: keys only move to the new node, never between old ones.
    assert {after[k] for k in moved} == {new_server.port}
    assert ketama_client(new.addresses).get_multi(list(data)) == moved_data


def test_twemproxy_ketama(make_cluster, tmp_path):
    cluster = make_cluster(3)
    info = discover("127.0.0.1", cluster.ports[0])
    proxy = Nutcracker(tmp_path, [n.port for n in info.nodes])
    try:
        client = PymemcacheClient(("127.0.0.1", proxy.port), connect_timeout=2, timeout=5)
        data = dataset("tw")
        items = list(data.items())
        for i in range(0, KEYS, 500):
            failed = client.set_many(dict(items[i:i + 500]), noreply=False)
            assert failed == [], failed[:5]
        got = {}
        for i in range(0, KEYS, 100):
            got.update(client.get_many([k for k, _ in items[i:i + 100]]))
        client.close()
        assert {k: v.decode() for k, v in got.items()} == data
        assert_balanced(shares(cluster), "twemproxy ketama (md5), 3 nodes")
        assert all(len(ports) == 1 for ports in holders(cluster.ports, data).values())
    finally:
        proxy.stop()


def test_php_memcache_consistent(make_cluster):
    cluster = make_cluster(3)
    proc = run([need("php"), *PHP_ARGS, "-d", "memcache.hash_strategy=consistent",
                PHP / "memcache_consistent.php", f"127.0.0.1:{cluster.ports[1]}", KEYS, "php"], timeout=30)
    result = json.loads(proc.stdout)
    assert proc.stderr.strip() == "", proc.stderr
    assert result["hash_strategy"] == "consistent"
    assert result["version"] == cluster.version
    assert sorted(result["nodes"]) == sorted(f"127.0.0.1:{p}" for p in cluster.ports)
    assert result["stored"] == KEYS and result["read"] == KEYS, result
    # CRC32 points on a ring spread less evenly than MD5 ones: over many runs (random ports)
    # single nodes got from 20% to 49% of the keys, so the bounds here are wider.
    assert_balanced(shares(cluster), "php-memcache consistent (crc32), 3 nodes", low=10.0, high=60.0)
    keys = [f"php:{i}" for i in range(KEYS)]
    assert all(len(ports) == 1 for ports in holders(cluster.ports, keys).values())


def php_session(cluster, redundancy: int, *args, check=True):
    save_path = ",".join(f"tcp://127.0.0.1:{p}" for p in cluster.ports)
    ini = ["-d", "session.save_handler=memcache", "-d", f"session.save_path={save_path}",
           "-d", f"memcache.session_redundancy={redundancy}", "-d", "memcache.hash_strategy=consistent"]
    return run([need("php"), *PHP_ARGS, *ini, PHP / "session.php", *args], timeout=30, check=check)


def session_holders(cluster, sid: str) -> list[int]:
    return holders([s.port for s in cluster.running()], [sid])[sid]


def test_php_session_redundancy_survives_a_node(make_cluster):
    cluster = make_cluster(3)
    sid = "cluster" + secrets.token_hex(8)
    # With redundancy 1 the session lives on one node only: the one its id hashes to.
    php_session(cluster, 1, "write", sid, "probe")
    primary = session_holders(cluster, sid)
    assert len(primary) == 1, primary
    primary = primary[0]
    with Raw(primary) as raw:
        assert raw.call(f"delete {sid}".encode()) == b"DELETED"

    # With redundancy 2 it is written to the primary and one more node.
    secret = "kept across a node failure"
    assert php_session(cluster, 2, "write", sid, secret).stdout.strip() == f"written {sid}"
    copies = session_holders(cluster, sid)
    assert len(copies) == 2 and primary in copies, (primary, copies)

    # A session kept on the primary alone, for contrast.
    lone = None
    for _ in range(20):
        candidate = "lone" + secrets.token_hex(8)
        php_session(cluster, 1, "write", candidate, "single copy")
        if session_holders(cluster, candidate) == [primary]:
            lone = candidate
            break

    next(s for s in cluster.servers if s.port == primary).stop()

    print(f"\nsession {sid}: copies on {copies}, primary {primary} stopped; "
          f"single-copy session on the primary for contrast: {lone}")
    reader = php_session(cluster, 2, "read", sid)
    assert reader.stderr.strip() == "", reader.stderr
    assert json.loads(reader.stdout) == {"value": secret, "writes": 1}, reader.stdout
    if lone is not None:
        gone = php_session(cluster, 1, "read", lone, check=False)
        assert json.loads(gone.stdout or "null") in ([], {}, None), gone.stdout
