"""A real store on a real disk, closed after the test."""
from __future__ import annotations

import pytest

from tierd_daemon.store import NamespaceConfig, Store, StoreConfig

MiB = 1 << 20

NAMESPACES = {
    "default": NamespaceConfig(durable=True),
    "cache": NamespaceConfig(durable=False),
    "packed": NamespaceConfig(compression="zstd"),
}


@pytest.fixture
def make_store(disk_dir):
    """make_store(**StoreConfig overrides) -> open Store in disk_dir/store."""
    opened = []

    def make(path=None, **overrides):
        kw = dict(capacity=64 * MiB, staging_bytes=4 * MiB, namespaces=NAMESPACES)
        kw.update(overrides)
        s = Store.open(str(path or disk_dir / "store"), StoreConfig(**kw))
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store):
    return make_store()
