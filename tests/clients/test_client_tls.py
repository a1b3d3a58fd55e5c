"""Real clients over TLS (-Z): pymemcache with a `tls_context`, Dalli (binary protocol) with an
`ssl_context`, and an `openssl s_client` transcript. The server is started with a certificate
made here by the openssl tool and signed by a CA the clients trust."""

import shutil
import socket
import ssl
import subprocess

import pytest
from pymemcache.client.base import Client

from clientcompat import HERE, need, ok_lines, run
from slabtest import Server, TARGET


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.fail("the openssl tool is missing: run scripts/install-client-deps")
    d = tmp_path_factory.mktemp("client-tls")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "30", "-subj", "/CN=client test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    (d / "v3.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "30", "-extfile", "v3.ext")
    return d


@pytest.fixture
def tls_server(certs):
    srv = Server(TARGET, ["-m", "64", "-t", "2", "-Z", "-o",
                          f"ssl_chain_cert={certs / 'server.pem'},ssl_key={certs / 'server.key'}"])
    yield srv
    srv.stop()


def context(certs) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.check_hostname = False
    return ctx


def test_pymemcache_tls_context(tls_server, certs):
    c = Client(("127.0.0.1", tls_server.port), tls_context=context(certs), connect_timeout=5,
               timeout=5)
    assert c.set("k", b"v", flags=7) is True
    assert c.get("k") == b"v"
    value, cas = c.gets("k")
    assert c.cas("k", b"v2", cas) is True
    assert c.cas("k", b"v3", cas) is False
    big = bytes(range(256)) * 4000
    assert c.set("big", big) is True
    assert c.get("big") == big
    keys = {f"m{i}": str(i).encode() for i in range(100)}
    assert c.set_many(keys) == []
    assert c.get_many(list(keys)) == keys
    assert c.incr("n", 1) is None
    c.set("n", b"1")
    assert c.incr("n", 41) == 42
    assert c.delete("n") is True
    assert c.get("n") is None
    c.close()


def test_dalli_ssl_context(tls_server, certs):
    ruby = need("ruby")
    proc = run([ruby, HERE / "ruby" / "dalli_tls_check.rb", tls_server.port, certs / "ca.pem"],
               timeout=60)
    passed = ok_lines(proc.stdout)
    for name in ("version", "get raw", "get object", "get large", "get each", "incr", "delete"):
        assert name in passed, (name, proc.stdout)
    assert proc.stdout.rstrip().endswith("done")
    # What Dalli stored over TLS, read back by another TLS client.
    c = Client(("127.0.0.1", tls_server.port), tls_context=context(certs), timeout=5)
    assert c.get("from_dalli_tls") == b"sealed"
    c.close()


def test_openssl_s_client_transcript(tls_server, certs):
    need("openssl")
    script = "set t 3 0 4\r\nabcd\r\nget t\r\nincr t 1\r\nversion\r\nquit\r\n"
    proc = run(["openssl", "s_client", "-quiet", "-verify_return_error", "-CAfile",
                certs / "ca.pem", "-connect", f"127.0.0.1:{tls_server.port}"],
               input=script, timeout=30)
    lines = proc.stdout.splitlines()
    assert lines[:4] == ["STORED", "VALUE t 3 4", "abcd", "END"], proc.stdout
    assert lines[4] == "CLIENT_ERROR cannot increment or decrement non-numeric value"
    assert lines[5].startswith("VERSION ")


def test_plain_client_refused_on_tls_port(tls_server, certs):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
        s.sendall(b"version\r\n")
        try:
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        except ConnectionResetError:
            data = b""
    assert b"VERSION" not in data
    c = Client(("127.0.0.1", tls_server.port), tls_context=context(certs), timeout=5)
    assert c.version()
    c.close()
