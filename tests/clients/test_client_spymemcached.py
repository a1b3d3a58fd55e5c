"""spymemcached (Debian's libspymemcached-java) through its ASCII (DefaultConnectionFactory) and
binary (BinaryConnectionFactory) connection factories. The Java program is compiled once and its
classes cached under tests/clients/.cache/ keyed by a hash of the source, javac and the jar."""

import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

from clientcompat import CACHE_DIR, HERE, Raw, binary_xfail, need, ok_lines, run

SOURCE = HERE / "java" / "SpyCheck.java"
JAR = "/usr/share/java/spymemcached.jar"


def compiled_classes() -> str:
    javac = need("javac")
    if not os.path.exists(JAR):
        pytest.fail(f"{JAR} missing: run scripts/install-client-deps")
    version = subprocess.run([javac, "-version"], capture_output=True, text=True, timeout=30)
    jar = os.stat(JAR)
    key = hashlib.sha256(
        SOURCE.read_bytes() + (version.stdout + version.stderr).encode()
        + f"{os.path.realpath(JAR)}:{jar.st_size}:{jar.st_mtime_ns}".encode()
    ).hexdigest()[:16]
    out = CACHE_DIR / f"java-{key}"
    if (out / "SpyCheck.class").exists():
        return str(out)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=CACHE_DIR, prefix="tmp-java-")
    try:
        run([javac, "-nowarn", "-cp", JAR, "-d", tmp, SOURCE], timeout=120)
        try:
            os.rename(tmp, out)  # atomic: a concurrent run may have won, which is fine
        except OSError:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for stale in CACHE_DIR.glob("java-*"):
        if stale != out:
            shutil.rmtree(stale, ignore_errors=True)
    assert (out / "SpyCheck.class").exists()
    return str(out)


@pytest.mark.parametrize("mode", ["ascii", pytest.param("binary", marks=binary_xfail)])
def test_spymemcached(server, mode):
    classes = compiled_classes()
    with Raw(server.port) as raw:
        raw.set("from_python", b"written by python")
    proc = run([need("java"), "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", f"{JAR}:{classes}",
                "SpyCheck", server.port, mode], timeout=90)
    passed = ok_lines(proc.stdout)
    for name in ("factory", "set string", "get string", "bulk get", "gets", "cas", "cas stale", "incr",
                 "incr with default", "decr", "delete", "delete missing", "read python key",
                 "get bytes"):
        assert name in passed, (name, proc.stdout, proc.stderr[-2000:])
    assert proc.stdout.rstrip().endswith("done"), proc.stdout
    # Strings written by spymemcached are plain UTF-8 with flags 0, readable by any client.
    with Raw(server.port) as raw:
        assert raw.get("spy:str") == (0, b"hello from spymemcached")
        assert raw.get("spy:bulk:42") == (0, b"value-42")
        assert raw.get("spy:added") is None
