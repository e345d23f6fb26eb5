"""Protocol fuzzing: >= 100k malformed frames; the daemon and its other
clients carry on, and a well-formed client is served afterwards.

Two layers: hypothesis drives the decoder in-process (any bytes -> only
ProtocolError/TierdError, never another exception), and a seeded mutation
fuzzer sends 100k+ hostile frames to a real daemon over real sockets.
"""
from __future__ import annotations

import os
import random
import struct

import msgpack
from hypothesis import given, settings, strategies as st

from tierd.errors import TierdError
from tierd.protocol import FrameReader, OPS, check_request, pack

from rawwire import DataConn, RawConn

FRAMES = int(os.environ.get("TIERD_FUZZ_FRAMES", "100000"))


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_raises_only_protocol_errors(data):
    r = FrameReader(max_frame=64)
    try:
        for msg in r.feed(data):
            check_request(msg)
    except TierdError:
        pass


def _value(rng: random.Random, depth: int = 0):
    choices = [
        lambda: None, lambda: True, lambda: -1, lambda: 2**63 + 5, lambda: 1.5,
        lambda: "x" * rng.randrange(5), lambda: b"\x00\xff", lambda: rng.randrange(-10, 10**6),
        lambda: [[b"k", rng.choice([-1, 0, 10, 2**40, "x"])]],
        lambda: {"ns": rng.choice(["default", "cache", "nope", 7, ""])},
    ]
    if depth < 2:
        choices += [
            lambda: [_value(rng, depth + 1) for _ in range(rng.randrange(4))],
            lambda: {str(rng.randrange(5)): _value(rng, depth + 1) for _ in range(rng.randrange(4))},
        ]
    return rng.choice(choices)()


def _request(rng: random.Random) -> dict:
    """A map that looks like a request but is wrong somewhere (mostly)."""
    op = rng.choice(list(OPS) + ["hello", "bogus", 3, None])
    args = {}
    for name in rng.sample(sorted(OPS.get(op, {"ns": 0, "keys": 0})), k=rng.randrange(
            len(OPS.get(op, {"a": 0, "b": 0})) + 1)):
        args[name] = _value(rng)
    if rng.random() < 0.3:
        args[rng.choice(["zzz", "lease", "ns", "tokens"])] = _value(rng)
    # The id is always readable here (unreadable ids are _frame_killer's):
    # every one of these frames must get its own error reply.
    msg = {"id": rng.randrange(2**40), "op": op, "args": rng.choice([args, args, args, [], "x"])}
    if rng.random() < 0.1:
        del msg[rng.choice(["op", "args"])]
    return msg


def _frame_killer(rng: random.Random) -> bytes:
    """A frame the daemon must answer by closing the connection."""
    kind = rng.randrange(4)
    if kind == 0:   # length beyond max_frame
        return struct.pack("<I", rng.randrange(1 << 21, 1 << 32))
    if kind == 1:   # not msgpack
        body = bytes([0xc1]) + os.urandom(rng.randrange(20))
    elif kind == 2:  # msgpack, but not a map
        body = msgpack.packb(rng.choice([1, "x", [1, 2], None, b"b"]))
    else:           # a map whose id cannot be read
        body = msgpack.packb({"id": rng.choice([-1, "x", None, 2.5]), "op": "status"})
    return struct.pack("<I", len(body)) + body


def test_100k_malformed_frames_then_a_good_client(daemon):
    rng = random.Random(20261123)
    sent = replies = closes = 0
    bystander = DataConn(daemon.socket)          # a client going about its business
    assert bystander.put("default", b"steady", b"before", "persisted")["ok"]
    conn = RawConn(daemon.socket)
    while sent < FRAMES:
        if rng.random() < 0.25:
            # Connection-level garbage: the daemon closes this connection only.
            conn.send_bytes(_frame_killer(rng))
            sent += 1
            assert conn.recv_msg() is not None and conn.recv_msg() is None
            conn.close()
            closes += 1
            conn = RawConn(daemon.socket, hello=rng.random() < 0.9)
            if conn.hello is None:  # skip the handshake: anything but hello is refused
                conn.send_bytes(pack(_request(rng)))
                sent += 1
                rep = conn.recv_msg()
                assert rep is not None and not rep["ok"]
                conn.close()
                conn = RawConn(daemon.socket)
            continue
        # Request-level garbage, pipelined: every frame gets its own reply
        # (an error, or a result for the rare valid request), in order.
        batch = [_request(rng) for _ in range(200)]
        conn.send_bytes(b"".join(pack(m) for m in batch))
        sent += len(batch)
        for m in batch:
            rep = conn.recv_msg()
            assert rep is not None and rep.get("id") == m["id"], (m, rep)
            replies += 1
    conn.close()
    assert sent >= FRAMES and replies + closes >= FRAMES * 0.98 and closes > 100
    assert daemon.proc.poll() is None, "the daemon died:\n" + daemon.log()
    # The bystander's connection survived all of it; a new client works too.
    assert bystander.get("default", b"steady") == b"before"
    fresh = DataConn(daemon.socket)
    assert fresh.put("default", b"after", b"fine", "persisted")["ok"]
    assert fresh.get("default", b"after") == b"fine"
    status = fresh.call("status")["result"]
    assert status["server"]["clients"] >= 2
    assert "Traceback" not in daemon.log(), "a malformed frame hit an unexpected exception"
