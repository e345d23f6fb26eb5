"""tmpfs has no O_DIRECT: refuse it with a message that says what to do."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from tierd.errors import UnsupportedFilesystem
from tierd_daemon.dio import probe_dio
from tierd_daemon.store import Store, StoreConfig


def test_tmpfs_is_refused():
    if not os.path.isdir("/dev/shm") or probe_dio("/dev/shm").fs_magic != 0x01021994:
        pytest.skip("/dev/shm is not a tmpfs on this machine")
    d = tempfile.mkdtemp(dir="/dev/shm")
    try:
        with pytest.raises(UnsupportedFilesystem, match="tmpfs.*no O_DIRECT.*ext4"):
            Store.open(d, StoreConfig(capacity=16 << 20))
        # Nothing preallocated on the wrong filesystem.
        assert not any(n.startswith("data.") for n in os.listdir(d))
    finally:
        shutil.rmtree(d)
