"""`tierd serve` as systemd sees it: READY/STATUS/STOPPING over NOTIFY_SOCKET,
metrics on loopback with real counters, clear errors for bad set-ups."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request

import tierd


def test_sd_notify_ready_and_stopping(daemon_factory, tmp_path):
    sockpath = f"/tmp/td-notify-{os.getpid()}"
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(sockpath)
    ns.settimeout(60)
    try:
        d = daemon_factory(start=False)
        d.env = dict(d.env, NOTIFY_SOCKET=sockpath)
        d.start()
        msgs = []
        while not any("READY=1" in m for m in msgs):
            msgs.append(ns.recv(4096).decode())
        assert any("STATUS=serving" in m for m in msgs), msgs
        assert d.stop() == 0
        ns.settimeout(5)
        tail = []
        try:
            while True:
                tail.append(ns.recv(4096).decode())
        except socket.timeout:
            pass
        assert any("STOPPING=1" in m for m in tail), tail
    finally:
        ns.close()
        os.unlink(sockpath)


def test_metrics_on_loopback_count_requests(daemon_factory):
    d = daemon_factory(metrics="127.0.0.1:0")
    with tierd.connect(d.socket) as c:
        url = c.status()["server"]["metrics"]
        assert url.startswith("http://127.0.0.1:")
        c.put("default", "m", b"x" * 10000, durability="persisted")
        with c.get("default", "m"):
            pass
        c.get_many("default", ["m"])[0].release()
        r = c.reserve("default", [10000])
        assert r.commit(["m"], if_absent=True) == [False]     # deduplicated
        try:
            c.get("default", "absent")
        except tierd.NotFound:
            pass
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    assert 'tierd_requests_total{op="commit"}' in body
    assert 'tierd_hits_total{ns="default",tier="dram"}' in body
    assert 'tierd_dram_bytes{ns="default",state="free"}' in body
    assert 'tierd_dedup_bytes_total{ns="default"} 10000.0' in body
    assert "tierd_clients" in body and "tierd_request_seconds_bucket" in body


def test_remote_metrics_address_is_refused(daemon_factory):
    d = daemon_factory(start=False, metrics="0.0.0.0:0")
    p = subprocess.run([sys.executable, "-m", "tierd_daemon", "serve", "--config", d.config_path],
                       env=d.env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "not loopback" in p.stderr and "allow_remote" in p.stderr


def test_unusable_data_dir_is_a_clear_error(daemon_factory, tmp_path):
    # A data_dir below a regular file cannot be created, whoever runs us
    # (root ignores permission bits, so a read-only directory would not do).
    (tmp_path / "afile").write_text("not a directory")
    d = daemon_factory(start=False, data_dir=str(tmp_path / "afile" / "data"))
    p = subprocess.run([sys.executable, "-m", "tierd_daemon", "serve", "--config", d.config_path],
                       env=d.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert "cannot start" in p.stderr and "data_dir" in p.stderr and "afile" in p.stderr
    assert "Traceback" not in p.stderr
