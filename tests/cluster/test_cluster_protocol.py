"""The server side of auto-discovery: the exact `config get cluster` reply, the legacy key, the
config keyspace apart from the cache, `config set` / `config delete`, SIGHUP reloads and the
node-list sources. Counts are computed here from the body, never copied from examples."""

import os
import re
import signal

import pytest

from clusterlib import Raw, wait_until
from discovery import DiscoveryError, Node, Poller, discover, fetch_raw, parse_body

CONFIG_REPLY = re.compile(rb"CONFIG cluster 0 (\d+)\r\n(.*)\r\nEND\r\n", re.S)


def config_reply(port: int) -> bytes:
    """The whole `config get cluster` reply (read until END)."""
    with Raw(port) as raw:
        raw.send(b"config get cluster\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            data += raw.sock.recv(65536)
        return data


def expected_reply(version: int, entries: list[str]) -> bytes:
    body = f"{version}\n{' '.join(entries)}\n".encode()
    return b"CONFIG cluster 0 %d\r\n%s\r\nEND\r\n" % (len(body), body)


def test_reply_is_exact_on_every_node(make_cluster):
    cluster = make_cluster(3)
    entries = [f"localhost|127.0.0.1|{p}" for p in sorted(cluster.ports)]
    expected = expected_reply(cluster.version, entries)
    for port in cluster.ports:
        reply = config_reply(port)
        assert reply == expected, (reply, expected)
        m = CONFIG_REPLY.fullmatch(reply)
        # <n> counts "<version>\n<nodes>\n": the LF after the node list, not the closing CRLF.
        assert int(m[1]) == len(m[2]) and m[2].endswith(b"\n") and not m[2].endswith(b"\r\n")
        info = discover("127.0.0.1", port)
        assert info.version == cluster.version >= 1
        assert info.addresses == [f"127.0.0.1:{p}" for p in sorted(cluster.ports)]
        # The legacy key answers the same body as an ordinary value with flags 0.
        body, raw = fetch_raw("127.0.0.1", port, legacy=True)
        assert raw == b"VALUE AmazonElastiCache:cluster 0 %d\r\n%s\r\nEND\r\n" % (len(body), body)
        assert body == CONFIG_REPLY.fullmatch(expected)[2]


def test_nodes_sorted_by_hostname_ip_dotted(start_server, tmp_path):
    nodes = tmp_path / "nodes"
    nodes.write_text(
        "# hosts out of order, both entry forms, comments and blank lines\n"
        "\n"
        "zeta.example|10.0.0.3|11211\n"
        "127.0.0.1:11213   # an IPv4 literal is its own ip\n"
        "alpha.example|10.0.0.1|11212\n"
        "localhost:11214\n"
        "alpha.example|10.0.0.2|11211\n"
    )
    server = start_server(["--cluster-config", str(nodes)])
    assert config_reply(server.port) == expected_reply(1, [
        "127.0.0.1|127.0.0.1|11213",
        "alpha.example|10.0.0.2|11211",
        "alpha.example|10.0.0.1|11212",
        "localhost|127.0.0.1|11214",
        "zeta.example|10.0.0.3|11211",
    ])


def test_default_is_this_node_alone(start_server):
    server = start_server([])
    assert config_reply(server.port) == expected_reply(1, [f"localhost|127.0.0.1|{server.port}"])


def test_cluster_node_flags(start_server):
    server = start_server(["--cluster-node", "b.example|10.0.0.2|11211",
                           "--cluster-node", "10.0.0.1:11212"])
    assert config_reply(server.port) == expected_reply(
        1, ["10.0.0.1|10.0.0.1|11212", "b.example|10.0.0.2|11211"])
    # No file: SIGHUP changes nothing.
    os.kill(server.pid, signal.SIGHUP)
    with Raw(server.port) as raw:
        assert raw.call(b"version").startswith(b"VERSION ")
    assert discover("127.0.0.1", server.port).version == 1


@pytest.mark.parametrize("args,message", [
    (["--cluster-node", "nohost"], "expected host|ip|port or host:port"),
    (["--cluster-node", "h|10.0.0|11211"], "not a dotted IPv4 address"),
    (["--cluster-node", "h|10.0.0.1|0"], "not a number from 1 to 65535"),
    (["--cluster-node", "a|10.0.0.1|1", "--cluster-node", "b|10.0.0.1|1"], "are the same server"),
    (["--cluster-config", "/nonexistent/slabcached-nodes"], "cannot read cluster file"),
    (["--cluster-config", "/dev/null"], "no cluster node listed"),
    (["--cluster-config", "/dev/null", "--cluster-node", "a|10.0.0.1|1"], "not both"),
])
def test_bad_sources_abort_startup(start_server, args, message):
    with pytest.raises(RuntimeError) as err:
        start_server(args)
    assert message in str(err.value), err.value


def test_version_command_is_numeric(start_server):
    server = start_server([])
    with Raw(server.port) as raw:
        assert re.fullmatch(rb"VERSION \d+\.\d+\.\d+", raw.call(b"version"))
        assert re.fullmatch(r"\d+\.\d+\.\d+", raw.stats()["version"])


def test_sighup_bumps_version_and_refuses_bad_files(start_server, tmp_path):
    nodes = tmp_path / "nodes"
    nodes.write_text("a.example|10.0.0.1|11211\n")  # no version line: starts at 1, +1 per change
    server = start_server(["--cluster-config", str(nodes), "-v"])  # -v: reloads are logged
    assert discover("127.0.0.1", server.port).version == 1

    def reload(text: str) -> None:
        nodes.write_text(text)
        os.kill(server.pid, signal.SIGHUP)

    def served():
        return discover("127.0.0.1", server.port)

    # Same list, reordered and commented: no new version.
    reload("# same\n\na.example|10.0.0.1|11211   # first\n")
    wait_until(lambda: "cluster file unchanged, still version 1" in server.stderr(), 5, what="the reload")
    reload("a.example|10.0.0.1|11211\nb.example|10.0.0.2|11211\n")
    wait_until(lambda: served().version == 2, 5, what="version 2")
    assert [n.host for n in served().nodes] == ["a.example", "b.example"]

    # Invalid files are refused with a logged error; the list and version stay.
    for bad in ["a.example|10.0.0.1|11211\nb.example|10.0.0.256|11211\n", "", "version 0\na|10.0.0.1|1\n"]:
        before = server.stderr().count("cluster file refused")
        reload(bad)
        wait_until(lambda: server.stderr().count("cluster file refused") > before, 5, what="the refusal")
        info = served()
        assert info.version == 2 and len(info.nodes) == 2
    assert "10.0.0.256" in server.stderr()

    # A good file again: next version.
    reload("c.example|10.0.0.3|11211\n")
    wait_until(lambda: served().version == 3, 5, what="version 3")
    assert served().nodes == (Node("c.example", "10.0.0.3", 11211),)

    # With a version line the file's version is served; a changed list must raise it.
    reload("version 10\nc.example|10.0.0.3|11211\n")
    wait_until(lambda: served().version == 10, 5, what="version 10")
    before = server.stderr().count("cluster file refused")
    reload("version 10\nd.example|10.0.0.4|11211\n")
    wait_until(lambda: server.stderr().count("cluster file refused") > before, 5, what="the refusal")
    assert "raise the version line" in server.stderr()
    assert served().version == 10 and served().nodes[0].host == "c.example"


def test_config_set_refused_unless_enabled(start_server):
    server = start_server([])
    with Raw(server.port) as raw:
        body = b"5\nx.example|10.0.0.9|11211\n"
        raw.send(b"config set cluster 0 %d\r\n%s\r\n" % (len(body), body))
        assert raw.line() == b"ERROR"
        assert raw.call(b"config delete cluster") == b"ERROR"
        assert raw.call(b"config delete other") == b"ERROR"
        # The data block was consumed: the connection is still in step.
        assert raw.call(b"version").startswith(b"VERSION ")
    assert discover("127.0.0.1", server.port).version == 1


def test_config_set_and_delete_cluster(start_server, tmp_path):
    nodes = tmp_path / "nodes"
    nodes.write_text("version 3\na.example|10.0.0.1|11211\n")
    server = start_server(["--cluster-config", str(nodes), "--enable-config-set"])

    def config_set(body: bytes, flags: int = 0, noreply: bool = False) -> bytes | None:
        with Raw(server.port) as raw:
            raw.send(b"config set cluster %d %d%s\r\n%s\r\n"
                     % (flags, len(body), b" noreply" if noreply else b"", body))
            if noreply:
                return None if raw.call(b"mn") == b"MN" else b"unexpected reply"
            return raw.line()

    # Same format as the reply; the version must grow.
    assert config_set(b"3\nb.example|10.0.0.2|11211\n") == b"CLIENT_ERROR bad data chunk"
    assert config_set(b"4\nb.example|10.0.0.2|11211\n", flags=1) == b"CLIENT_ERROR bad data chunk"
    for bad in [b"4\n", b"4\nb.example|10.0.0.2\n", b"x\nb.example|10.0.0.2|11211\n",
                b"4\nb.example|10.0.0.2|11211\nmore\n", b"4\nb.example:11211\n"]:
        assert config_set(bad) == b"CLIENT_ERROR bad data chunk", bad
    assert discover("127.0.0.1", server.port).version == 3
    # Re-sending the served body is a no-op that succeeds.
    assert config_set(b"3\na.example|10.0.0.1|11211\n") == b"STORED"

    assert config_set(b"7\nz.example|10.0.0.26|11211 b.example|10.0.0.2|11212\n") == b"STORED"
    assert config_reply(server.port) == expected_reply(
        7, ["b.example|10.0.0.2|11212", "z.example|10.0.0.26|11211"])
    assert config_set(b"8\nc.example|10.0.0.3|11211\n", noreply=True) is None
    assert discover("127.0.0.1", server.port).nodes[0].host == "c.example"

    # Delete reverts to the configured list, at a higher version.
    with Raw(server.port) as raw:
        assert raw.call(b"config delete cluster") == b"DELETED"
        assert raw.call(b"config delete cluster") == b"NOT_FOUND"
    info = discover("127.0.0.1", server.port)
    assert info.version == 9 and [n.host for n in info.nodes] == ["a.example"]

    # SIGHUP makes the file authoritative again over a set list.
    assert config_set(b"20\nq.example|10.0.0.17|11211\n") == b"STORED"
    nodes.write_text("version 21\na.example|10.0.0.1|11211\n")
    os.kill(server.pid, signal.SIGHUP)
    wait_until(lambda: discover("127.0.0.1", server.port).version == 21, 5, what="version 21")
    assert discover("127.0.0.1", server.port).nodes[0].host == "a.example"


def test_config_keyspace_is_apart_from_the_cache(start_server):
    server = start_server(["--enable-config-set"])
    with Raw(server.port) as raw:
        raw.send(b"config set note 42 5\r\nhello\r\n")
        assert raw.line() == b"STORED"
        raw.send(b"config get note\r\n")
        assert raw.line() == b"CONFIG note 42 5"
        assert raw.exact(7) == b"hello\r\n" and raw.line() == b"END"
        # Not an item: get misses, and a cache item of the same name is another thing.
        assert raw.get_multi(["note"]) == {}
        raw.send(b"set note 0 0 4\r\ncach\r\n")
        assert raw.line() == b"STORED"
        assert raw.call(b"flush_all") == b"OK"
        assert raw.get_multi(["note"]) == {}
        raw.send(b"config get note\r\n")
        assert raw.line() == b"CONFIG note 42 5"
        assert raw.exact(7) == b"hello\r\n" and raw.line() == b"END"
        assert raw.call(b"config delete note") == b"DELETED"
        assert raw.call(b"config delete note") == b"NOT_FOUND"
        assert raw.call(b"config get note") == b"END"
        assert raw.call(b"config get nothing") == b"END"
        assert raw.stats()["curr_items"] == "0"
        # flush_all leaves the cluster config alone; the legacy key is answered from it while
        # no real item has that name.
        assert raw.get_multi(["AmazonElastiCache:cluster"])["AmazonElastiCache:cluster"] == \
            f"1\nlocalhost|127.0.0.1|{server.port}\n".encode()
        raw.send(b"set AmazonElastiCache:cluster 0 0 3\r\nold\r\n")
        assert raw.line() == b"STORED"
        assert raw.get_multi(["AmazonElastiCache:cluster"]) == {"AmazonElastiCache:cluster": b"old"}
    assert discover("127.0.0.1", server.port).version == 1


def test_served_body_follows_the_aws_rules(start_server, tmp_path):
    """What the server sends over both discovery paths is what AWS clients parse: a version
    line, then host|ip|port entries separated by single spaces, each line ended by `\n`."""
    nodes = tmp_path / "nodes"
    nodes.write_text("version 12\nh1.example|10.0.0.1|11211\n127.0.0.1:11212\n")
    server = start_server(["--cluster-config", str(nodes)])
    for legacy in (False, True):
        body, _ = fetch_raw("127.0.0.1", server.port, legacy=legacy)
        assert re.fullmatch(rb"\d+\n[^ |\n]+\|[^ |\n]*\|\d+( [^ |\n]+\|[^ |\n]*\|\d+)*\n", body), body
        version, parsed = parse_body(body)
        assert version == 12
        assert [n.address for n in parsed] == ["127.0.0.1:11212", "10.0.0.1:11211"]
    # The parser the check relies on is strict: it refuses what a server must never send.
    for bad in [b"", b"\n\n", b"3\n", b"3\nh|1.2.3.4|5\nextra\n", b"x\nh|1.2.3.4|5\n",
                b"3\n|1.2.3.4|5\n", b"3\nh|5\n", b"3\nh|1.2.3.4|port\n"]:
        with pytest.raises(DiscoveryError):
            parse_body(bad)


def test_a_polling_client_sees_only_rising_versions(start_server, tmp_path):
    """A client polling the server like the AWS clients do applies each change once: the
    server never serves a lower version, or a changed list under the same version, across
    reloads (unchanged, changed, refused, changed again)."""
    nodes = tmp_path / "nodes"
    nodes.write_text("a.example|10.0.0.1|11211\n")
    server = start_server(["--cluster-config", str(nodes), "-v"])

    def reload(text: str) -> None:
        nodes.write_text(text)
        os.kill(server.pid, signal.SIGHUP)

    with Poller("127.0.0.1", server.port) as poller:
        assert poller.wait_for(lambda c: c.version == 1, 5)
        reload("# same list\na.example|10.0.0.1|11211\n")
        wait_until(lambda: "still version 1" in server.stderr(), 5, what="the unchanged reload")
        reload("a.example|10.0.0.1|11211\nb.example|10.0.0.2|11211\n")
        assert poller.wait_for(lambda c: c.version == 2, 5)
        before = server.stderr().count("cluster file refused")
        reload("a.example|10.0.0.1|11211\nb.example|10.0.0.256|11211\n")
        wait_until(lambda: server.stderr().count("cluster file refused") > before, 5, what="the refusal")
        reload("c.example|10.0.0.3|11211\n")
        current = poller.wait_for(lambda c: c.version == 3, 5)
        assert current and current.nodes == (Node("c.example", "10.0.0.3", 11211),)
    assert poller.applied == [1, 2, 3]
    assert poller.ignored == [] and poller.errors == []
