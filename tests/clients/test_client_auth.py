"""Real clients logging in with SASL PLAIN over the binary protocol (server started with -S):
pylibmc, php-memcached (plus PHP sessions through its session handler), spymemcached with a
PLAIN AuthDescriptor and Dalli. Each one also has its wrong password refused. The server's
credentials come from Cyrus SASL's files (SASL_CONF_PATH with memcached.conf and a sasldb made
by saslpasswd2), so the same fixture serves slabcached and Debian's memcached."""

import json
import os
import re
import subprocess
import sys

import pytest

from clientcompat import HERE, need, ok_lines, run
from test_client_php import PHP_DIR, php
from test_client_spymemcached import JAR

USER, PASSWORD = "sasluser", "s3cret-pw"
# pylibmc's wheel carries its own libsasl2, which looks for mechanism plugins where its build
# machine had them; Debian's plugins (libsasl2-modules) are compatible.
DEBIAN_SASL_PLUGINS = "/usr/lib/x86_64-linux-gnu/sasl2"


@pytest.fixture
def sasl_server(tmp_path, monkeypatch, start_server):
    saslpasswd2 = need("saslpasswd2")
    db = tmp_path / "sasldb"
    (tmp_path / "memcached.conf").write_text(f"mech_list: plain\nsasldb_path: {db}\n")
    subprocess.run([saslpasswd2, "-a", "memcached", "-c", "-p", "-f", str(db), USER],
                   input=PASSWORD.encode(), check=True, timeout=30)
    monkeypatch.setenv("SASL_CONF_PATH", str(tmp_path))
    return start_server(["-S", "-m", "16", "-t", "2"])


PYLIBMC_SCRIPT = """
import sys
import pylibmc

port, user, password = sys.argv[1:]
address = [f"127.0.0.1:{port}"]
mc = pylibmc.Client(address, binary=True, username=user, password=password)
assert mc.set("pylibmc:sasl", b"hello over sasl")
assert mc.get("pylibmc:sasl") == b"hello over sasl"
assert mc.set("pylibmc:ctr", b"1")
assert mc.incr("pylibmc:ctr", 1) == 2
assert mc.delete("pylibmc:sasl")
print("ok good password")
wrong = pylibmc.Client(address, binary=True, username=user, password="wrong")
try:
    wrong.set("pylibmc:refused", b"x")
except pylibmc.Error as e:
    assert "AUTHENTICATION" in str(e), e
    print("ok wrong password refused")
"""


def test_pylibmc_sasl(sasl_server):
    # A process of its own: libsasl2 reads SASL_PATH once, when pylibmc is imported.
    env = {"SASL_PATH": DEBIAN_SASL_PLUGINS} if os.path.isdir(DEBIAN_SASL_PLUGINS) else {}
    proc = run([sys.executable, "-c", PYLIBMC_SCRIPT, sasl_server.port, USER, PASSWORD], env=env,
               timeout=60)
    assert ok_lines(proc.stdout) == {"good password", "wrong password refused"}, proc.stdout


@pytest.mark.parametrize("password, expect", [(PASSWORD, "good"), ("wrong", "bad")])
def test_php_memcached_sasl(sasl_server, password, expect):
    proc = php(PHP_DIR / "sasl_ops.php", sasl_server.port, USER, password, expect,
               ini=["memcached.use_sasl=1"])
    names = {"good": ("set", "get", "increment", "increment again", "delete", "get deleted"),
             "bad": ("set refused", "get refused")}[expect]
    passed = ok_lines(proc.stdout)
    for name in names:
        assert name in passed, (name, proc.stdout, proc.stderr)
    assert proc.stdout.rstrip().endswith("done"), proc.stdout


def test_php_sessions_over_sasl(sasl_server):
    ini = ["memcached.use_sasl=1", "session.save_handler=memcached",
           f"session.save_path=127.0.0.1:{sasl_server.port}", "memcached.sess_binary_protocol=1",
           f"memcached.sess_sasl_username={USER}", f"memcached.sess_sasl_password={PASSWORD}"]
    secret = "a session behind SASL"
    writer = php(PHP_DIR / "session.php", "write", secret, ini=ini)
    sid = writer.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9,-]{16,}", sid), (writer.stdout, writer.stderr)
    reader = php(PHP_DIR / "session.php", "read", sid, ini=ini)
    assert json.loads(reader.stdout) == {"value": secret, "counter": 42}
    # With the wrong password the handler cannot read the session.
    bad_ini = [s.replace(f"={PASSWORD}", "=wrong") for s in ini]
    cmd = [need("php"), "-d", "display_errors=stderr"]
    for setting in bad_ini:
        cmd += ["-d", setting]
    refused = subprocess.run(cmd + [str(PHP_DIR / "session.php"), "read", sid],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 or secret not in refused.stdout
    assert "AUTHENTICATION FAILURE" in refused.stderr


def spy_classes(tmp_path) -> str:
    if not os.path.exists(JAR):
        pytest.fail(f"{JAR} missing: run scripts/install-client-deps")
    out = tmp_path / "classes"
    out.mkdir()
    run([need("javac"), "-nowarn", "-cp", JAR, "-d", out, HERE / "java" / "SpySasl.java"], timeout=120)
    return str(out)


def test_spymemcached_plain_auth_descriptor(sasl_server, tmp_path):
    classes = spy_classes(tmp_path)
    java = [need("java"), "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", f"{JAR}:{classes}", "SpySasl"]
    good = run(java + [sasl_server.port, USER, PASSWORD, "good"], timeout=90)
    assert {"set", "get", "incr", "delete"} <= ok_lines(good.stdout), (good.stdout, good.stderr[-2000:])
    bad = run(java + [sasl_server.port, USER, "wrong", "bad"], timeout=90)
    assert "set refused" in ok_lines(bad.stdout), (bad.stdout, bad.stderr[-2000:])


@pytest.mark.parametrize("password, expect", [(PASSWORD, "good"), ("wrong", "bad")])
def test_dalli_sasl(sasl_server, password, expect):
    proc = run([need("ruby"), HERE / "ruby" / "dalli_sasl.rb", sasl_server.port, USER, password, expect],
               timeout=60)
    names = ("set", "get", "incr", "delete") if expect == "good" else ("set refused",)
    passed = ok_lines(proc.stdout)
    for name in names:
        assert name in passed, (name, proc.stdout, proc.stderr)
    assert proc.stdout.rstrip().endswith("done")


def test_pymemcache_ascii_auth(tmp_path, start_server):
    """memcached's text-protocol authentication (-Y) needs nothing of a client but a `set`
    whose value is `user password`: pymemcache logs in that way, then works as usual; a
    wrong password is refused and the connection stays unauthenticated."""
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheClientError

    authfile = tmp_path / "authfile"
    authfile.write_text(f"{USER}:{PASSWORD}\n")
    server = start_server(["-Y", str(authfile), "-m", "16"])
    wrong = Client(("127.0.0.1", server.port), timeout=5)
    with pytest.raises(MemcacheClientError, match="authentication failure"):
        wrong.set("login", f"{USER} wrong", noreply=False)
    with pytest.raises(MemcacheClientError, match="unauthenticated"):
        wrong.get("anything")
    wrong.close()
    mc = Client(("127.0.0.1", server.port), timeout=5)
    assert mc.set("login", f"{USER} {PASSWORD}", noreply=False) is True
    assert mc.get("login") is None  # the login stored nothing
    assert mc.set("k", b"v", noreply=False) is True
    assert mc.get("k") == b"v"
    assert mc.incr("n", 1) is None
    assert mc.delete("k", noreply=False) is True
    mc.close()
