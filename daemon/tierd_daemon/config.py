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
from dataclasses import dataclass, field, fields

from tierd.errors import InvalidArgument
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


@dataclass(frozen=True)
class Config:
    data_dir: str
    store: StoreConfig
    source: str = "built-in default"
    log_level: str = "info"

    @property
    def store_dir(self) -> str:
        return os.path.join(self.data_dir, "store")


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")


def from_dict(doc: dict, source: str) -> Config:
    _check_keys(doc, {"data_dir", "log_level", "store", "namespaces"}, source)
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

    ns_tbl = doc.get("namespaces")
    if ns_tbl is None:
        namespaces = {"default": NamespaceConfig(durable=True),
                      "cache": NamespaceConfig(durable=False)}
    else:
        namespaces = {}
        ns_fields = {f.name for f in fields(NamespaceConfig)}
        for name, tbl in ns_tbl.items():
            if not isinstance(tbl, dict):
                raise ConfigError(f"{source}: [namespaces.{name}] must be a table")
            _check_keys(tbl, ns_fields, f"{source} [namespaces.{name}]")
            try:
                namespaces[name] = NamespaceConfig(**tbl)
            except (InvalidArgument, TypeError) as e:
                raise ConfigError(f"{source}: namespaces.{name}.{e}") from None
    try:
        store = StoreConfig(namespaces=namespaces, **kwargs)
    except InvalidArgument as e:
        raise ConfigError(f"{source}: store.{e}") from None
    return Config(data_dir=data_dir, store=store, source=source, log_level=log_level)


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
