"""Shared helpers of scripts/bench and scripts/bench-memory.

Starting and stopping servers (always by PID, always on 127.0.0.1), building the release
binaries, reading /proc, talking to a server's `stats` command, describing the machine, and
creating the results/<timestamp>/ folder. Standard library only.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import hashlib
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = ROOT / "target" / "release" / "loadgen"
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"
SERVER_KINDS = ("memcached", "slabcached")

_live: dict[int, subprocess.Popen] = {}
_slabcached_override: Path | None = None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg: str, code: int = 2) -> None:
    log(f"error: {msg}")
    sys.exit(code)


def slabcached_bin() -> Path:
    if _slabcached_override:
        return _slabcached_override
    return Path(os.environ.get("SLABCACHED_BIN", ROOT / "target" / "release" / "slabcached"))


def snapshot_slabcached(out: Path) -> dict:
    """Copies the slabcached binary into out/bin/ and runs that copy from now on.

    Others rebuild target/release/slabcached while a benchmark runs; the copy keeps every run
    of one benchmark on the same build. Returns the source path and SHA-256 for the report.
    """
    global _slabcached_override
    src = slabcached_bin()
    dst = out / "bin" / "slabcached"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    _slabcached_override = dst
    return {"source": str(src), "copy": str(dst.relative_to(out)), "sha256": digest,
            "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(src.stat().st_mtime))}


def build(need_slabcached: bool, skip: bool) -> None:
    """Builds loadgen (and slabcached when it is benchmarked); exits clearly on failure."""
    if not skip:
        log("cargo build --release -p loadgen")
        if subprocess.run(["cargo", "build", "--release", "-p", "loadgen"], cwd=ROOT).returncode:
            die("loadgen failed to build")
        if need_slabcached and "SLABCACHED_BIN" not in os.environ:
            log("cargo build --release (slabcached)")
            if subprocess.run(["cargo", "build", "--release"], cwd=ROOT).returncode:
                die("slabcached failed to build (cargo build --release); nothing to compare. "
                    "Use --servers memcached,memcached for a memcached-only A/A run.")
    if not LOADGEN.exists():
        die(f"{LOADGEN} is missing (build with: cargo build --release -p loadgen)")
    if need_slabcached and not slabcached_bin().exists():
        die(f"slabcached binary {slabcached_bin()} is missing: build it with cargo build --release, "
            "or set SLABCACHED_BIN. For a memcached-only A/A run use --servers memcached,memcached.")
    if not os.path.exists(MEMCACHED):
        die("memcached not found: apt-get install memcached")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A memcached or slabcached process on a fresh loopback port, stopped by PID."""

    def __init__(self, kind: str, threads: int, memory_mb: int, log_path: Path, extra=()):
        self.kind = kind
        self.port = free_port()
        binary = MEMCACHED if kind == "memcached" else str(slabcached_bin())
        self.cmd = [binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                    "-t", str(threads), "-m", str(memory_mb), "-c", "4096", *extra]
        if kind == "memcached" and os.geteuid() == 0:
            self.cmd += ["-u", "root"]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        _live[self.proc.pid] = self.proc
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{kind} exited at start with code {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{kind} did not listen on port {self.port} within 10 s")
                time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 400) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace").strip()
        except OSError:
            return ""

    def stop(self) -> None:
        stop_pid(self.proc)
        self._log.close()


def stop_pid(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    _live.pop(proc.pid, None)


def _stop_all(*_args) -> None:
    for proc in list(_live.values()):
        stop_pid(proc)


def install_cleanup() -> None:
    """Stops every server this script started when it exits, is interrupted or terminated."""
    atexit.register(_stop_all)

    def on_signal(signum, _frame):
        _stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def proc_status(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (e.g. VmRSS), in bytes."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def stats(port: int, timeout: float = 5.0) -> dict[str, str]:
    """The server's `stats` reply as a dict (empty when it does not answer)."""
    out: dict[str, str] = {}
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"stats\r\n")
            buf = b""
            deadline = time.monotonic() + timeout
            while not (buf.endswith(b"END\r\n") or b"ERROR" in buf) and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError:
        return out
    for line in buf.decode(errors="replace").split("\r\n"):
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            out[parts[1]] = parts[2]
    return out


def machine() -> dict:
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "mem_total_bytes": mem_total,
        "loadavg": open("/proc/loadavg").read().strip() if os.path.exists("/proc/loadavg") else None,
        "memcached_version": _cmd_out([MEMCACHED, "-V"]),
        "git_commit": _cmd_out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_cmd_out(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                    "src", "slab", "proto", "benches"])),
    }


def _cmd_out(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def results_dir(out: str | None) -> Path:
    path = Path(out) if out else ROOT / "results" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def server_labels(servers: list[str]) -> list[str]:
    """Unique labels: `memcached,memcached` becomes `memcached`, `memcached#2` (A/A runs)."""
    labels = []
    for s in servers:
        label, n = s, 2
        while label in labels:
            label, n = f"{s}#{n}", n + 1
        labels.append(label)
    return labels


def median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2
