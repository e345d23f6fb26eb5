"""The client's own logic (buffers, batching, frames, leases, reconnect,
version check, abort on failure), each against the real daemon."""
from __future__ import annotations

import os

import numpy as np
import pytest

import tierd
from tierd import protocol
from tierd.arena import as_bytes_array
from tierd.client import default_socket_candidates, resolve_socket


def test_as_bytes_array_accepts_buffers_without_copy():
    b = b"abc"
    assert as_bytes_array(b).tobytes() == b
    ba = bytearray(b"xyz")
    v = as_bytes_array(ba)
    ba[0] = ord("Q")
    assert v.tobytes() == b"Qyz"  # a view, not a copy
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    v = as_bytes_array(a)
    assert v.dtype == np.uint8 and v.size == 48 and np.shares_memory(v, a)
    assert as_bytes_array(memoryview(a)).tobytes() == a.tobytes()
    assert as_bytes_array(np.empty((0, 3), np.int32)).size == 0
    assert as_bytes_array(np.float32(1.5)).tobytes() == np.float32(1.5).tobytes()


@pytest.mark.parametrize("bad", [np.arange(10)[::2], memoryview(b"abcdef")[::2],
                                 np.array([object()]), "text", 5])
def test_as_bytes_array_rejects(bad):
    with pytest.raises(tierd.InvalidArgument):
        as_bytes_array(bad)


def test_socket_candidates_and_unavailable(monkeypatch, sockdir):
    monkeypatch.setenv("TIERD_SOCKET", os.path.join(sockdir, "env.sock"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", os.path.join(sockdir, "run"))
    c = default_socket_candidates()
    assert c[0] == os.path.join(sockdir, "env.sock")
    assert c[1] == os.path.join(sockdir, "run", "tierd", "tierd.sock")
    assert c[2] == f"/tmp/tierd-{os.getuid()}/tierd.sock" and c[3] == "/run/tierd/tierd.sock"
    if not any(os.path.exists(p) for p in c):
        with pytest.raises(tierd.DaemonUnavailable, match="tierd serve"):
            resolve_socket()
    open(c[0], "w").close()
    assert resolve_socket() == c[0]
    assert resolve_socket("/explicit") == "/explicit"


def _leases(c, ns="default"):
    return c.status()["namespaces"][ns]["leases"]


def test_round_trip_and_batches(daemon):
    with tierd.connect(daemon.socket) as c:
        assert c.namespaces == ["cache", "default"]
        c.put("default", "a", b"hello")
        with c.get("default", "a") as ls:
            assert ls.tobytes() == b"hello" and not ls.array.flags.writeable
        assert ls.released
        with pytest.raises(tierd.LeaseExpired):
            ls.array
        # More items than one request may carry (the daemon refuses more than
        # MAX_BATCH): the client must split them.
        n = protocol.MAX_BATCH + 904
        items = {f"k{i:05d}".encode(): np.full(10, i, np.uint16) for i in range(n)}
        c.put_many("default", items)
        leases = c.get_many("default", list(items))
        assert all(np.array_equal(ls.array.view(np.uint16), items[ls.key]) for ls in leases)
        for ls in leases:
            ls.release()
        assert sum(1 for _ in c.list("default", prefix=b"k", page=700)) == n
        with pytest.raises(tierd.NotFound, match="nope"):
            c.get_many("default", ["a", "nope"])
        assert _leases(c) == 0  # the lease taken for "a" was given back
        assert c.delete_many("default", ["a", "zz"]) == [True, False]
        with pytest.raises(tierd.NotFound):
            c.delete("default", "a")
        with pytest.raises(tierd.UnknownNamespace):
            c.put("nope", "k", b"x")
        with pytest.raises(tierd.InvalidArgument):
            c.put("default", "k", b"x", durability="eventually")
        assert c.prefetch("default", ["k00001"]).result(5) == ["dram"]
        with pytest.raises(tierd.NotFound):
            c.prefetch("default", ["missing"]).result(5)


def test_frames_split_under_max_frame(daemon_factory):
    # A frame over max_frame makes the daemon close the connection, so this
    # only passes if the client keeps every request under the negotiated size.
    d = daemon_factory(server_extra='max_frame = "8KiB"')
    with tierd.connect(d.socket, reconnect=False) as c:
        keys = [b"x" * 200 + str(i).encode() for i in range(300)]
        c.put_many("cache", [(k, b"v") for k in keys])
        assert c.contains_many("cache", keys) == [True] * 300
        assert len(c.get_many("cache", keys)) == 300


def test_orphaned_lease_released_on_next_request(daemon):
    with tierd.connect(daemon.socket) as c:
        c.put("cache", "k", b"v")
        ls = c.get("cache", "k")
        assert _leases(c, "cache") == 1
        del ls
        c.contains("cache", "k")
        assert _leases(c, "cache") == 0


def test_reconnect_after_restart(daemon):
    c = tierd.connect(daemon.socket, timeout=30)
    c.put("default", "k", b"v1", durability="persisted")
    old = c.get("default", "k")
    daemon.stop()
    daemon.start()
    assert c.contains("default", "k")        # transparently reconnected
    assert old.tobytes() == b"v1"            # old mapping still readable
    old.release()                            # lease of a dead connection: no-op
    c.close()
    daemon.stop()
    with pytest.raises(tierd.DaemonUnavailable):
        tierd.connect(daemon.socket, timeout=0.3)


def test_no_reconnect_raises_unavailable(daemon):
    c = tierd.connect(daemon.socket, timeout=2, reconnect=False)
    daemon.stop()
    with pytest.raises(tierd.DaemonUnavailable):
        c.contains("cache", "k")


def test_version_mismatch(daemon, monkeypatch):
    # A client from the future: the real daemon must refuse it clearly.
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", 99)
    with pytest.raises(tierd.ProtocolError, match="version"):
        tierd.connect(daemon.socket, reconnect=False)


def test_silent_daemon_times_out(sockdir):
    import socket
    import threading
    path = os.path.join(sockdir, "silent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(srv.accept()), daemon=True).start()
    try:
        with pytest.raises(tierd.DaemonUnavailable, match="did not reply within 0.3 s"):
            tierd.connect(path, timeout=0.3)
    finally:
        srv.close()
