"""Install and run as a service: scripts/install into a temporary root, the systemd unit it
writes, and the installed binary started the way the unit starts it (--config-file with the
shipped memcached.conf-style file). slabcached only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slabtest import ROOT, TARGET, RawConn, free_port

pytestmark = pytest.mark.skipif(TARGET == "memcached", reason="slabcached's packaging")

INSTALL = ROOT / "scripts" / "install"


def install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(INSTALL), *args], capture_output=True, text=True, timeout=60)


def settings(port: int) -> dict[str, str]:
    with RawConn(port) as c:
        c.send(b"stats settings\r\n")
        out = {}
        while (line := c.line()) != b"END":
            _, name, value = line.decode().split(" ", 2)
            out[name] = value
        return out


def test_dry_run_changes_nothing(tmp_path):
    proc = install("--destdir", str(tmp_path), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would install -m 755 " + str(tmp_path) + "/usr/local/bin/slabcached" in proc.stdout
    assert "slabcached.service" in proc.stdout and "slabcached.conf" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_install_into_a_root_and_run_from_the_config_file(tmp_path, start_server, monkeypatch):
    proc = install("--destdir", str(tmp_path), "--prefix", "/usr")
    assert proc.returncode == 0, proc.stderr
    binary = tmp_path / "usr/bin/slabcached"
    unit = tmp_path / "etc/systemd/system/slabcached.service"
    conf = tmp_path / "etc/slabcached.conf"
    assert binary.stat().st_mode & 0o777 == 0o755
    text = unit.read_text()
    assert "ExecStart=/usr/bin/slabcached --config-file /etc/slabcached.conf\n" in text
    assert "@BINDIR@" not in text and "@SYSCONFDIR@" not in text
    for hardening in ["NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "DynamicUser=yes",
                      "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"]:
        assert hardening in text
    assert conf.read_bytes() == (ROOT / "packaging/slabcached.conf").read_bytes()

    # A changed config survives a reinstall; the shipped one goes next to it.
    conf.write_text("-m 32\n")
    assert install("--destdir", str(tmp_path), "--prefix", "/usr").returncode == 0
    assert conf.read_text() == "-m 32\n"
    assert (tmp_path / "etc/slabcached.conf.dist").read_bytes() == (ROOT / "packaging/slabcached.conf").read_bytes()
    shutil.copy(ROOT / "packaging/slabcached.conf", conf)

    # The installed binary, started as the unit starts it; the test's own port flags win
    # over the file's (the command line comes after the file).
    monkeypatch.setenv("SLABCACHED_BIN", str(binary))
    metrics_port = free_port()
    srv = start_server(["--config-file", str(conf), "--metrics-listen", f"127.0.0.1:{metrics_port}"])
    s = settings(srv.port)
    assert s["maxbytes"] == str(64 << 20)
    assert s["maxconns"] == "1024"
    assert s["num_threads"] == "4"
    assert s["tcpport"] == str(srv.port)
    with RawConn(metrics_port) as c:
        c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.line() == b"HTTP/1.1 200 OK"
    # -d in the file is ignored: the process stayed in the foreground.
    assert srv.proc.poll() is None


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path):
    """systemd-analyze knows every directive of the unit and finds its command. The staged
    unit names /usr/local/bin/slabcached, which is not on this machine: a copy that names
    the staged binary is checked."""
    root = tmp_path / "root"
    assert install("--destdir", str(root)).returncode == 0
    unit = (root / "etc/systemd/system/slabcached.service").read_text()
    unit = unit.replace("/usr/local/bin/slabcached", str(root / "usr/local/bin/slabcached"))
    unit = unit.replace("/etc/slabcached.conf", str(root / "etc/slabcached.conf"))
    checked = tmp_path / "slabcached.service"
    checked.write_text(unit)
    proc = subprocess.run(["systemd-analyze", "verify", str(checked)], capture_output=True, text=True, timeout=60)
    # Only complaints about this unit count (the host's own units may have some).
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "slabcached.service" in line]
    assert proc.returncode == 0 and not lines, proc.stdout + proc.stderr


@pytest.mark.skipif(not Path("/etc/memcached.conf").exists(), reason="no Debian memcached.conf")
def test_debians_memcached_conf_is_taken_as_it_is(start_server, tmp_path):
    """The config file memcached's Debian package installs, read unchanged; the test's own
    port, pid file and user win over the file's."""
    text = Path("/etc/memcached.conf").read_text()
    memory = re.search(r"^-m\s+(\d+)", text, re.M)
    srv = start_server(["--config-file", "/etc/memcached.conf", "-P", str(tmp_path / "pid"), "-u", "root"])
    s = settings(srv.port)
    if memory:
        assert s["maxbytes"] == str(int(memory.group(1)) << 20)
    assert (tmp_path / "pid").read_text().strip() == str(srv.pid)
    assert srv.proc.poll() is None  # its -d line did not fork the server away
