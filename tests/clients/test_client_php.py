"""PHP clients: php-memcached (libmemcached), php-memcache (pecl memcache) and PHP sessions stored
through both extensions' session handlers."""

import json
import re

import pytest

from clientcompat import HERE, Raw, binary_xfail, need, ok_lines, run

PHP_DIR = HERE / "php"
# Debian's php.ini loads the extensions (mods-available); make every warning visible on stderr.
PHP_ARGS = ["-d", "display_errors=stderr", "-d", "error_reporting=E_ALL"]


def php(*args, ini=(), timeout=60):
    cmd = [need("php"), *PHP_ARGS]
    for setting in ini:
        cmd += ["-d", setting]
    return run(cmd + [str(a) for a in args], timeout=timeout)


def seed(server) -> None:
    with Raw(server.port) as raw:
        raw.set("from_python", b"written by python")


@pytest.mark.parametrize("mode", ["text", pytest.param("binary", marks=binary_xfail)])
def test_php_memcached_ext(server, mode):
    seed(server)
    proc = php(PHP_DIR / "memcached_ops.php", server.port, mode)
    passed = ok_lines(proc.stdout)
    for name in ("protocol", "set", "get", "getMulti", "get extended", "cas", "cas stale",
                 "increment", "decrement", "read python key", "get bytes"):
        assert name in passed, (name, proc.stdout)
    assert proc.stdout.rstrip().endswith("done"), proc.stdout
    assert proc.stderr.strip() == "", proc.stderr
    with Raw(server.port) as raw:
        # Strings go out verbatim with php-memcached's "string" type flag (0).
        assert raw.get("php:str") == (0, b"hello from php")
        assert raw.get("php:multi:7") == (0, b"value-7")
        assert raw.get("php:ctr")[1].strip() == b"1"


def test_php_memcache_ext(server):
    seed(server)
    proc = php(PHP_DIR / "memcache_ops.php", server.port)
    passed = ok_lines(proc.stdout)
    for name in ("set", "get", "get multi", "get with cas", "cas", "cas stale", "increment",
                 "decrement", "read python key", "delete"):
        assert name in passed, (name, proc.stdout)
    assert proc.stdout.rstrip().endswith("done"), proc.stdout
    with Raw(server.port) as raw:
        assert raw.get("php1:str") == (0, b"hello from php-memcache")
        assert raw.get("php1:ctr")[1].strip() == b"0"


SESSION_HANDLERS = [
    pytest.param("memcached", "text", id="memcached-text"),
    pytest.param("memcached", "binary", id="memcached-binary", marks=binary_xfail),
    pytest.param("memcache", "text", id="memcache"),
]


@pytest.mark.parametrize("handler,protocol", SESSION_HANDLERS)
def test_php_session(server, handler, protocol):
    if handler == "memcached":
        ini = ["session.save_handler=memcached", f"session.save_path=127.0.0.1:{server.port}",
               f"memcached.sess_binary_protocol={1 if protocol == 'binary' else 0}"]
        key_of = lambda sid: "memc.sess.key." + sid  # php-memcached's default prefix
    else:
        ini = ["session.save_handler=memcache", f"session.save_path=tcp://127.0.0.1:{server.port}"]
        key_of = lambda sid: sid
    secret = "stored by one process, read by another"
    writer = php(PHP_DIR / "session.php", "write", secret, ini=ini)
    sid = writer.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9,-]{16,}", sid), writer.stdout
    assert writer.stderr.strip() == "", writer.stderr

    # The session data is on the server under the handler's key, in PHP's session encoding.
    with Raw(server.port) as raw:
        stored = raw.get(key_of(sid))
    assert stored is not None, f"no {key_of(sid)} on the server"
    assert stored[1] == f'value|s:{len(secret)}:"{secret}";counter|i:41;'.encode()

    reader = php(PHP_DIR / "session.php", "read", sid, ini=ini)
    assert json.loads(reader.stdout) == {"value": secret, "counter": 42}
    # The reader's change was written back and a third process sees it.
    again = php(PHP_DIR / "session.php", "read", sid, ini=ini)
    assert json.loads(again.stdout) == {"value": secret, "counter": 43}
