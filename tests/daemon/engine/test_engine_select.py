"""open_engine(): kind validation, auto selection, and when auto falls back."""
import errno
import logging

import pytest

from tierd_daemon import engine as engine_mod
from tierd_daemon.engine import ENGINE_KINDS, ThreadPoolEngine, open_engine


def test_invalid_kind_raises_valueerror():
    with pytest.raises(ValueError) as ei:
        open_engine("aio")
    for k in ENGINE_KINDS:
        assert k in str(ei.value)


def test_auto_selects_io_uring_here(need_uring, caplog):
    with caplog.at_level(logging.WARNING, logger="tierd.engine"):
        with open_engine("auto", 16) as eng:
            assert eng.name == "io_uring"
            assert eng.queue_depth == 16
    assert not caplog.records


def test_io_uring_available_or_skip(need_uring):
    """Skips (with the reason) rather than fails on hosts without io_uring."""
    with open_engine("io_uring", 4) as eng:
        assert eng.name == "io_uring"


def test_threadpool_explicit():
    with open_engine("threadpool", 200) as eng:
        assert isinstance(eng, ThreadPoolEngine)
        assert eng.queue_depth == 200


def _fake_ring_error(monkeypatch, err):
    import tierd_daemon.engine.uring as uring

    def fail(*a, **k):
        raise OSError(err, "simulated")
    monkeypatch.setattr(uring, "UringEngine", fail)


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP])
def test_auto_falls_back_once_when_unavailable(monkeypatch, caplog, err):
    _fake_ring_error(monkeypatch, err)
    with caplog.at_level(logging.WARNING, logger="tierd.engine"):
        with open_engine("auto") as eng:
            assert eng.name == "threadpool"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert "io_uring unavailable" in msg and errno.errorcode[err] in msg and "threadpool" in msg
    with pytest.raises(OSError):
        open_engine("io_uring")  # explicit: never falls back


@pytest.mark.parametrize("err", [errno.ENOMEM, errno.EINVAL])
def test_auto_raises_real_errors(monkeypatch, err):
    _fake_ring_error(monkeypatch, err)
    with pytest.raises(OSError) as ei:
        open_engine("auto")
    assert ei.value.errno == err


def test_auto_falls_back_without_native_module(monkeypatch, caplog):
    import sys
    monkeypatch.delitem(sys.modules, "tierd_daemon.engine.uring", raising=False)
    monkeypatch.setitem(sys.modules, "tierd_daemon._native", None)  # import fails
    with caplog.at_level(logging.WARNING, logger="tierd.engine"):
        with open_engine("auto") as eng:
            assert eng.name == "threadpool"
    assert len(caplog.records) == 1 and "native module" in caplog.records[0].getMessage()
    with pytest.raises(ImportError):
        open_engine("io_uring")


def test_exports():
    for name in ("Engine", "OP_READ", "OP_WRITE", "OP_FSYNC", "OP_DTYPE", "make_ops", "raise_for_results"):
        assert hasattr(engine_mod, name)
