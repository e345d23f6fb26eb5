"""Fixtures for the engine tests: every engine test runs on both engines.

Files live under pytest's tmp_path (a real disk here: ext4 on /tmp), never
tmpfs, because the tests use O_DIRECT.
"""
from __future__ import annotations

import errno
import os

import pytest

from tierd_daemon.engine import open_engine

ENGINE_KINDS = ["io_uring", "threadpool"]


@pytest.fixture(scope="session")
def uring_unavailable() -> str | None:
    """None if io_uring works here, else the reason (checked once)."""
    try:
        from tierd_daemon.engine.uring import UringEngine
    except ImportError as e:
        return f"native module not importable: {e}"
    try:
        UringEngine(4).close()
    except OSError as e:
        return f"io_uring unavailable: {errno.errorcode.get(e.errno, e.errno)} {e.strerror}"
    return None


@pytest.fixture
def need_uring(uring_unavailable):
    if uring_unavailable:
        pytest.skip(uring_unavailable)


@pytest.fixture(params=ENGINE_KINDS)
def kind(request, uring_unavailable) -> str:
    if request.param == "io_uring" and uring_unavailable:
        pytest.skip(uring_unavailable)
    return request.param


@pytest.fixture
def make_engine(kind):
    """make_engine(queue_depth=8) -> engine of the parametrized kind; closed after."""
    made = []

    def make(queue_depth: int = 8):
        eng = open_engine(kind, queue_depth)
        assert eng.name == kind
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.close()


@pytest.fixture
def open_file(tmp_path):
    """open_file(name, flags=O_RDWR|O_CREAT|O_DIRECT) -> fd under tmp_path; closed after."""
    fds = []

    def opener(name: str = "data", flags: int = os.O_RDWR | os.O_CREAT | os.O_DIRECT) -> int:
        fd = os.open(tmp_path / name, flags | os.O_CLOEXEC, 0o600)
        fds.append(fd)
        return fd

    yield opener
    for fd in fds:
        os.close(fd)


@pytest.fixture(autouse=True)
def _fresh_fallback_warnings():
    """open_engine says a fallback once per process; each test is a fresh start."""
    import tierd_daemon.engine as engine_mod
    engine_mod._warned.clear()
    yield
    engine_mod._warned.clear()
