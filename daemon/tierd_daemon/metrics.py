"""Prometheus metrics for tierd, served over HTTP on loopback.

One :class:`Metrics` per daemon owns its own ``CollectorRegistry`` (never
prometheus_client's global one: tests and several daemons in one process must
not see each other's counters, and the default process/GC collectors are not
wanted on a storage daemon's page).

Counters and the latency histogram are updated by the daemon through plain
methods (:meth:`Metrics.request`, :meth:`Metrics.hit`, ...). Gauges are not
set by the daemon at all: at every scrape a collector calls ``gauges_fn()``
and reports exactly that snapshot, so a gauge can never be stale and a
namespace that disappears stops being reported.

``gauges_fn()`` returns a dict; every key is optional, an unknown key or
state is an error that names it::

    {
      "dram_bytes":          {ns: {"clean": n, "dirty": n, "free": n}},
      "nvme_bytes":          {"used": n, "free": n},
      "flush_backlog_bytes": {ns: n},
      "leases":              {ns: n},
      "clients":             n,
    }

Metrics (label values in braces):

- ``tierd_requests_total{op}``, ``tierd_errors_total{code}``
- ``tierd_bytes_written_total{ns,tier}``, ``tierd_bytes_read_total{ns,tier}``,
  ``tierd_hits_total{ns,tier}`` (tier = dram | nvme)
- ``tierd_misses_total{ns}``, ``tierd_evictions_total{ns}``,
  ``tierd_flushed_bytes_total{ns}``, ``tierd_dedup_bytes_total{ns}`` (committed
  with if_absent under a key that existed: not written again)
- ``tierd_dram_bytes{ns,state}`` (clean | dirty | free),
  ``tierd_nvme_bytes{state}`` (used | free), ``tierd_flush_backlog_bytes{ns}``,
  ``tierd_leases{ns}``, ``tierd_clients``
- ``tierd_request_seconds{op}``: histogram, buckets 10 us .. 10 s

The endpoint exposes per-namespace traffic, so it binds to loopback only
unless the operator says otherwise (``metrics.allow_remote = true``).
"""
from __future__ import annotations

import http.server
import ipaddress
import logging
import socket
import threading
from typing import Any, Callable, Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, \
    generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

__all__ = ["Metrics", "parse_listen", "is_loopback", "REQUEST_BUCKETS", "TIERS"]

TIERS = ("dram", "nvme")
DRAM_STATES = ("clean", "dirty", "free")
NVME_STATES = ("used", "free")

# 1-2.5-5 steps per decade from 10 us (a DRAM hit answered from the arena)
# to 10 s (a large durable put behind a full flush queue). +Inf is implied.
REQUEST_BUCKETS = tuple(m * 10.0 ** e for e in range(-5, 1) for m in (1.0, 2.5, 5.0)) + (10.0,)

GaugesFn = Callable[[], Mapping[str, Any]]


def _check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, not {tier!r}")
    return tier


