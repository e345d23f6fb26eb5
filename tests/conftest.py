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
    """A fresh directory on a filesystem with O_DIRECT; removed afterwards.

    Removed even when it is pytest's tmp_path: stores preallocate their
    capacity, and the disk is shared, so nothing is left behind.
    """
    if not _on_tmpfs(str(tmp_path)):
        yield tmp_path
        shutil.rmtree(tmp_path, ignore_errors=True)
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


# ---- a real daemon process ---------------------------------------------------------

DAEMON_TOML = """\
data_dir = "{data_dir}"
log_level = "debug"

[server]
socket = "{socket}"
lease_timeout_s = {lease_timeout}
alloc_timeout_s = {alloc_timeout}
{server_extra}

[metrics]
listen = "{metrics}"

[store]
capacity = "{capacity}"
staging_bytes = "4MiB"

[namespaces.default]
durable = true
dram_bytes = "{dram}"

[namespaces.cache]
durable = false
dram_bytes = "{cache_dram}"
{extra}
"""


class DaemonProc:
    """`tierd serve` in a subprocess: real socket, real arenas, real store."""

    def __init__(self, config_path: str, socket: str, env: dict, log_path: str) -> None:
        self.config_path, self.socket, self.env, self.log_path = config_path, socket, env, log_path
        self.proc = None

    def start(self, timeout: float = 60.0) -> "DaemonProc":
        import subprocess
        import time
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tierd_daemon", "serve", "--config",
                                      self.config_path], env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tierd serve exited with {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(self.socket) and self._answers():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"tierd serve did not answer within {timeout}s:\n{self.log()}")

    def _answers(self) -> bool:
        import socket as socketmod
        s = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-20000:]

    def stop(self, sig=None, timeout: float = 60.0) -> int:
        import signal
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig or signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self._log.close()
        return rc

    def kill(self) -> None:
        import signal
        self.stop(signal.SIGKILL)


@pytest.fixture
def daemon_factory(disk_dir, python_env):
    """daemon_factory(**fields) -> a started DaemonProc; stopped after the test.

    fields fill DAEMON_TOML: dram, cache_dram, capacity, lease_timeout,
    alloc_timeout, metrics ("" = off), extra (more TOML, e.g. namespaces),
    server_extra (more [server] keys), socket (path).
    """
    started = []
    sockdir = tempfile.mkdtemp(prefix="td-", dir="/tmp")  # AF_UNIX paths max 108 bytes

    def make(start: bool = True, **fields) -> DaemonProc:
        vals = dict(data_dir=str(disk_dir / "data"), socket=os.path.join(sockdir, f"s{len(started)}"),
                    dram="64MiB", cache_dram="32MiB", capacity="160MiB", lease_timeout=300,
                    alloc_timeout=5, metrics="", extra="", server_extra="")
        vals.update(fields)
        cfg = disk_dir / f"tierd{len(started)}.toml"
        cfg.write_text(DAEMON_TOML.format(**vals))
        d = DaemonProc(str(cfg), vals["socket"], python_env, str(disk_dir / f"daemon{len(started)}.log"))
        started.append(d)
        return d.start() if start else d

    yield make
    for d in started:
        try:
            d.stop()
        except Exception:
            d.kill()
    shutil.rmtree(sockdir, ignore_errors=True)


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory()
