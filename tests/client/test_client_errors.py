"""Errors arrive as the exception class for their wire code."""
import os

import pytest

import tierd


def test_not_found(daemon):
    with tierd.connect(daemon.socket) as c:
        with pytest.raises(tierd.NotFound, match="ghost"):
            c.get("default", "ghost")
        with pytest.raises(tierd.NotFound):
            c.delete("default", "ghost")
        with pytest.raises(tierd.NotFound):
            c.stat("default", "ghost")


def test_unknown_namespace(daemon):
    with tierd.connect(daemon.socket) as c:
        for call in (lambda: c.put("nope", "k", b"x"), lambda: c.get("nope", "k"),
                     lambda: c.contains("nope", "k"), lambda: list(c.list("nope")),
                     lambda: c.stat("nope", "k"), lambda: c.delete_many("nope", ["k"])):
            with pytest.raises((tierd.UnknownNamespace, tierd.PermissionDenied)) as ei:
                call()
            assert isinstance(ei.value, tierd.UnknownNamespace), ei.value


def test_bad_durability(daemon):
    with tierd.connect(daemon.socket) as c:
        with pytest.raises(tierd.InvalidArgument, match="durability"):
            c.put("default", "k", b"x", durability="eventually")
        # and the daemon itself refuses it on commit (the client checks first)
        c._arena("default", c._gen)
        (slot,) = c._call("alloc", {"ns": "default", "items": [[b"k", 1]]})
        with pytest.raises(tierd.InvalidArgument):
            c._call("commit", {"ns": "default", "tokens": [slot["token"]],
                               "durability": "eventually"})
        c._abort("default", [slot["token"]], c._gen)
        assert not c.contains("default", "k")


def test_bad_arguments_from_daemon(daemon):
    with tierd.connect(daemon.socket) as c:
        with pytest.raises(tierd.InvalidArgument):
            c._call("get", {"ns": "default", "keys": [b"k"], "bogus": 1})
        with pytest.raises(tierd.InvalidArgument):
            c._call("nonsense", {})
        assert c.contains("default", "k") is False   # the connection is still fine


def test_daemon_unavailable(tmp_path):
    path = "/tmp/tierd-test-no-daemon-%d.sock" % os.getpid()
    with pytest.raises(tierd.DaemonUnavailable, match="tierd serve"):
        tierd.connect(path, timeout=1)


def test_default_path_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("TIERD_SOCKET", str(tmp_path / "none.sock"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    from tierd.client import default_socket_candidates
    if any(os.path.exists(p) for p in default_socket_candidates()):
        pytest.skip("a tierd socket exists on this host")
    with pytest.raises(tierd.DaemonUnavailable) as ei:
        tierd.connect()
    assert str(tmp_path / "none.sock") in str(ei.value) and "systemctl start tierd" in str(ei.value)


def test_env_socket_used(daemon, monkeypatch):
    monkeypatch.setenv("TIERD_SOCKET", daemon.socket)
    with tierd.connect() as c:
        assert c.socket_path == daemon.socket
        assert "default" in c.namespaces


def test_failed_copy_aborts_allocation(daemon, monkeypatch):
    from tierd.arena import Arena
    with tierd.connect(daemon.socket) as c:
        c.put("cache", "warm", b"x")       # namespace open, baseline taken after
        before = c.status()["namespaces"]["cache"]["dram_used"]

        real_slice = Arena.slice

        def read_only(self, offset, size):
            # The copy into the arena then fails (ValueError: read-only).
            v = real_slice(self, offset, size)
            v.flags.writeable = False
            return v
        monkeypatch.setattr(Arena, "slice", read_only)
        with pytest.raises(ValueError, match="read-only"):
            c.put_many("cache", [(f"ab{i}", b"y" * 100_000) for i in range(10)])
        monkeypatch.undo()
        assert c.contains_many("cache", [f"ab{i}" for i in range(10)]) == [False] * 10
        assert c.status()["namespaces"]["cache"]["dram_used"] == before  # pages given back
