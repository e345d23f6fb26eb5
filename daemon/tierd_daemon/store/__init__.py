"""The NVMe object store: page-aligned extents in preallocated O_DIRECT data
files, an LMDB catalog, checksums on every read.

Public API (the daemon, the perf runner and the CLI use only this):

    store = Store.open(path, StoreConfig(capacity=..., engine="auto", ...))
    info  = store.put(ns, key, data)              # -> ObjectInfo, durable on return
    infos = store.put_many(ns, [(key, data), ...])  # one catalog transaction
    arr   = store.get(ns, key)                    # -> numpy uint8 array (page-aligned buffer)
    n     = store.get_into(ns, key, out)          # read into a caller's writable buffer
    arrs  = store.get_many(ns, keys)              # one engine batch
    store.delete(ns, key) / store.delete_many(ns, keys)
    store.stat(ns, key) -> ObjectInfo ; store.list(ns, prefix=b"") -> iterator of keys
    store.usage() -> StoreUsage ; store.fsck(verify_data=True) -> FsckReport
    store.close()

Keys are bytes (str is UTF-8 encoded). Namespaces are declared in the
StoreConfig; anything else raises UnknownNamespace.
"""
from tierd_daemon.store.config import NamespaceConfig, StoreConfig
from tierd_daemon.store.store import ObjectInfo, Store, StoreUsage
from tierd_daemon.store.fsck import FsckReport

__all__ = ["FsckReport", "NamespaceConfig", "ObjectInfo", "Store", "StoreConfig", "StoreUsage"]
