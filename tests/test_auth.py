"""Authentication: SASL over the binary protocol (-S) and the text protocol's authfile (-Y).

Every test runs against the selected target (slabcached, or Debian's memcached with
SLABCACHED_TARGET=memcached) with the same flags and the same Cyrus SASL files: a
SASL_CONF_PATH directory whose memcached.conf names the mechanisms and a sasldb made with
`saslpasswd2 -a memcached`. Frames are built by hand, so no client library stands between the
test and the bytes. MEMCACHED_SASL_PWDB is checked on slabcached only: Debian's memcached is
built without it.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from slabtest import TARGET, Server, server_binary

pytestmark = pytest.mark.timeout(120)

SASLPASSWD2 = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
needs_saslpasswd2 = pytest.mark.skipif(
    not os.path.exists(SASLPASSWD2), reason="saslpasswd2 (sasl2-bin) is not installed")
slabcached_only = pytest.mark.skipif(
    TARGET == "memcached", reason="Debian's memcached is built without MEMCACHED_SASL_PWDB")

GET, SET, DELETE, NOOP, VERSION, STAT = 0x00, 0x01, 0x04, 0x0A, 0x0B, 0x10
SASL_LIST, SASL_AUTH, SASL_STEP = 0x20, 0x21, 0x22
OK, NOT_FOUND, EINVAL, AUTH_ERROR, AUTH_CONTINUE = 0x00, 0x01, 0x04, 0x20, 0x21

USER, PASSWORD = "alice", "wonderland"


def frame(op: int, key: bytes = b"", extras: bytes = b"", value: bytes = b"", opaque: int = 0) -> bytes:
    body = len(extras) + len(key) + len(value)
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, body, opaque, 0) \
        + extras + key + value


def plain(user: str, password: str) -> bytes:
    return b"\0" + user.encode() + b"\0" + password.encode()


class Binary:
    """One binary-protocol connection that reads whole response packets."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def request(self, op: int, key: bytes = b"", extras: bytes = b"", value: bytes = b"",
                opaque: int = 0x1234) -> tuple[int, int, bytes, bytes]:
        """Send one frame, return (opcode, status, key, value) of its reply."""
        self.sock.sendall(frame(op, key, extras, value, opaque))
        return self.packet()

    def packet(self) -> tuple[int, int, bytes, bytes]:
        while len(self.buf) < 24:
            self._fill()
        magic, op, kl, el, _, status, bl, _, _ = struct.unpack(">BBHBBHIIQ", self.buf[:24])
        assert magic == 0x81
        while len(self.buf) < 24 + bl:
            self._fill()
        body, self.buf = self.buf[24:24 + bl], self.buf[24 + bl:]
        return op, status, body[el:el + kl], body[el + kl:]

    def closed(self) -> bool:
        """The server closed the connection (after what was already read)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def set(self, key: bytes, value: bytes) -> int:
        return self.request(SET, key, struct.pack(">II", 0, 0), value)[1]

    def stats(self) -> dict[str, str]:
        self.sock.sendall(frame(STAT))
        out = {}
        while True:
            _, _, key, value = self.packet()
            if not key:
                return out
            out[key.decode()] = value.decode()


@pytest.fixture
def sasl_files(tmp_path, monkeypatch):
    """A SASL_CONF_PATH directory offering PLAIN, and a sasldb with alice (realm: the host
    name, saslpasswd2's default, which the server also uses)."""
    if not os.path.exists(SASLPASSWD2):
        pytest.skip("saslpasswd2 (sasl2-bin) is not installed")
    db = tmp_path / "sasldb"
    (tmp_path / "memcached.conf").write_text(f"mech_list: plain\nsasldb_path: {db}\n")
    subprocess.run([SASLPASSWD2, "-a", "memcached", "-c", "-p", "-f", str(db), USER],
                   input=PASSWORD.encode(), check=True, timeout=30)
    monkeypatch.setenv("SASL_CONF_PATH", str(tmp_path))
    monkeypatch.delenv("MEMCACHED_SASL_PWDB", raising=False)
    return tmp_path


@pytest.fixture
def sasl_server(sasl_files, start_server):
    return start_server(["-S", "-m", "16", "-t", "2"])


def test_mechanisms_and_version_before_auth(sasl_server):
    c = Binary(sasl_server.port)
    assert c.request(SASL_LIST)[1:] == (OK, b"", b"PLAIN")
    op, status, _, value = c.request(VERSION)
    assert (op, status) == (VERSION, OK) and value[:1].isdigit()


@pytest.mark.parametrize("op", [GET, SET, DELETE, NOOP, STAT, 0x08, 0x50])
def test_unauthenticated_command_is_refused_and_closed(sasl_server, op):
    c = Binary(sasl_server.port)
    extras = struct.pack(">II", 0, 0) if op == SET else b""
    key = b"k" if op in (GET, SET, DELETE) else b""
    assert c.request(op, key, extras, b"v" if op == SET else b"", opaque=77) \
        == (op, AUTH_ERROR, b"", b"Auth failure.")
    assert c.closed()


def test_plain_wrong_password_then_right_one(sasl_server):
    c = Binary(sasl_server.port)
    assert c.request(SASL_AUTH, b"PLAIN", value=plain(USER, "nope")) \
        == (SASL_AUTH, AUTH_ERROR, b"", b"Auth failure.")
    # Still open: the client may try again.
    assert c.request(SASL_AUTH, b"PLAIN", value=plain(USER, PASSWORD)) \
        == (SASL_AUTH, OK, b"", b"Authenticated")
    assert c.set(b"k", b"value") == OK
    assert c.request(GET, b"k")[1:] == (OK, b"", b"value")
    stats = c.stats()
    assert (stats["auth_cmds"], stats["auth_errors"]) == ("2", "1")


def test_unknown_user_and_unknown_mechanism(sasl_server):
    c = Binary(sasl_server.port)
    assert c.request(SASL_AUTH, b"PLAIN", value=plain("mallory", PASSWORD))[1] == AUTH_ERROR
    assert c.request(SASL_AUTH, b"NOSUCHMECH", value=b"x")[1] == AUTH_ERROR
    # Longer than memcached's 32-byte mechanism name: invalid arguments, not counted.
    assert c.request(SASL_AUTH, b"X" * 40, value=b"x")[1] == EINVAL
    assert c.request(SASL_AUTH, b"PLAIN", value=plain(USER, PASSWORD))[1] == OK
    stats = c.stats()
    assert (stats["auth_cmds"], stats["auth_errors"]) == ("3", "2")


def test_step_without_start_fails(sasl_server):
    c = Binary(sasl_server.port)
    assert c.request(SASL_STEP, b"PLAIN", value=plain(USER, PASSWORD)) \
        == (SASL_STEP, AUTH_ERROR, b"", b"Auth failure.")


def test_authentication_is_per_connection(sasl_server):
    a, b = Binary(sasl_server.port), Binary(sasl_server.port)
    assert a.request(SASL_AUTH, b"PLAIN", value=plain(USER, PASSWORD))[1] == OK
    assert a.set(b"shared", b"1") == OK
    assert b.request(GET, b"shared")[1] == AUTH_ERROR
    assert b.closed()


def test_listing_mechanisms_again_undoes_authentication(sasl_server):
    """memcached's quirk: every SASL command starts by marking the connection unauthenticated."""
    c = Binary(sasl_server.port)
    assert c.request(SASL_AUTH, b"PLAIN", value=plain(USER, PASSWORD))[1] == OK
    assert c.request(SASL_LIST)[1] == OK
    assert c.request(GET, b"k")[1] == AUTH_ERROR


def test_stats_settings_show_sasl(sasl_server):
    c = Binary(sasl_server.port)
    assert c.request(SASL_AUTH, b"PLAIN", value=plain(USER, PASSWORD))[1] == OK
    c.sock.sendall(frame(STAT, b"settings"))
    settings = {}
    while True:
        _, _, key, value = c.packet()
        if not key:
            break
        settings[key] = value
    assert settings[b"auth_enabled_sasl"] == b"yes"
    assert settings[b"auth_enabled_ascii"] == b"no"
    assert settings[b"binding_protocol"] == b"binary"


def test_text_is_not_served_under_sasl(sasl_server):
    """-S binds the binary protocol: a text request is read as a binary header, so the
    server waits for 24 bytes, then finds no magic byte and hangs up without a reply."""
    with sasl_server.connect(timeout=2) as s:
        s.sendall(b"get x\r\n")
        with pytest.raises(socket.timeout):
            s.recv(100)
        s.sendall(b"get abcdefghijklmnopqrstuvwxyz\r\n")
        s.settimeout(5)
        assert s.recv(100) == b""


@pytest.mark.parametrize("extra, message", [
    (["-B", "ascii"], "You cannot allow the ASCII protocol while using SASL"),
    (["-B", "auto"], "You cannot allow the ASCII protocol while using SASL"),
    (["-B", "binary", "-B", "ascii"], "You cannot allow the ASCII protocol while using SASL"),
])
def test_sasl_refuses_other_protocols(extra, message):
    cmd = [server_binary(TARGET), "-S", "-p", "0", "-U", "0"] + extra
    if TARGET == "memcached" and os.geteuid() == 0:
        cmd += ["-u", "root"]
    done = subprocess.run(cmd, capture_output=True, timeout=10)
    assert done.returncode == 64
    assert message in done.stderr.decode()


@slabcached_only
def test_memcached_sasl_pwdb(sasl_files, monkeypatch, start_server, tmp_path):
    """MEMCACHED_SASL_PWDB: a plain user:password file checked before the sasldb."""
    pwdb = tmp_path / "pwdb"
    pwdb.write_text("bob:builder\ncarol:secret:extra-field\n")
    monkeypatch.setenv("MEMCACHED_SASL_PWDB", str(pwdb))
    server = start_server(["-S", "-m", "16"])
    c = Binary(server.port)
    assert c.request(SASL_AUTH, b"PLAIN", value=plain("bob", "wrong"))[1] == AUTH_ERROR
    assert c.request(SASL_AUTH, b"PLAIN", value=plain("bob", "builder"))[1] == OK
    assert c.set(b"k", b"v") == OK
    d = Binary(server.port)
    assert d.request(SASL_AUTH, b"PLAIN", value=plain("carol", "secret"))[1] == OK
    # The sasldb still works when the file has no such user.
    e = Binary(server.port)
    assert e.request(SASL_AUTH, b"PLAIN", value=plain(USER, PASSWORD))[1] == OK
    # The file is read at each check: a user added now can log in.
    with pwdb.open("a") as f:
        f.write("dave:new\n")
    f = Binary(server.port)
    assert f.request(SASL_AUTH, b"PLAIN", value=plain("dave", "new"))[1] == OK


# --------------------------------------------------------------------------------------------
# ASCII authentication (-Y)


class Text:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def ask(self, data: bytes) -> bytes:
        self.send(data)
        return self.line()


@pytest.fixture
def authfile(tmp_path):
    path = tmp_path / "authfile"
    path.write_text("foo:bar\nbaaaz:quux\r\n")
    return path


@pytest.fixture
def ascii_server(authfile, start_server):
    return start_server(["-Y", str(authfile), "-m", "16", "-t", "2"])


def test_ascii_refuses_before_login(ascii_server):
    c = Text(ascii_server.port)
    assert c.ask(b"get foo\r\n") == b"CLIENT_ERROR unauthenticated"
    assert c.ask(b"mg foo v\r\n") == b"CLIENT_ERROR unauthenticated"
    assert c.ask(b"version\r\n") == b"CLIENT_ERROR unauthenticated"
    assert c.ask(b"set foo 0 0 x\r\n") == b"CLIENT_ERROR unauthenticated"
    # A set whose data is not "user password".
    assert c.ask(b"set foo 0 0 2\r\nhi\r\n") == b"CLIENT_ERROR bad authentication token format"
    assert c.ask(b"set foo 0 0 2\r\nhixx") == b"CLIENT_ERROR bad command line termination"


def test_ascii_login(ascii_server):
    c = Text(ascii_server.port)
    assert c.ask(b"set foo 0 0 7\r\nfoo bab\r\n") == b"CLIENT_ERROR authentication failure"
    assert c.ask(b"set anykey 5 0 7\r\nfoo bar\r\n") == b"STORED"
    # The login stored nothing; from now on commands run as usual.
    assert c.ask(b"get anykey\r\n") == b"END"
    assert c.ask(b"set toast 0 0 2\r\nhi\r\n") == b"STORED"
    assert c.ask(b"get toast\r\n") == b"VALUE toast 0 2"
    assert c.line() == b"hi" and c.line() == b"END"
    c.send(b"stats\r\n")
    stats = {}
    while (line := c.line()) != b"END":
        _, name, value = line.split(b" ", 2)
        stats[name] = value
    assert (stats[b"auth_cmds"], stats[b"auth_errors"]) == (b"2", b"1")
    # A second connection logs in on its own, with the second entry (a \r\n line).
    d = Text(ascii_server.port)
    assert d.ask(b"get toast\r\n") == b"CLIENT_ERROR unauthenticated"
    assert d.ask(b"set x 0 0 10\r\nbaaaz quux\r\n") == b"STORED"
    assert d.ask(b"get nothing\r\n") == b"END"


def test_ascii_settings(ascii_server, authfile):
    c = Text(ascii_server.port)
    assert c.ask(b"set a 0 0 7\r\nfoo bar\r\n") == b"STORED"
    c.send(b"stats settings\r\n")
    settings = {}
    while (line := c.line()) != b"END":
        _, name, value = line.split(b" ", 2)
        settings[name] = value
    assert settings[b"auth_enabled_ascii"] == str(authfile).encode()
    assert settings[b"auth_enabled_sasl"] == b"no"
    assert settings[b"binding_protocol"] == b"ascii"


def test_ascii_login_split_across_packets(ascii_server):
    c = Text(ascii_server.port)
    for piece in (b"set foo 0 0 7\r", b"\nfoo", b" ba", b"r\r", b"\n"):
        c.send(piece)
        time.sleep(0.05)
    assert c.line() == b"STORED"


def test_authfile_is_reread_on_sighup(ascii_server, authfile):
    if TARGET == "memcached":
        pytest.skip("memcached re-reads it on its next clock tick; the timing differs")
    authfile.write_text("newuser:newpass\n")
    ascii_server.proc.send_signal(1)
    time.sleep(0.5)
    c = Text(ascii_server.port)
    assert c.ask(b"set a 0 0 7\r\nfoo bar\r\n") == b"CLIENT_ERROR authentication failure"
    assert c.ask(b"set a 0 0 15\r\nnewuser newpass\r\n") == b"STORED"


@pytest.mark.parametrize("contents, message", [
    ("nocolon\n", "malformed"),
])
def test_bad_authfile_refuses_to_start(tmp_path, contents, message):
    path = tmp_path / "authfile"
    path.write_text(contents)
    cmd = [server_binary(TARGET), "-Y", str(path), "-p", "0", "-U", "0"]
    if TARGET == "memcached" and os.geteuid() == 0:
        cmd += ["-u", "root"]
    done = subprocess.run(cmd, capture_output=True, timeout=10)
    assert done.returncode != 0
    assert message in done.stderr.decode()


def test_authfile_refuses_binary(authfile):
    cmd = [server_binary(TARGET), "-Y", str(authfile), "-B", "binary", "-p", "0", "-U", "0"]
    if TARGET == "memcached" and os.geteuid() == 0:
        cmd += ["-u", "root"]
    done = subprocess.run(cmd, capture_output=True, timeout=10)
    assert done.returncode == 64
    assert "You cannot allow the BINARY protocol while using ascii authentication" in done.stderr.decode()


def test_no_warning_on_loopback_and_with_auth(start_server, sasl_files):
    """The open-to-the-network warning stays quiet where traffic is private (its positive
    cases are unit tests: this suite binds loopback addresses only)."""
    if TARGET == "memcached":
        pytest.skip("slabcached's warning")
    plain_server = start_server(["-m", "16"])
    sasl = start_server(["-S", "-m", "16"])
    time.sleep(0.2)
    for srv in (plain_server, sasl):
        assert "neither authentication nor TLS" not in srv.stderr()


def test_disable_dumping_covers_every_dump(start_server):
    """-X: no command lists the cache's keys (cachedump, metadump; on slabcached also
    `stats detail dump` and `watch`, which memcached 1.6.18 still serves)."""
    server = start_server(["-X", "-m", "16"])
    c = Text(server.port)
    assert c.ask(b"set secret 0 0 1\r\nx\r\n") == b"STORED"
    assert c.ask(b"stats cachedump 1 0\r\n") == b"CLIENT_ERROR stats cachedump not allowed"
    assert c.ask(b"lru_crawler metadump all\r\n") == b"ERROR metadump not allowed"
    if TARGET != "memcached":
        assert c.ask(b"stats detail dump\r\n") == b"CLIENT_ERROR stats detail dump not allowed"
        # Log lines carry keys: -X refuses watchers with -W's reply.
        assert c.ask(b"watch\r\n") == b"CLIENT_ERROR watch commands not allowed"


def test_warning_when_open_to_the_network():
    """Asked to listen on every interface without authentication, slabcached warns at the
    default verbosity, naming the fixes. The port is held on 127.0.0.1 by this test, so the
    server's bind fails right after the warning and nothing ever listens publicly."""
    if TARGET == "memcached":
        pytest.skip("slabcached's warning")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run([server_binary(TARGET), "-l", "0.0.0.0", "-p", str(port)],
                              capture_output=True, timeout=10)
    err = done.stderr.decode()
    assert "neither authentication nor TLS" in err
    for fix in ("-l 127.0.0.1", "-S", "-Y", "-Z"):
        assert fix in err


def test_cram_md5_takes_two_steps(tmp_path, monkeypatch, start_server):
    """A challenge-response mechanism: AUTH answers 0x21 (continue) with the server's
    challenge, STEP with the HMAC-MD5 of it completes the login."""
    import hashlib
    import hmac

    if not os.path.exists(SASLPASSWD2):
        pytest.skip("saslpasswd2 (sasl2-bin) is not installed")
    db = tmp_path / "sasldb"
    (tmp_path / "memcached.conf").write_text(f"mech_list: cram-md5 plain\nsasldb_path: {db}\n")
    subprocess.run([SASLPASSWD2, "-a", "memcached", "-c", "-p", "-f", str(db), USER],
                   input=PASSWORD.encode(), check=True, timeout=30)
    monkeypatch.setenv("SASL_CONF_PATH", str(tmp_path))
    server = start_server(["-S", "-m", "16"])
    c = Binary(server.port)
    assert sorted(c.request(SASL_LIST)[3].split()) == [b"CRAM-MD5", b"PLAIN"]
    op, status, _, challenge = c.request(SASL_AUTH, b"CRAM-MD5")
    assert (op, status) == (SASL_AUTH, AUTH_CONTINUE) and challenge.startswith(b"<")
    wrong = hmac.new(b"nope", challenge, hashlib.md5).hexdigest().encode()
    assert c.request(SASL_STEP, b"CRAM-MD5", value=USER.encode() + b" " + wrong)[1] == AUTH_ERROR
    _, status, _, challenge = c.request(SASL_AUTH, b"CRAM-MD5")
    assert status == AUTH_CONTINUE
    digest = hmac.new(PASSWORD.encode(), challenge, hashlib.md5).hexdigest().encode()
    assert c.request(SASL_STEP, b"CRAM-MD5", value=USER.encode() + b" " + digest) \
        == (SASL_STEP, OK, b"", b"Authenticated")
    assert c.set(b"k", b"v") == OK
    stats = c.stats()
    # An exchange counts once, when it ends.
    assert (stats["auth_cmds"], stats["auth_errors"]) == ("2", "1")
