"""Port selection as memcached does it: `-p -1` / `-U -1` ask the kernel for a free port,
`-U N` alone moves TCP to N too, `-p 0` turns TCP off, and the ports actually bound are
written to the file named by MEMCACHED_PORT_FILENAME. Run against slabcached and Debian's
memcached alike."""

import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from slabtest import RawConn, server_binary, stop_process

KINDS = ["slabcached", "memcached"]


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_with_port_file(kind: str, args: list[str], tmp_path) -> tuple[subprocess.Popen, dict]:
    """Start a server with `args` and MEMCACHED_PORT_FILENAME set; return it and the ports the
    file names ({"TCP INET": port, ...}) once the file appears (at most 10 s)."""
    port_file = tmp_path / "ports"
    cmd = [server_binary(kind), "-l", "127.0.0.1"] + args
    if kind == "memcached" and os.geteuid() == 0:
        cmd += ["-u", "root"]
    env = dict(os.environ, MEMCACHED_PORT_FILENAME=str(port_file))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            pytest.fail(f"{cmd} wrote no port file (exit {proc.returncode})")
        time.sleep(0.02)
    ports = {}
    for line in port_file.read_text().splitlines():
        name, port = line.split(": ")
        ports[name] = int(port)
    assert not (tmp_path / "ports.lck").exists(), "the temporary file is renamed into place"
    return proc, ports


@pytest.fixture
def launched():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        stop_process(proc)


def udp_version(port: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(3)
        u.sendto(struct.pack(">HHHH", 7, 0, 1, 0) + b"version\r\n", ("127.0.0.1", port))
        data, _ = u.recvfrom(65536)
        return data[8:]


@pytest.mark.parametrize("kind", KINDS)
def test_ephemeral_tcp_port_is_written_and_served(kind, tmp_path, launched):
    proc, ports = start_with_port_file(kind, ["-p", "-1"], tmp_path)
    launched.append(proc)
    assert set(ports) == {"TCP INET"}
    assert ports["TCP INET"] not in (0, 11211)
    with RawConn(ports["TCP INET"]) as c:
        c.send(b"set k 0 0 1\r\nv\r\nstats settings\r\n")
        assert c.line() == b"STORED"
        settings = {}
        while (line := c.line()) != b"END":
            _, name, value = line.split(b" ", 2)
            settings[name] = value
    assert settings[b"tcpport"] == b"-1"
    assert settings[b"udpport"] == b"0"


@pytest.mark.parametrize("kind", KINDS)
def test_ephemeral_udp_and_tcp_ports(kind, tmp_path, launched):
    proc, ports = start_with_port_file(kind, ["-p", "-1", "-U", "-1"], tmp_path)
    launched.append(proc)
    assert set(ports) == {"TCP INET", "UDP INET"}
    assert udp_version(ports["UDP INET"]).startswith(b"VERSION ")
    with RawConn(ports["TCP INET"]) as c:
        c.send(b"version\r\n")
        assert c.line().startswith(b"VERSION ")


@pytest.mark.parametrize("kind", KINDS)
def test_udp_port_alone_moves_tcp_to_it(kind, tmp_path, launched):
    port = free_port()
    proc, ports = start_with_port_file(kind, ["-U", str(port)], tmp_path)
    launched.append(proc)
    assert ports == {"TCP INET": port, "UDP INET": port}


@pytest.mark.parametrize("kind", KINDS)
def test_tcp_off_leaves_only_udp(kind, tmp_path, launched):
    port = free_port(socket.SOCK_DGRAM)
    proc, ports = start_with_port_file(kind, ["-p", "0", "-U", str(port)], tmp_path)
    launched.append(proc)
    assert ports == {"UDP INET": port}
    assert udp_version(port).startswith(b"VERSION ")


@pytest.mark.parametrize("kind", KINDS)
def test_port_out_of_range_is_refused(kind):
    cmd = [server_binary(kind), "-l", "127.0.0.1", "-p", "70000"]
    if kind == "memcached" and os.geteuid() == 0:
        cmd += ["-u", "root"]
    done = subprocess.run(cmd, capture_output=True, timeout=10)
    assert done.returncode != 0
    assert b"Invalid port number 70000" in done.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_sock_cookie_id_marks_the_listening_socket(kind, tmp_path, launched):
    """`-o sock_cookie_id=N` sets the socket mark (SO_MARK) firewall rules can match."""
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    proc, ports = start_with_port_file(kind, ["-p", "-1", "-o", "sock_cookie_id=42"], tmp_path)
    launched.append(proc)
    port = ports["TCP INET"]
    with RawConn(port) as c:
        c.send(b"version\r\n")
        assert c.line().startswith(b"VERSION ")
    shown = subprocess.run(["ss", "-tlne", f"sport = :{port}"], capture_output=True, timeout=10)
    assert b"fwmark:0x2a" in shown.stdout, shown.stdout
