"""The --metrics-listen Prometheus endpoint, read with the real prometheus_client parser.

Checks that the page parses, that it carries prometheus/memcached_exporter's metric names,
types and labels (so existing dashboards and alerts work), that the values follow what
the server does, and slabcached's own histograms. slabcached only.
"""

from __future__ import annotations

import http.client
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from slabtest import TARGET, RawConn, free_port, server_binary

pytestmark = pytest.mark.skipif(TARGET == "memcached", reason="slabcached's own endpoint")


def start(start_server, *extra: str):
    port = free_port()
    srv = start_server(["-m", "64", "-t", "2", "--metrics-listen", f"127.0.0.1:{port}", *extra])
    srv.metrics_port = port
    return srv


def http_get(port: int, path: str = "/metrics", method: str = "GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


class Scrape:
    """One parsed /metrics page: families by name, and every sample."""

    def __init__(self, port: int):
        status, headers, body = http_get(port)
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        self.text = body
        self.families = {f.name: f for f in text_string_to_metric_families(body)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def names(self) -> set[str]:
        """Sample names as written on the page (the parser appends `_total` to a counter's
        samples that lack it, as the exporter's memcached_uptime_seconds does)."""
        return {line.split("{")[0].split(" ")[0] for line in self.text.splitlines() if line and not line.startswith("#")}

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, f"{name}{labels}: {found}"
        return found[0]

    def type_of(self, sample_name: str) -> str:
        for f in self.families.values():
            if any(s.name in (sample_name, sample_name + "_total") for s in f.samples):
                return f.type
        raise KeyError(sample_name)


# The exporter's names (with the type each has there) that the server's stats rows give.
EXPORTER_METRICS = {
    "memcached_up": "gauge",
    "memcached_uptime_seconds": "counter",
    "memcached_time_seconds": "gauge",
    "memcached_version": "gauge",
    "memcached_commands_total": "counter",
    "memcached_current_items": "gauge",
    "memcached_items_total": "counter",
    "memcached_items_evicted_total": "counter",
    "memcached_items_reclaimed_total": "counter",
    "memcached_limit_bytes": "gauge",
    "memcached_current_bytes": "gauge",
    "memcached_current_connections": "gauge",
    "memcached_connections_total": "counter",
    "memcached_connections_rejected_total": "counter",
    "memcached_connections_yielded_total": "counter",
    "memcached_read_bytes_total": "counter",
    "memcached_written_bytes_total": "counter",
    "memcached_max_connections": "gauge",
    "memcached_malloced_bytes": "gauge",
    "memcached_item_too_large_total": "counter",
    "memcached_item_no_memory_total": "counter",
    "memcached_process_user_cpu_seconds_total": "counter",
    "memcached_process_system_cpu_seconds_total": "counter",
    "memcached_lru_crawler_enabled": "gauge",
    "memcached_lru_crawler_sleep": "gauge",
    "memcached_lru_crawler_to_crawl": "gauge",
    "memcached_lru_crawler_hot_percent": "gauge",
    "memcached_lru_crawler_warm_percent": "gauge",
    "memcached_lru_crawler_starts_total": "counter",
    "memcached_lru_crawler_items_checked_total": "counter",
    "memcached_lru_crawler_reclaimed_total": "counter",
    "memcached_slab_chunk_size_bytes": "gauge",
    "memcached_slab_chunks_per_page": "gauge",
    "memcached_slab_current_pages": "gauge",
    "memcached_slab_current_chunks": "gauge",
    "memcached_slab_chunks_used": "gauge",
    "memcached_slab_chunks_free": "gauge",
    "memcached_slab_chunks_free_end": "gauge",
    "memcached_slab_commands_total": "counter",
    "memcached_slab_current_items": "gauge",
    "memcached_slab_mem_requested_bytes": "counter",
    "memcached_slab_items_evicted_total": "counter",
    "memcached_slab_items_reclaimed_total": "counter",
    "memcached_slab_items_outofmemory_total": "counter",
    "memcached_slab_lru_hits_total": "counter",
}


def test_the_page_parses_with_the_exporters_names_types_and_labels(start_server):
    srv = start(start_server)
    with RawConn(srv.port) as c:
        c.send(b"set k 0 0 3\r\nabc\r\n")
        assert c.line() == b"STORED"
    s = Scrape(srv.metrics_port)
    missing = set(EXPORTER_METRICS) - s.names()
    assert not missing, f"missing: {sorted(missing)}"
    for name, kind in EXPORTER_METRICS.items():
        assert s.type_of(name) == kind, name
    assert s.value("memcached_up") == 1
    assert s.value("memcached_version", version="1.6.18") == 1
    assert s.value("memcached_limit_bytes") == 64 * 1024 * 1024
    # Labels as the exporter has them.
    commands = {(x.labels["command"], x.labels["status"]) for x in s.samples if x.name == "memcached_commands_total"}
    for op in ["get", "delete", "incr", "decr", "cas", "touch"]:
        assert {(op, "hit"), (op, "miss")} <= commands
    assert {("cas", "badval"), ("set", "hit"), ("flush", "hit")} <= commands
    slab_samples = [x for x in s.samples if x.name == "memcached_slab_current_items"]
    assert slab_samples and all(set(x.labels) == {"slab"} for x in slab_samples)
    assert {x.labels["lru"] for x in s.samples if x.name == "memcached_slab_lru_hits_total"} >= {"hot", "warm", "cold"}
    # Our own families.
    assert s.families["slabcached_request_duration_seconds"].type == "histogram"
    assert s.families["slabcached_value_size_bytes"].type == "histogram"
    assert "sampled" in s.families["slabcached_request_duration_seconds"].documentation


def test_values_track_the_server(start_server):
    srv = start(start_server)
    before = Scrape(srv.metrics_port)
    n = 200
    with RawConn(srv.port) as c:
        for i in range(n):
            c.send(b"set key%d 0 0 100\r\n%s\r\n" % (i, b"v" * 100))
            assert c.line() == b"STORED"
        for i in range(n):
            c.send(b"get key%d\r\n" % i)
            assert c.line().startswith(b"VALUE")
            c.exact(100 + 2)
            assert c.line() == b"END"
        for i in range(50):
            c.send(b"get nokey%d\r\n" % i)
            assert c.line() == b"END"
        c.send(b"delete key0\r\nincr nokey 1\r\n")
        assert c.line() == b"DELETED"
        assert c.line() == b"NOT_FOUND"
        after = Scrape(srv.metrics_port)
        assert after.value("memcached_current_connections") >= 1
    deadline = time.monotonic() + 5
    while Scrape(srv.metrics_port).value("memcached_current_connections") != 0:
        assert time.monotonic() < deadline, "the closed connection is still counted"
        time.sleep(0.05)

    def grew(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("memcached_commands_total", command="get", status="hit") == n
    assert grew("memcached_commands_total", command="get", status="miss") == 50
    assert grew("memcached_commands_total", command="set", status="hit") == n
    assert grew("memcached_commands_total", command="delete", status="hit") == 1
    assert grew("memcached_commands_total", command="incr", status="miss") == 1
    assert after.value("memcached_current_items") == n - 1
    assert grew("memcached_items_total") == n
    assert grew("memcached_read_bytes_total") > n * 100
    assert grew("memcached_written_bytes_total") > n * 100
    assert after.value("memcached_current_bytes") > n * 100
    # The class holding the 100-byte values counts them.
    per_slab = {x.labels["slab"]: x.value for x in after.samples if x.name == "memcached_slab_current_items"}
    assert sum(per_slab.values()) == n - 1
    hits = sum(x.value for x in after.samples if x.name == "memcached_slab_commands_total" and x.labels["command"] == "get")
    assert hits == n
    # Every store's value size: 200 values of 100 bytes, in the le=128 bucket.
    assert after.value("slabcached_value_size_bytes_count") == n
    assert after.value("slabcached_value_size_bytes_sum") == n * 100
    assert after.value("slabcached_value_size_bytes_bucket", le="64") == 0
    assert after.value("slabcached_value_size_bytes_bucket", le="128") == n
    # Latency: about one request in 16 is timed, at random gaps (1 to 31 requests), so
    # 250 gets and 200 sets give about 16 and 12 samples (standard deviation about 2).
    get_count = after.value("slabcached_request_duration_seconds_count", command="get")
    set_count = after.value("slabcached_request_duration_seconds_count", command="set")
    assert 5 <= get_count <= 30
    assert 4 <= set_count <= 25
    assert 0 < after.value("slabcached_request_duration_seconds_sum", command="get") < 1
    assert after.value("slabcached_request_duration_seconds_bucket", command="get", le="+Inf") == get_count
    uptime = after.value("memcached_uptime_seconds_total")
    assert abs(after.value("memcached_time_seconds") - time.time()) < 5 and uptime >= 0


def test_http_answers(start_server):
    srv = start(start_server)
    status, headers, body = http_get(srv.metrics_port, "/metrics", "HEAD")
    assert status == 200 and body == "" and int(headers["Content-Length"]) > 1000
    assert http_get(srv.metrics_port, "/nothing")[0] == 404
    assert http_get(srv.metrics_port, "/metrics", "POST")[0] == 405
    assert http_get(srv.metrics_port, "/metrics?name[]=x")[0] == 200
    assert "/metrics" in http_get(srv.metrics_port, "/")[2]
    # A client that sends nothing and goes away does not stop the endpoint.
    RawConn(srv.metrics_port).close()
    assert http_get(srv.metrics_port)[0] == 200


def test_hot_keys_are_on_the_page_unless_x(start_server):
    srv = start(start_server)
    with RawConn(srv.port) as c:
        c.send(b"get hotkey\r\n" * 2000)
        for _ in range(2000):
            assert c.line() == b"END"
    s = Scrape(srv.metrics_port)
    assert s.value("slabcached_hot_key_requests_per_second", key="hotkey") > 0
    quiet = start(start_server, "-X")
    with RawConn(quiet.port) as c:
        c.send(b"get hotkey\r\n" * 2000)
        for _ in range(2000):
            assert c.line() == b"END"
    s = Scrape(quiet.metrics_port)
    assert "slabcached_hot_key_requests_per_second" not in s.names()


def test_a_bad_address_fails_the_start():
    port = free_port()
    for bad in ["nonsense", "127.0.0.1", "256.1.1.1:80"]:
        proc = subprocess.run(
            [server_binary("slabcached"), "-l", "127.0.0.1", "-p", str(port), "--metrics-listen", bad],
            capture_output=True, timeout=10)
        assert proc.returncode != 0, bad
        assert b"metrics-listen" in proc.stderr, proc.stderr


def test_stats_reset_clears_the_histograms(start_server):
    """`stats reset` zeroes the latency and value-size histograms as it zeroes memcached's
    counters (the exporter's counters on the page drop with it); later requests count
    from zero."""
    srv = start(start_server)
    with RawConn(srv.port) as c:
        for i in range(100):
            c.send(b"set key%d 0 0 100\r\n%s\r\n" % (i, b"v" * 100))
            assert c.line() == b"STORED"
            c.send(b"get key%d\r\n" % i)
            assert c.line().startswith(b"VALUE")
            c.exact(100 + 2)
            assert c.line() == b"END"
        before = Scrape(srv.metrics_port)
        assert before.value("slabcached_value_size_bytes_count") == 100
        assert before.value("slabcached_request_duration_seconds_count", command="get") > 0
        c.send(b"stats reset\r\n")
        assert c.line() == b"RESET"
        after = Scrape(srv.metrics_port)
        assert after.value("slabcached_value_size_bytes_count") == 0
        assert after.value("slabcached_value_size_bytes_sum") == 0
        assert after.value("slabcached_value_size_bytes_bucket", le="128") == 0
        # A command with no sample since the reset has no latency series at all.
        timed = {x.labels["command"] for x in after.samples if x.name == "slabcached_request_duration_seconds_count"}
        assert timed <= {"stats"}, timed
        assert after.value("memcached_commands_total", command="set", status="hit") == 0
        for i in range(3):
            c.send(b"set again%d 0 0 1000\r\nx%s\r\n" % (i, b"v" * 999))
            assert c.line() == b"STORED"
        again = Scrape(srv.metrics_port)
        assert again.value("slabcached_value_size_bytes_count") == 3
        assert again.value("slabcached_value_size_bytes_sum") == 3000
        assert again.value("slabcached_value_size_bytes_bucket", le="1024") == 3
