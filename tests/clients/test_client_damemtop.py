"""damemtop, the curses-less "top" for memcached shipped in Debian's memcached package
(/usr/share/memcached/scripts/damemtop, Perl with AnyEvent, YAML and Term::ReadKey): it polls
`stats`, `stats items` and `stats slabs` of every server in its YAML config each `delay`
seconds and prints one row per server of the columns asked for (a stat's rate per second, or
with an `all_` prefix its value; `hit_rate` and `fill_rate` computed; a rate of a constant,
such as plain `fill_rate`, divides by zero and kills it). It needs a terminal:
the test runs it on a pseudo-terminal, against slabcached and memcached at once, and stops it
by PID."""

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from clientcompat import Raw

SCRIPT = "/usr/share/memcached/scripts/damemtop"
COLUMNS = ["hostname", "all_version", "all_curr_items", "all_limit_maxbytes", "hit_rate",
           "all_fill_rate", "cmd_get", "1:get_hits", "all_total_items"]


def run_damemtop(home, ports: list[int], seconds: float) -> str:
    """damemtop's terminal output over `seconds`, polling every second."""
    conf = home / ".damemtop"
    conf.mkdir(exist_ok=True)
    # damemtop ignores --config; it reads $HOME/.damemtop/damemtop.yaml.
    (conf / "damemtop.yaml").write_text(
        "delay: 1\nmode: t\ntop_mode:\n    sort_column: \"hostname\"\n    sort_order: \"asc\"\n"
        "    columns:\n" + "".join(f"        - \"{c}\"\n" for c in COLUMNS)
        + "servers:\n" + "".join(f"    - 127.0.0.1:{p}\n" for p in ports))
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(["perl", SCRIPT], stdin=terminal, stdout=terminal, stderr=terminal,
                            env={**os.environ, "HOME": str(home), "TERM": "dumb"},
                            start_new_session=True)
    os.close(terminal)
    out = b""
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    out += os.read(controller, 1 << 16)
                except OSError:
                    break
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        os.close(controller)
    return out.decode(errors="replace")


def test_damemtop_shows_slabcached_like_memcached(start_server, tmp_path):
    if not os.path.exists(SCRIPT):
        pytest.fail("damemtop not found (Debian package memcached)")
    if subprocess.run(["perl", "-MAnyEvent", "-MYAML", "-MTerm::ReadKey", "-e1"],
                      capture_output=True).returncode != 0:
        pytest.fail("damemtop needs libanyevent-perl libyaml-perl libterm-readkey-perl "
                    "(scripts/install-client-deps)")
    sc = start_server(["-m", "64"])
    mc = start_server(["-m", "64"], kind="memcached")
    for srv in (sc, mc):
        with Raw(srv.port) as raw:
            for i in range(5):
                raw.set(f"k{i}", b"v" * 100)
            assert raw.get("k1") == (0, b"v" * 100)
            assert raw.get("nope") is None
    # The first poll only records; each later one prints a screen.
    screens = run_damemtop(tmp_path, [sc.port, mc.port], 4.5).split("damemtop: ")[1:]
    assert len(screens) >= 2, screens
    last = screens[-2]  # the last complete screen
    assert "Failed connecting" not in last and "cannot detect" not in last, last
    lines = last.splitlines()
    assert lines[1].split() == COLUMNS, lines[1]
    rows = {}
    for line in lines:
        fields = line.split()
        if fields and re.fullmatch(r"127\.0\.0\.1:\d+", fields[0]):
            rows[int(fields[0].split(":")[1])] = fields
    assert set(rows) == {sc.port, mc.port}, last
    for port, fields in rows.items():
        assert len(fields) == len(COLUMNS), fields
        host, version, curr_items, limit, hit_rate, fill_rate, cmd_get, hits, total = fields
        assert version == "1.6.18"
        assert (curr_items, limit, total) == ("5", "67,108,864", "5"), (port, fields)
        # no traffic between polls: rates are 0, and hit_rate has nothing to divide
        assert (hit_rate, cmd_get, hits) == ("NA", "0", "0"), (port, fields)
        assert re.fullmatch(r"\d+(\.\d+)?(e-\d+)?%?", fill_rate), (port, fields)