class _GaugeCollector(Collector):
    """Builds the gauge families from a fresh gauges_fn() snapshot per scrape."""

    _KEYS = ("dram_bytes", "nvme_bytes", "flush_backlog_bytes", "leases", "clients")

    def __init__(self, gauges_fn: GaugesFn | None) -> None:
        self._fn = gauges_fn

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {
            "dram_bytes": GaugeMetricFamily(
                "tierd_dram_bytes", "Bytes of the DRAM tier by namespace and state "
                "(clean: on NVMe too, dirty: not yet flushed, free: unallocated)",
                labels=["ns", "state"]),
            "nvme_bytes": GaugeMetricFamily(
                "tierd_nvme_bytes", "Bytes of the NVMe store by state (used | free)",
                labels=["state"]),
            "flush_backlog_bytes": GaugeMetricFamily(
                "tierd_flush_backlog_bytes", "Dirty bytes waiting for the flusher",
                labels=["ns"]),
            "leases": GaugeMetricFamily(
                "tierd_leases", "Objects currently leased to clients", labels=["ns"]),
            "clients": GaugeMetricFamily(
                "tierd_clients", "Connected clients", labels=[]),
        }

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Without describe() the registry would call collect() (and so
        # gauges_fn) at registration time, before the daemon is up.
        return list(self._families().values())

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fams = self._families()
        snap = self._fn() if self._fn is not None else {}
        if not isinstance(snap, Mapping):
            raise TypeError(f"gauges_fn must return a dict, not {type(snap).__name__}")
        for key in snap:
            if key not in fams:
                raise ValueError(f"gauges_fn: unknown key {key!r} "
                                 f"(known: {', '.join(self._KEYS)})")
        for ns, states in snap.get("dram_bytes", {}).items():
            for state, value in states.items():
                if state not in DRAM_STATES:
                    raise ValueError(f"gauges_fn: dram_bytes[{ns!r}]: unknown state {state!r} "
                                     f"(known: {', '.join(DRAM_STATES)})")
                fams["dram_bytes"].add_metric([str(ns), state], float(value))
        for state, value in snap.get("nvme_bytes", {}).items():
            if state not in NVME_STATES:
                raise ValueError(f"gauges_fn: nvme_bytes: unknown state {state!r} "
                                 f"(known: {', '.join(NVME_STATES)})")
            fams["nvme_bytes"].add_metric([state], float(value))
        for key in ("flush_backlog_bytes", "leases"):
            for ns, value in snap.get(key, {}).items():
                fams[key].add_metric([str(ns)], float(value))
        if "clients" in snap:
            fams["clients"].add_metric([], float(snap["clients"]))
        return list(fams.values())


class Metrics:
    """tierd's counters, histogram and scrape-time gauges, on a private registry.

    All update methods are thread-safe (prometheus_client locks per child)
    and cheap enough for the request path.
    """

    def __init__(self, gauges_fn: GaugesFn | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter("tierd_requests", "Requests handled, by operation",
                                 ["op"], registry=r)
        self._errors = Counter("tierd_errors", "Requests that failed, by error code",
                               ["code"], registry=r)
        self._written = Counter("tierd_bytes_written", "Bytes written, by namespace and tier",
                                ["ns", "tier"], registry=r)
        self._read = Counter("tierd_bytes_read", "Bytes read, by namespace and tier",
                             ["ns", "tier"], registry=r)
        self._hits = Counter("tierd_hits", "Lookups served, by namespace and the tier that "
                             "held the object", ["ns", "tier"], registry=r)
        self._misses = Counter("tierd_misses", "Lookups of absent objects, by namespace",
                               ["ns"], registry=r)
        self._evictions = Counter("tierd_evictions", "Objects evicted from the DRAM tier",
                                  ["ns"], registry=r)
        self._flushed = Counter("tierd_flushed_bytes", "Bytes flushed from DRAM to NVMe",
                                ["ns"], registry=r)
        self._dedup = Counter("tierd_dedup_bytes", "Bytes committed under a key that already "
                              "existed (if_absent), so not written again", ["ns"], registry=r)
        self._latency = Histogram("tierd_request_seconds", "Request latency in seconds, by "
                                  "operation", ["op"], buckets=REQUEST_BUCKETS, registry=r)
        r.register(_GaugeCollector(gauges_fn))
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ---- updates (called by the daemon) --------------------------------

    def request(self, op: str, seconds: float, error_code: str | None = None) -> None:
        """One finished request: count it, observe its latency, and count
        its error code when it failed."""
        self._requests.labels(op=op).inc()
        self._latency.labels(op=op).observe(seconds)
        if error_code is not None:
            self._errors.labels(code=str(error_code)).inc()

    def error(self, code: str) -> None:
        """An error outside a request (e.g. a flusher I/O error)."""
        self._errors.labels(code=str(code)).inc()

    def hit(self, ns: str, tier: str, nbytes: int = 0) -> None:
        """A lookup served from `tier`; counts the hit and its bytes read."""
        _check_tier(tier)
        self._hits.labels(ns=ns, tier=tier).inc()
        if nbytes:
            self._read.labels(ns=ns, tier=tier).inc(nbytes)

    def miss(self, ns: str) -> None:
        self._misses.labels(ns=ns).inc()

    def read(self, ns: str, tier: str, nbytes: int) -> None:
        """Bytes read that are not a client hit (hit() already counts those)."""
        self._read.labels(ns=ns, tier=_check_tier(tier)).inc(nbytes)

    def written(self, ns: str, tier: str, nbytes: int) -> None:
        """Bytes written to a tier (a COMMIT into DRAM, a write to NVMe)."""
        self._written.labels(ns=ns, tier=_check_tier(tier)).inc(nbytes)

    def evicted(self, ns: str, count: int = 1) -> None:
        self._evictions.labels(ns=ns).inc(count)

    def flushed(self, ns: str, nbytes: int) -> None:
        """Dirty bytes made clean by the flusher (after the catalog commit)."""
        self._flushed.labels(ns=ns).inc(nbytes)

    def deduplicated(self, ns: str, nbytes: int) -> None:
        """Bytes a commit with if_absent dropped because their key existed."""
        self._dedup.labels(ns=ns).inc(nbytes)

    # ---- exposition ----------------------------------------------------

    def render(self) -> bytes:
        """The text exposition format, as served at /metrics."""
        return generate_latest(self.registry)

    def start_http(self, listen: str, *, allow_remote: bool = False) -> tuple[str, int]:
        """Serve /metrics on `listen` ("127.0.0.1:9477", "[::1]:9477",
        "localhost:0") from a daemon thread; returns the bound (host, port),
        so port 0 reports the port the kernel chose.

        A non-loopback address (including an empty host, i.e. all
        interfaces) raises ValueError unless allow_remote is True.
        """
        host, port = parse_listen(listen)
        if not allow_remote and not is_loopback(host):
            raise ValueError(f"metrics listen address {listen} is not loopback; "
                             "set metrics.allow_remote = true to expose it")
        with self._lock:
            if self._server is not None:
                raise RuntimeError("metrics HTTP server already started")
            bind_host = host or "0.0.0.0"
            family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
            server = _Server((bind_host, port), _handler_for(self), family)
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever,
                                            kwargs={"poll_interval": 0.2},
                                            name="tierd-metrics", daemon=True)
            self._thread.start()
            real_host, real_port = server.server_address[:2]
        log.info("metrics on http://%s/metrics", _join(real_host, real_port))
        return real_host, real_port

    def stop(self) -> None:
        """Stop the HTTP server (idempotent); counters are kept."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5)


# ---- listen address ------------------------------------------------------

def parse_listen(listen: str) -> tuple[str, int]:
    """"HOST:PORT" -> (host, port). IPv6 hosts go in brackets ("[::1]:9477");
    "localhost" means 127.0.0.1; an empty host (":9477") means all
    interfaces and is returned as "". Anything else must be an IP literal
    (no DNS at start-up). Raises ValueError naming what is wrong."""
    s = str(listen).strip()
    if s.startswith("["):
        end = s.find("]")
        if end < 0 or not s[end + 1:].startswith(":"):
            raise ValueError(f"metrics listen address {listen!r}: expected [IPv6]:PORT")
        host, port_s = s[1:end], s[end + 2:]
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError(f"metrics listen address {listen!r}: {host!r} is not an IPv6 "
                             "address") from None
    else:
        host, sep, port_s = s.rpartition(":")
        if not sep:
            raise ValueError(f"metrics listen address {listen!r}: expected HOST:PORT")
        if ":" in host:
            raise ValueError(f"metrics listen address {listen!r}: put an IPv6 address in "
                             "brackets, e.g. [::1]:9477")
        if host == "localhost":
            host = "127.0.0.1"
        elif host:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"metrics listen address {listen!r}: {host!r} is not an IP "
                                 "address (use 127.0.0.1, [::1] or localhost)") from None
    if not port_s.isdigit() or int(port_s) > 65535:
        raise ValueError(f"metrics listen address {listen!r}: port {port_s!r} is not 0..65535")
    return host, int(port_s)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ::ffff:127.x; False for "" (all
    interfaces) and any other address."""
    if not host:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---- HTTP ------------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a stuck scraper never blocks shutdown

    def __init__(self, addr: tuple[str, int], handler: type, family: int) -> None:
        self.address_family = family
        super().__init__(addr, handler)


def _handler_for(metrics: Metrics) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "tierd-metrics"
        protocol_version = "HTTP/1.0"

        def _reply(self, code: int, body: bytes, ctype: str, head: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _serve(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path != "/metrics":
                self._reply(404, b"not found; metrics are at /metrics\n",
                            "text/plain; charset=utf-8", head)
                return
            try:
                body = metrics.render()
            except Exception as e:  # noqa: BLE001 - a broken gauges_fn must be visible
                log.exception("metrics scrape failed")
                self._reply(500, f"metrics scrape failed: {e}\n".encode(),
                            "text/plain; charset=utf-8", head)
                return
            self._reply(200, body, CONTENT_TYPE_LATEST, head)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(head=True)

        def log_message(self, fmt: str, *args: Any) -> None:
            # Scrapes every few seconds would flood stderr (the journal).
            log.debug("metrics %s: " + fmt, self.address_string(), *args)

    return Handler
