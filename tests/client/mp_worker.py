"""One of many client processes: put/get/delete own and shared keys, check every byte.

Values are self-describing: 8 bytes writer id, 8 bytes sequence, then a
pattern derived from both, so a reader can tell a value that was really
written from torn or foreign bytes. Prints "ok N" or exits non-zero.
"""
import sys

import numpy as np

import tierd


def value(wid: int, seq: int) -> bytes:
    n = 100 + (wid * 7919 + seq * 104729) % 20000
    head = np.array([wid, seq], dtype=np.uint64).tobytes()
    body = ((np.arange(n, dtype=np.uint32) * (wid + 3) + seq) % 251).astype(np.uint8).tobytes()
    return head + body


def check(key: bytes, data: bytes) -> None:
    assert len(data) >= 16, (key, len(data))
    wid, seq = np.frombuffer(data[:16], dtype=np.uint64).tolist()
    assert data == value(int(wid), int(seq)), f"{key!r}: bytes are not a value ever written"


def main(sock: str, wid: int, rounds: int) -> None:
    ns = "cache" if wid % 2 else "default"
    shared = [f"shared/{i}".encode() for i in range(4)]
    checked = 0
    with tierd.connect(sock, timeout=60) as c:
        for seq in range(rounds):
            own = f"own/{wid}/{seq % 5}".encode()
            v = value(wid, seq)
            c.put(ns, own, v)
            with c.get(ns, own) as lease:
                assert lease.tobytes() == v, "own key read back wrong"
            sk = shared[seq % len(shared)]
            c.put("default", sk, value(wid, seq))
            for k in shared:
                try:
                    with c.get("default", k) as lease:
                        check(k, lease.tobytes())
                        checked += 1
                except tierd.NotFound:
                    pass
            if seq % 7 == 3:
                c.delete(ns, own)
                assert not c.contains(ns, own)
            if seq % 11 == 5:
                c.delete_many("default", [shared[wid % len(shared)]])
    print("ok", checked)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
