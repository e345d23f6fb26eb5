"""nvme_bytes: a namespace cannot use more of the store than its quota."""
from __future__ import annotations

import os

import pytest

from tierd.errors import StoreFull
from tierd_daemon.store import NamespaceConfig

MiB = 1 << 20


def test_quota_is_enforced_and_survives_reopen(make_store):
    ns = {"small": NamespaceConfig(nvme_bytes=2 * MiB), "big": NamespaceConfig()}
    s = make_store(namespaces=ns)
    s.put("small", "a", os.urandom(MiB))
    s.put("big", "x", os.urandom(4 * MiB))          # other namespaces are not limited by it
    with pytest.raises(StoreFull, match="'small' is at its NVMe quota.*nvme_bytes"):
        s.put("small", "b", os.urandom(MiB + 1))
    assert not s.contains("small", "b")
    s.put("small", "b", os.urandom(MiB))             # exactly at the quota is fine
    assert s.namespace_bytes("small") == 2 * MiB
    s.delete("small", "a")
    assert s.namespace_bytes("small") == MiB
    s.close()
    s = make_store(namespaces=ns)                     # derived again from the catalog
    assert s.namespace_bytes("small") == MiB and s.namespace_bytes("big") == 4 * MiB
    s.put("small", "c", os.urandom(MiB))
    with pytest.raises(StoreFull):
        s.put("small", "d", b"x")
