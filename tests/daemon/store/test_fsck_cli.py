"""`tierd fsck` exits 0 on a clean store and non-zero on any inconsistency."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import lmdb
import pytest

from tierd.errors import TierdError

from tierd_daemon.store import Store, StoreConfig
from tierd_daemon.store.catalog import Record
from tierd_daemon.store.allocator import Extent

MiB = 1 << 20


def fsck(path, env, *extra):
    return subprocess.run([sys.executable, "-m", "tierd_daemon", "-q", "fsck", "--data-dir",
                           str(path), "--json", *extra], env=env, capture_output=True, text=True,
                          timeout=120)


def make(path, n=5):
    with Store.open(str(path), StoreConfig(capacity=16 * MiB)) as s:
        for i in range(n):
            s.put("default", f"k{i}", os.urandom(100_000 + i))


def test_clean_store(disk_dir, python_env):
    make(disk_dir / "s")
    r = fsck(disk_dir / "s", python_env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["ok"] and rep["objects"] == 5 and rep["verified"] == 5


def test_corrupt_data_fails(disk_dir, python_env):
    make(disk_dir / "s")
    with open(disk_dir / "s" / "data.000", "r+b") as f:
        f.write(b"garbage")
    r = fsck(disk_dir / "s", python_env)
    assert r.returncode == 1
    rep = json.loads(r.stdout)
    assert not rep["ok"] and any("checksum mismatch" in e for e in rep["errors"])


def _poke_catalog(path, mutate):
    env = lmdb.open(str(path / "catalog"), max_dbs=4, subdir=True)
    db = env.open_db(b"objects")
    with env.begin(write=True, db=db) as txn:
        mutate(txn)
    env.close()


def test_overlapping_extents_fail(disk_dir, python_env):
    make(disk_dir / "s")

    def dup(txn):
        raw = txn.get(b"default\0k0")
        txn.put(b"default\0clone", raw)
    _poke_catalog(disk_dir / "s", dup)
    # The store refuses to serve from an inconsistent catalog and says to run fsck...
    with pytest.raises(TierdError, match="run `tierd fsck`"):
        Store.open(str(disk_dir / "s"), StoreConfig(capacity=16 * MiB))
    # ...and fsck opens it read-only and names the problem.
    r = fsck(disk_dir / "s", python_env)
    assert r.returncode == 1, r.stderr
    rep = json.loads(r.stdout)
    assert any("claim the same pages" in e for e in rep["errors"])
    assert rep["verified"] == 6   # the data itself is still checked


def test_damaged_record_fails(disk_dir, python_env):
    make(disk_dir / "s")
    _poke_catalog(disk_dir / "s", lambda txn: txn.put(b"default\0k2", b"\x01\x02"))
    r = fsck(disk_dir / "s", python_env)
    assert r.returncode == 1
    assert any("damaged catalog record" in e for e in json.loads(r.stdout)["errors"])


def test_extent_outside_file_fails(disk_dir, python_env):
    make(disk_dir / "s")

    def bad(txn):
        rec = Record.unpack(txn.get(b"default\0k1"))
        moved = Record(rec.encoding, rec.logical_size, rec.stored_size, rec.checksum,
                       rec.mtime_ns, (Extent(0, 10**9, rec.extents[0].npages),))
        txn.put(b"default\0k1", moved.pack())
    _poke_catalog(disk_dir / "s", bad)
    r = fsck(disk_dir / "s", python_env)
    assert r.returncode == 1
    assert any("outside the data files" in e for e in json.loads(r.stdout)["errors"])
