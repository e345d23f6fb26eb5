"""Fixtures shared by every test package.

Store and engine tests use O_DIRECT, so their files must be on a real disk
filesystem. pytest's tmp_path is used when it is one; otherwise
$TIERD_TEST_DIR, else a folder under the checkout; tmpfs is never used.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMPFS_MAGIC = 0x01021994


def _on_tmpfs(path: str) -> bool:
    from tierd_daemon.dio import probe_dio
    return probe_dio(path).fs_magic == TMPFS_MAGIC


@pytest.fixture
def disk_dir(tmp_path):
    """A fresh directory on a filesystem with O_DIRECT; removed afterwards."""
    if not _on_tmpfs(str(tmp_path)):
        yield tmp_path
        return
    base = os.environ.get("TIERD_TEST_DIR") or os.path.join(REPO, ".test-data")
    os.makedirs(base, exist_ok=True)
    d = tempfile.mkdtemp(dir=base)
    if _on_tmpfs(d):
        pytest.skip(f"{d} is on tmpfs (no O_DIRECT); set TIERD_TEST_DIR to a disk directory")
    yield __import__("pathlib").Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def python_env():
    """Environment for subprocesses that import tierd from this checkout."""
    env = dict(os.environ)
    paths = [os.path.join(REPO, p) for p in ("client", "daemon", "perf")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pytest_report_header(config):
    try:
        from tierd_daemon.engine import open_engine
        eng = open_engine("auto", 4)
        name = eng.name
        eng.close()
    except Exception as e:  # reported, not fatal: tests skip with reasons
        name = f"unavailable ({e})"
    return [f"tierd engine (auto): {name}; python {sys.version.split()[0]}"]
