"""Prometheus endpoint: a real HTTP server on loopback, scraped with urllib."""
from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

pytest.importorskip("prometheus_client", reason="prometheus_client is not installed")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tierd_daemon.metrics import REQUEST_BUCKETS, Metrics, is_loopback, parse_listen  # noqa: E402


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


@pytest.fixture
def served():
    snapshot = {
        "dram_bytes": {"default": {"clean": 100, "dirty": 20, "free": 4000},
                       "cache": {"clean": 7, "dirty": 0, "free": 1}},
        "nvme_bytes": {"used": 1 << 20, "free": 3 << 20},
        "flush_backlog_bytes": {"default": 20},
        "leases": {"default": 2, "cache": 0},
        "clients": 3,
    }
    calls = []

    def gauges():
        calls.append(1)
        return snapshot

    m = Metrics(gauges_fn=gauges)
    host, port = m.start_http("127.0.0.1:0")
    yield m, f"http://{host}:{port}", snapshot, calls
    m.stop()


def test_scrape_counters_histogram_gauges(served):
    m, base, snapshot, calls = served
    assert calls == []  # gauges_fn is not called before the first scrape
    m.request("put", 0.002)
    m.request("get", 0.00004)
    m.request("get", 3.0, error_code="ENOSPC")
    m.error("EIO")
    m.hit("default", "dram", 4096)
    m.hit("default", "nvme", 8192)
    m.miss("cache")
    m.written("default", "dram", 1000)
    m.written("default", "nvme", 4096)
    m.read("cache", "nvme", 512)
    m.evicted("cache", 3)
    m.flushed("default", 4096)
    m.deduplicated("default", 1 << 20)

    status, ctype, text = _get(base + "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    s = _samples(text)
    assert s[("tierd_requests_total", (("op", "get"),))] == 2
    assert s[("tierd_requests_total", (("op", "put"),))] == 1
    assert s[("tierd_errors_total", (("code", "ENOSPC"),))] == 1
    assert s[("tierd_errors_total", (("code", "EIO"),))] == 1
    assert s[("tierd_hits_total", (("ns", "default"), ("tier", "dram")))] == 1
    assert s[("tierd_hits_total", (("ns", "default"), ("tier", "nvme")))] == 1
    assert s[("tierd_bytes_read_total", (("ns", "default"), ("tier", "nvme")))] == 8192
    assert s[("tierd_bytes_read_total", (("ns", "cache"), ("tier", "nvme")))] == 512
    assert s[("tierd_bytes_written_total", (("ns", "default"), ("tier", "dram")))] == 1000
    assert s[("tierd_misses_total", (("ns", "cache"),))] == 1
    assert s[("tierd_evictions_total", (("ns", "cache"),))] == 3
    assert s[("tierd_flushed_bytes_total", (("ns", "default"),))] == 4096
    assert s[("tierd_dedup_bytes_total", (("ns", "default"),))] == 1 << 20

    # Histogram: 40 us lands in the 50 us bucket, not the 25 us one; 3 s in 5 s.
    def bucket(op, le):
        return s[("tierd_request_seconds_bucket", (("le", le), ("op", op)))]
    assert bucket("get", "2.5e-05") == 0
    assert bucket("get", "5e-05") == 1
    assert bucket("get", "2.5") == 1
    assert bucket("get", "5.0") == 2
    assert bucket("get", "+Inf") == 2
    assert s[("tierd_request_seconds_count", (("op", "get"),))] == 2
    assert REQUEST_BUCKETS[0] == 1e-05 and REQUEST_BUCKETS[-1] == 10.0

    # Gauges come from gauges_fn at scrape time.
    assert calls
    assert s[("tierd_dram_bytes", (("ns", "default"), ("state", "dirty")))] == 20
    assert s[("tierd_dram_bytes", (("ns", "cache"), ("state", "clean")))] == 7
    assert s[("tierd_nvme_bytes", (("state", "free"),))] == 3 << 20
    assert s[("tierd_flush_backlog_bytes", (("ns", "default"),))] == 20
    assert s[("tierd_leases", (("ns", "default"),))] == 2
    assert s[("tierd_clients", ())] == 3

    # ...so they are never stale: a changed snapshot shows on the next scrape,
    # and a namespace that disappears stops being reported.
    snapshot["clients"] = 5
    del snapshot["dram_bytes"]["cache"]
    s = _samples(_get(base + "/metrics")[2])
    assert s[("tierd_clients", ())] == 5
    assert ("tierd_dram_bytes", (("ns", "cache"), ("state", "clean"))) not in s


def test_not_found_elsewhere(served):
    _, base, _, _ = served
    for path in ("/", "/metrics/extra", "/favicon.ico"):
        status, _, body = _get(base + path)
        assert status == 404, path
        assert "/metrics" in body


def test_private_registry():
    a, b = Metrics(), Metrics()
    a.request("get", 0.001)
    assert b'tierd_requests_total{op="get"}' in a.render()
    assert b'tierd_requests_total{op="get"}' not in b.render()
    from prometheus_client import REGISTRY
    assert REGISTRY.get_sample_value("tierd_requests_total", {"op": "get"}) is None


def test_no_gauges_fn_and_bad_snapshot():
    text = Metrics().render().decode()
    assert "# TYPE tierd_clients gauge" in text
    assert "\ntierd_clients " not in text
    with pytest.raises(ValueError, match="unknown key 'dram'"):
        Metrics(gauges_fn=lambda: {"dram": {}}).render()
    with pytest.raises(ValueError, match="unknown state 'hot'"):
        Metrics(gauges_fn=lambda: {"dram_bytes": {"default": {"hot": 1}}}).render()
    with pytest.raises(ValueError, match="tier must be one of dram, nvme"):
        Metrics().hit("default", "disk", 1)


def test_broken_gauges_fn_is_500_not_silent():
    def gauges():
        raise RuntimeError("arena lock poisoned")
    m = Metrics(gauges_fn=gauges)
    host, port = m.start_http("localhost:0")
    try:
        status, _, body = _get(f"http://{host}:{port}/metrics")
        assert status == 500
        assert "arena lock poisoned" in body
    finally:
        m.stop()


@pytest.mark.parametrize("listen", ["0.0.0.0:9477", ":9477", "10.1.2.3:0", "[::]:9477",
                                    "[2001:db8::1]:9477"])
def test_non_loopback_refused(listen):
    m = Metrics()
    with pytest.raises(ValueError) as e:
        m.start_http(listen)
    assert str(e.value) == (f"metrics listen address {listen} is not loopback; "
                            "set metrics.allow_remote = true to expose it")


def test_allow_remote_binds():
    m = Metrics()
    host, port = m.start_http("0.0.0.0:0", allow_remote=True)
    try:
        assert host == "0.0.0.0" and port > 0
        assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 200
    finally:
        m.stop()


def _have_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6_loopback(), reason="no IPv6 loopback (::1) on this host")
def test_ipv6_loopback():
    m = Metrics()
    host, port = m.start_http("[::1]:0")
    try:
        assert host == "::1" and port > 0
        assert _get(f"http://[::1]:{port}/metrics")[0] == 200
    finally:
        m.stop()


def test_stop_frees_port_and_is_idempotent():
    m = Metrics()
    host, port = m.start_http("127.0.0.1:0")
    with pytest.raises(RuntimeError):
        m.start_http("127.0.0.1:0")
    m.stop()
    m.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2)


@pytest.mark.parametrize("listen,expected", [
    ("127.0.0.1:9477", ("127.0.0.1", 9477)),
    ("localhost:0", ("127.0.0.1", 0)),
    ("[::1]:9477", ("::1", 9477)),
    (":9477", ("", 9477)),
])
def test_parse_listen(listen, expected):
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["127.0.0.1", "::1:9477", "[::1]9477", "[127.0.0.1]:1",
                                    "host.example:9477", "127.0.0.1:70000", "127.0.0.1:-1",
                                    "127.0.0.1:http"])
def test_parse_listen_rejects(listen):
    with pytest.raises(ValueError, match="metrics listen address"):
        parse_listen(listen)


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.10") and is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("::")
