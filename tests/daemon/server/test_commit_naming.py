"""The wire contract of unnamed allocations and commit-time names (raw frames)."""
from __future__ import annotations

from rawwire import DataConn
from rawwire import error_of as _err



def test_unnamed_alloc_named_at_commit(daemon):
    conn = DataConn(daemon.socket)
    try:
        arena = conn.arena("cache")
        rep = conn.call("alloc", ns="cache", items=[[None, 3], [None, 2, 2]])
        assert rep["ok"], rep
        a, b = rep["result"]
        arena[a["offset"]:a["offset"] + 3] = memoryview(b"abc")
        arena[b["offset"]:b["offset"] + 2] = memoryview(b"de")
        rep = conn.call("commit", ns="cache", tokens=[a["token"], b["token"]],
                        keys=[b"x", b"y"], if_absent=True)
        assert rep == {"id": rep["id"], "ok": True, "result": [True, True]}
        got = conn.call("get", ns="cache", keys=[b"x", b"y"], lease=False)["result"]
        assert [bytes(arena[g["offset"]:g["offset"] + g["size"]]) for g in got] == [b"abc", b"de"]
    finally:
        conn.close()


def test_commit_refuses_what_it_cannot_name(daemon):
    conn = DataConn(daemon.socket)
    try:
        conn.arena("cache")
        tok = conn.call("alloc", ns="cache", items=[[None, 8]])["result"][0]["token"]
        code, msg = _err(conn.call("commit", ns="cache", tokens=[tok]))
        assert code == "INVALID_ARGUMENT" and "allocated without a key; pass keys" in msg
        code, msg = _err(conn.call("commit", ns="cache", tokens=[tok], keys=[b"a", b"b"]))
        assert code == "INVALID_ARGUMENT" and "2 keys for 1 tokens" in msg
        code, msg = _err(conn.call("commit", ns="cache", tokens=[tok, tok], keys=[b"a", b"b"]))
        assert code == "INVALID_ARGUMENT" and "token appears twice" in msg
        code, msg = _err(conn.call("commit", ns="cache", tokens=[tok], keys=[b""]))
        assert code == "INVALID_ARGUMENT"
        code, msg = _err(conn.call("commit", ns="cache", tokens=[tok], keys="ab"))
        assert code == "INVALID_ARGUMENT" and "keys" in msg
        # Every refusal above left the allocation pending, and it still commits.
        rep = conn.call("commit", ns="cache", tokens=[tok], keys=[b"named"])
        assert rep["ok"] and rep["result"] is None, rep
        code, msg = _err(conn.call("alloc", ns="cache", items=[[b"k", 1], [b"k", 1]]))
        assert "a key appears twice" in msg
        assert conn.call("alloc", ns="cache", items=[[None, 1], [None, 1]])["ok"]  # unnamed may repeat
    finally:
        conn.close()
