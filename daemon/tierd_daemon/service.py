"""`tierd serve`: the daemon process.

Start-up order: store (LMDB + data files) -> arenas (prefaulted, registered
with the store's rings) -> DRAM tier threads (flusher, lease reaper) ->
metrics on loopback -> the socket -> READY=1. Shutdown on SIGTERM/SIGINT:
STOPPING=1 -> stop accepting -> flush every dirty object to NVMe -> close
the store -> exit 0. A second signal during the flush exits at once (the
store's crash safety covers it: only staged, unacknowledged data is lost).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

from tierd.errors import InvalidArgument, TierdError
from tierd_daemon import sdnotify
from tierd_daemon.config import Config
from tierd_daemon.dram.tier import DramTier
from tierd_daemon.server.connection import handle
from tierd_daemon.server.listener import Listener, bind_socket
from tierd_daemon.store import Store
from tierd_daemon.store.config import NamespaceConfig, validate_namespace_name
from tierd_daemon.units import format_size, parse_size

log = logging.getLogger("tierd")

NS_META = "namespaces.json"   # namespaces created at run time (ns_create), kept across restarts


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = time.time()
        self._clients = 0
        self._lock = threading.Lock()
        self.namespaces: dict[str, NamespaceConfig] = dict(config.store.namespaces)
        self.namespaces.update(self._load_runtime_namespaces())
        from dataclasses import replace
        store_cfg = replace(config.store, namespaces=self.namespaces)
        os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
        self.store = Store.open(config.store_dir, store_cfg)
        self.page = self.store.page
        self.metrics = None
        try:
            self.tier = DramTier(self.store, self.namespaces, self.page,
                                 alloc_timeout_s=config.server.alloc_timeout_s,
                                 lease_timeout_s=config.server.lease_timeout_s,
                                 keep_warm=config.dram.keep_warm,
                                 keep_warm_interval_s=config.dram.keep_warm_interval_s)
        except BaseException:
            self.store.close()
            raise
        self.listener: Listener | None = None
        self.metrics_url: str | None = None

    # ---- namespaces created at run time ------------------------------------------------

    def _runtime_ns_path(self) -> str:
        return os.path.join(self.config.data_dir, NS_META)

    def _load_runtime_namespaces(self) -> dict[str, NamespaceConfig]:
        try:
            with open(self._runtime_ns_path()) as f:
                raw = json.load(f)
        except FileNotFoundError:
            return {}
        return {name: NamespaceConfig(**pol) for name, pol in raw.items()}

    def create_namespace(self, ns: str, policy: dict) -> None:
        validate_namespace_name(ns)
        if ns in self.namespaces:
            raise InvalidArgument(f"namespace {ns!r} exists already")
        pol = dict(policy)
        for key in ("dram_bytes", "nvme_bytes"):
            if key in pol:
                try:
                    pol[key] = parse_size(pol[key], key)
                except ValueError as e:
                    raise InvalidArgument(str(e)) from None
        pol.setdefault("dram_bytes", 64 << 20)
        try:
            cfg = NamespaceConfig(**pol)
        except TypeError as e:
            raise InvalidArgument(f"policy: {e}") from None
        with self._lock:
            self.tier.add_namespace(ns, cfg)
            self.namespaces[ns] = cfg
            self.store.config.namespaces[ns] = cfg
            runtime = self._load_runtime_namespaces()
            runtime[ns] = cfg
            tmp = self._runtime_ns_path() + ".tmp"
            with open(tmp, "w") as f:
                json.dump({n: {k: (list(v) if isinstance(v, tuple) else v)
                               for k, v in c.__dict__.items()} for n, c in runtime.items()}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._runtime_ns_path())
        log.info("namespace %r created at run time: %s", ns, cfg)

    def visible_namespaces(self, peer) -> list[str]:
        return sorted(n for n, c in self.namespaces.items()
                      if peer.is_admin or c.allows(peer.uid, peer.groups))

    # ---- bookkeeping for the server ----------------------------------------------------

    def clients_changed(self, delta: int) -> None:
        with self._lock:
            self._clients += delta

    def request_done(self, op: str, seconds: float, code: str | None) -> None:
        if self.metrics is not None:
            self.metrics.request(op, seconds, code)

    def status(self, peer=None) -> dict:
        u = self.store.usage()
        tiers = self.tier.status()
        visible = set(self.visible_namespaces(peer)) if peer is not None else set(tiers)
        return {
            "server": {"version": __import__("tierd").__version__, "pid": os.getpid(),
                       "uptime_s": round(time.time() - self.started, 1),
                       "socket": self.config.server.socket, "clients": self._clients,
                       "metrics": self.metrics_url},
            "store": {"path": self.store.path, "engine": u.engine,
                      "fixed_buffers": u.fixed_buffers, "page_size": u.page_size,
                      "capacity_bytes": u.capacity_bytes, "used_bytes": u.used_bytes,
                      "free_bytes": u.free_bytes, "objects": u.objects},
            "dram": self.tier.keep_warm_status(),
            "namespaces": {ns: dict(st, durable=self.namespaces[ns].durable,
                                    compression=self.namespaces[ns].compression,
                                    nvme_used=self.store.namespace_bytes(ns),
                                    nvme_quota=self.namespaces[ns].nvme_bytes or None)
                           for ns, st in tiers.items() if ns in visible},
        }

    def gauges(self) -> dict:
        st = self.tier.status()
        u = self.store.usage()
        return {
            "dram_bytes": {ns: {"dirty": s["dirty_bytes"], "clean": s["dram_used"] - s["dirty_bytes"],
                                "free": s["dram_free"]} for ns, s in st.items()},
            "nvme_bytes": {"used": u.used_bytes, "free": u.free_bytes},
            "flush_backlog_bytes": {ns: s["flush_backlog_bytes"] for ns, s in st.items()},
            "leases": {ns: s["leases"] for ns, s in st.items()},
            "clients": self._clients,
        }

    def _final_flush(self) -> dict:
        """Write back all dirty data; wait as long as write-back makes progress.

        Data that cannot be written (NVMe full, a namespace over its quota)
        would otherwise hold shutdown forever: after `stall_s` without
        progress, give up and say exactly what is lost. Returns {ns: bytes lost}.
        """
        stall_s = self.config.server.shutdown_stall_s
        last, since = -1, time.monotonic()
        while not self.tier.flush(timeout=1.0):
            st = self.tier.status()
            done = sum(s["flushed_bytes"] for s in st.values())
            if done != last:
                last, since = done, time.monotonic()
            elif time.monotonic() - since > stall_s:
                lost = {ns: s["dirty_bytes"] for ns, s in st.items() if s["dirty_bytes"]}
                log.error("shutdown: write-back made no progress for %.0f s; staged data NOT "
                          "persisted and lost: %s (the store is full or a namespace is over "
                          "its nvme_bytes quota)", stall_s,
                          ", ".join(f"{ns}: {format_size(n)}" for ns, n in lost.items()))
                return lost
        return {}

    def healthy(self) -> bool:
        """For the systemd watchdog: the threads that move data are alive."""
        return self.tier.flusher.is_alive() and self.tier.reaper.is_alive() and (
            self.listener is None or self.listener.thread.is_alive())

    # ---- run ---------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.config
        stop = threading.Event()
        signals = {"count": 0}

        def on_signal(signum, _frame):
            signals["count"] += 1
            if signals["count"] > 1:
                log.warning("second %s: exiting without flushing (staged data may be lost)",
                            signal.Signals(signum).name)
                os._exit(1)
            log.info("%s: shutting down", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.tier.start()
        if cfg.metrics.listen:
            from tierd_daemon.metrics import Metrics
            self.metrics = Metrics(gauges_fn=self.gauges)
            self.tier.metrics = self.metrics
            host, port = self.metrics.start_http(cfg.metrics.listen,
                                                 allow_remote=cfg.metrics.allow_remote)
            self.metrics_url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/metrics"
        sock = bind_socket(cfg.server.socket, cfg.server.socket_mode, cfg.server.socket_group)
        self.listener = Listener(sock, cfg.server.max_clients, lambda s: handle(self, s))
        self.listener.start()
        summary = (f"serving {len(self.namespaces)} namespaces on {cfg.server.socket}; store "
                   f"{format_size(self.store.usage().capacity_bytes)} "
                   f"({self.store.usage().engine})")
        log.info("tierd ready: %s", summary)
        sdnotify.ready(summary)
        watchdog = sdnotify.Watchdog(self.healthy)
        watchdog.start()
        rc = 0
        try:
            while not stop.wait(5.0):
                st = self.tier.status()
                dirty = sum(s["dirty_bytes"] for s in st.values())
                sdnotify.status(f"{self._clients} clients, {format_size(dirty)} dirty, "
                                f"{format_size(self.store.usage().used_bytes)} on NVMe")
        finally:
            sdnotify.stopping()
            self.listener.close()
            try:
                os.unlink(cfg.server.socket)
            except OSError:
                pass
            t0 = time.monotonic()
            sdnotify.status("flushing dirty data to NVMe")
            lost = self._final_flush()
            if lost:
                rc = 1
            else:
                log.info("flushed dirty data in %.2f s", time.monotonic() - t0)
            self.tier.stop()
            watchdog.stop()
            if self.metrics is not None:
                self.metrics.stop()
            self.store.close()
            log.info("tierd stopped")
        return rc


def serve(config: Config) -> int:
    try:
        d = Daemon(config)
    except TierdError as e:
        log.error("%s", e)
        return 1
    except OSError as e:
        # Unwritable data_dir, missing permissions, a full disk at start-up...
        where = f" ({e.filename})" if e.filename else ""
        log.error("cannot start: %s%s; check data_dir and [store] in %s", e.strerror or e,
                  where, config.source)
        return 1
    try:
        return d.run()
    except TierdError as e:       # e.g. the socket cannot be bound
        log.error("%s", e)
        d.tier.stop()
        d.store.close()
        return 1
