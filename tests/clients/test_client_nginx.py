"""nginx as a memcached client: the memc module (libnginx-mod-http-memc, `memc_pass`) and the
built-in memcached module (`memcached_pass` with `$memcached_key`). nginx runs in the foreground
from its own prefix directory in a tmpdir, on a free loopback port, and is stopped by PID."""

import http.client
import os
import signal
import socket
import subprocess
import time

import pytest
from pymemcache.client.base import Client

from clientcompat import Raw, free_port, need
from slabtest import stop_process

MEMC_MODULE = "/usr/lib/nginx/modules/ngx_http_memc_module.so"

CONFIG = """\
load_module {memc_module};
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{http_port};
        # GET /foo?cmd=set&key=bar&val=... ; GET /foo?cmd=get&key=bar
        location = /foo {{
            set $memc_cmd $arg_cmd;
            set $memc_key $arg_key;
            set $memc_value $arg_val;
            memc_connect_timeout 5s;
            memc_send_timeout 5s;
            memc_read_timeout 5s;
            memc_pass 127.0.0.1:{mc_port};
        }}
        # Built-in module: serves the value stored under /mc/<key>'s key.
        location /mc/ {{
            set $memcached_key $arg_key;
            memcached_connect_timeout 5s;
            memcached_read_timeout 5s;
            memcached_pass 127.0.0.1:{mc_port};
        }}
    }}
}}
"""


@pytest.fixture
def nginx(server, tmp_path):
    if not os.path.exists(MEMC_MODULE):
        pytest.fail(f"{MEMC_MODULE} missing: run scripts/install-client-deps")
    port = free_port()
    (tmp_path / "nginx.conf").write_text(CONFIG.format(
        memc_module=MEMC_MODULE, prefix=tmp_path, http_port=port, mc_port=server.port))
    err_log = tmp_path / "error.log"
    proc = subprocess.Popen(
        [need("nginx"), "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf"), "-e", str(err_log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nginx exited {proc.returncode}: {proc.stderr.read().decode()}\n"
                            f"{err_log.read_text() if err_log.exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not listen within 10 s")
                time.sleep(0.02)
        yield port
    finally:
        stop_process(proc, signal.SIGQUIT)  # nginx's graceful stop
        proc.stderr.close()


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_nginx_memc_set_then_get(server, nginx):
    status, body = http_get(nginx, "/foo?cmd=set&key=bar&val=hello_from_nginx_42")
    assert (status, body) == (201, b"STORED\r\n")
    status, body = http_get(nginx, "/foo?cmd=get&key=bar")
    assert (status, body) == (200, b"hello_from_nginx_42")
    # What nginx stored is plain data for every other client.
    with Raw(server.port) as raw:
        assert raw.get("bar") == (0, b"hello_from_nginx_42")
    # More memc commands on the same upstream.
    assert http_get(nginx, "/foo?cmd=add&key=bar&val=x") == (200, b"NOT_STORED\r\n")
    assert http_get(nginx, "/foo?cmd=append&key=bar&val=_tail")[0] == 201
    assert http_get(nginx, "/foo?cmd=get&key=bar") == (200, b"hello_from_nginx_42_tail")
    assert http_get(nginx, "/foo?cmd=set&key=n&val=10")[0] == 201
    assert http_get(nginx, "/foo?cmd=incr&key=n&val=5") == (201, b"15\r\n")
    assert http_get(nginx, "/foo?cmd=delete&key=bar") == (200, b"DELETED\r\n")
    assert http_get(nginx, "/foo?cmd=get&key=bar")[0] == 404
    status, body = http_get(nginx, "/foo?cmd=version")
    assert status == 200 and body.startswith(b"VERSION "), body
    status, body = http_get(nginx, "/foo?cmd=flush_all")
    assert (status, body) == (200, b"OK\r\n")
    assert http_get(nginx, "/foo?cmd=get&key=n")[0] == 404


def test_nginx_memcached_pass_serves_key_set_by_another_client(server, nginx):
    # default_noreply=False: each set waits for STORED before nginx is asked.
    mc = Client(("127.0.0.1", server.port), connect_timeout=5, timeout=5, default_noreply=False)
    page = b"<html><body>cached page \xe2\x9c\x93</body></html>" + bytes(range(256)) * 40
    assert mc.set("page:/index", page)
    status, body = http_get(nginx, "/mc/index?key=page:/index")
    assert status == 200 and body == page
    assert http_get(nginx, "/mc/x?key=page:/missing")[0] == 404
    # An update by the other client is what nginx serves next.
    assert mc.set("page:/index", b"v2")
    assert http_get(nginx, "/mc/index?key=page:/index") == (200, b"v2")
    mc.close()
