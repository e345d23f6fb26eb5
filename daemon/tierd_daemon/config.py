"""tierd configuration: TOML file, or a built-in default that needs no file.

Where the file comes from: `--config PATH`, else $TIERD_CONFIG, else the
built-in default (data under ~/.local/share/tierd, or $XDG_DATA_HOME/tierd).
Unknown keys and bad values are errors that name the key: a typo must never
turn into a silent default.
"""
from __future__ import annotations

import os
import shutil
import tomllib
from dataclasses import dataclass, fields, replace

from tierd.errors import InvalidArgument
from tierd_daemon.dram import keepwarm
from tierd_daemon.store.config import NamespaceConfig, StoreConfig
from tierd_daemon.units import parse_size

GiB = 1 << 30
MiB = 1 << 20

_SIZE_KEYS = {"capacity", "file_size", "max_io_bytes", "staging_bytes", "max_object_bytes",
              "catalog_map_size"}


class ConfigError(InvalidArgument):
    pass


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "share")
    return os.path.join(base, "tierd")


def default_capacity(data_dir: str) -> int:
    """A laptop-friendly default: 10% of the free disk, between 256 MiB and 4 GiB.

    The store preallocates its capacity, so the default must not grab a
    shared disk; production sets store.capacity explicitly. The store's own
    data files count as free, so the default does not drift (and warn) as
    the store fills its own preallocation.
    """
    probe = data_dir
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "/"
    free = shutil.disk_usage(probe).free
    store_dir = os.path.join(data_dir, "store")
    if os.path.isdir(store_dir):
        free += sum(e.stat().st_size for e in os.scandir(store_dir)
                    if e.name.startswith("data.") and e.is_file())
    cap = min(max(free // 10, 256 * MiB), 4 * GiB)
    return cap // MiB * MiB


def default_socket() -> str:
    """$XDG_RUNTIME_DIR/tierd/tierd.sock, else /tmp/tierd-$UID/tierd.sock.

    The systemd unit sets [server] socket = /run/tierd/tierd.sock.
    """
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run:
        return os.path.join(run, "tierd", "tierd.sock")
    return os.path.join("/tmp", f"tierd-{os.getuid()}", "tierd.sock")


def default_dram_share() -> int:
    """DRAM for all namespaces together: 1/8 of available memory, 64 MiB..2 GiB.

    The arena is prefaulted at start (a full tier must be an allocation
    error, never a SIGBUS), so the default stays modest; hosts set
    dram_bytes per namespace.
    """
    try:
        import psutil
        avail = psutil.virtual_memory().available
    except Exception:  # psutil missing or /proc unreadable: be small
        avail = 1 << 30
    return min(max(avail // 8, 64 * MiB), 2 * GiB) // MiB * MiB


@dataclass(frozen=True)
class ServerConfig:
    socket: str = ""                 # "" -> default_socket()
    socket_mode: int = 0o660
    socket_group: str = ""           # group name or number; "" -> the daemon's group
    max_clients: int = 256
    max_frame: int = 1 * MiB
    lease_timeout_s: float = 300.0   # a lease not released by then is dropped
    alloc_timeout_s: float = 10.0    # backpressure wait before TierFull
    shutdown_stall_s: float = 15.0   # on SIGTERM, give up write-back after this long without progress


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9477"   # "" disables; loopback only unless allow_remote
    allow_remote: bool = False


@dataclass(frozen=True)
class DramConfig:
    # Under a hypervisor idle guest memory may be reclaimed by the host and be
    # slow to write again; "auto" reads a byte of every arena page each
    # keep_warm_interval_s there, and not on bare metal (dram/keepwarm.py).
    keep_warm: str = "auto"          # "auto" | "on" | "off"
    keep_warm_interval_s: float = 5.0


@dataclass(frozen=True)
class Config:
    data_dir: str
    store: StoreConfig
    source: str = "built-in default"
    log_level: str = "info"
    server: ServerConfig = ServerConfig()
    metrics: MetricsConfig = MetricsConfig()
    dram: DramConfig = DramConfig()

    @property
    def store_dir(self) -> str:
        return os.path.join(self.data_dir, "store")


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")


def _section(doc: dict, name: str, cls, source: str, sizes=(), modes=()):
    tbl = dict(doc.get(name, {}))
    _check_keys(tbl, {f.name for f in fields(cls)}, f"{source} [{name}]")
    kw = {}
    for key, value in tbl.items():
        try:
            if key in sizes:
                value = parse_size(value, f"{name}.{key}")
            elif key in modes:
                value = int(value, 8) if isinstance(value, str) else int(value)
        except ValueError as e:
            raise ConfigError(f"{source}: {name}.{key}: {e}") from None
        want = type(getattr(cls(), key))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"{source}: {name}.{key}: expected {want.__name__}, got {value!r}")
        kw[key] = value
    return cls(**kw)


def from_dict(doc: dict, source: str) -> Config:
    _check_keys(doc, {"data_dir", "log_level", "store", "namespaces", "server", "metrics", "dram"},
                source)
    data_dir = os.path.expanduser(str(doc.get("data_dir") or default_data_dir()))
    log_level = str(doc.get("log_level", "info")).lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{source}: log_level: {log_level!r} is not one of debug, info, "
                          "warning, error")

    store_tbl = dict(doc.get("store", {}))
    store_fields = {f.name for f in fields(StoreConfig)} - {"namespaces"}
    _check_keys(store_tbl, store_fields, f"{source} [store]")
    kwargs = {}
    for key, value in store_tbl.items():
        try:
            kwargs[key] = parse_size(value, f"store.{key}") if key in _SIZE_KEYS else value
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
    kwargs.setdefault("capacity", default_capacity(data_dir))

    server = _section(doc, "server", ServerConfig, source, sizes={"max_frame"},
                      modes={"socket_mode"})
    if server.max_clients < 1 or server.max_frame < 4096 or server.lease_timeout_s <= 0 \
            or server.alloc_timeout_s < 0:
        raise ConfigError(f"{source}: [server] max_clients >= 1, max_frame >= 4KiB, "
                          "lease_timeout_s > 0 and alloc_timeout_s >= 0 are required")
    metrics = _section(doc, "metrics", MetricsConfig, source)
    dram = _section(doc, "dram", DramConfig, source)
    if dram.keep_warm not in keepwarm.MODES:
        raise ConfigError(f"{source}: dram.keep_warm: {dram.keep_warm!r} is not one of "
                          + ", ".join(f'"{m}"' for m in keepwarm.MODES))
    if not dram.keep_warm_interval_s > 0:
        raise ConfigError(f"{source}: dram.keep_warm_interval_s: expected seconds > 0, got "
                          f"{dram.keep_warm_interval_s!r}")

    ns_tbl = doc.get("namespaces")
    share = None
    if ns_tbl is None:
        share = default_dram_share()
        namespaces = {"default": NamespaceConfig(durable=True, dram_bytes=share * 3 // 4),
                      "cache": NamespaceConfig(durable=False, dram_bytes=share // 4)}
    else:
        namespaces = {}
        ns_fields = {f.name for f in fields(NamespaceConfig)}
        for name, tbl in ns_tbl.items():
            if not isinstance(tbl, dict):
                raise ConfigError(f"{source}: [namespaces.{name}] must be a table")
            _check_keys(tbl, ns_fields, f"{source} [namespaces.{name}]")
            tbl = dict(tbl)
            try:
                for key in ("dram_bytes", "nvme_bytes"):
                    if key in tbl:
                        tbl[key] = parse_size(tbl[key], f"namespaces.{name}.{key}")
                namespaces[name] = NamespaceConfig(**tbl)
            except (InvalidArgument, TypeError, ValueError) as e:
                raise ConfigError(f"{source}: namespaces.{name}.{e}") from None
        unsized = [n for n, c in namespaces.items() if not c.dram_bytes]
        if unsized:
            share = default_dram_share() // max(len(namespaces), 1)
            for n in unsized:
                namespaces[n] = replace(namespaces[n], dram_bytes=max(share, 16 * MiB))
    try:
        store = StoreConfig(namespaces=namespaces, **kwargs)
    except InvalidArgument as e:
        raise ConfigError(f"{source}: store.{e}") from None
    return Config(data_dir=data_dir, store=store, source=source, log_level=log_level,
                  server=replace(server, socket=os.path.expanduser(server.socket)
                                 if server.socket else default_socket()),
                  metrics=metrics, dram=dram)


def load(path: str | None = None) -> Config:
    """Load --config PATH, else $TIERD_CONFIG, else the built-in default."""
    path = path or os.environ.get("TIERD_CONFIG") or None
    if path is None:
        return from_dict({}, "built-in default")
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return from_dict(doc, path)
