"""Child for the fallback test: forbid io_uring_setup with a real seccomp
filter (as a container runtime would), then use a store with the given engine.

Usage: python seccomp_child.py STORE_DIR ENGINE_KIND
Prints the engine the store chose, then "roundtrip ok".
"""
from __future__ import annotations

import ctypes
import errno
import logging
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
NR_IO_URING_SETUP = 425          # x86_64 (and every arch since 5.1)
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000


def forbid_io_uring() -> None:
    def ins(code, jt, jf, k):
        return struct.pack("HBBI", code, jt, jf, k)
    prog = b"".join([
        ins(0x20, 0, 0, 4),                       # A = arch
        ins(0x15, 0, 3, AUDIT_ARCH_X86_64),       # other arch: allow
        ins(0x20, 0, 0, 0),                       # A = syscall nr
        ins(0x15, 0, 1, NR_IO_URING_SETUP),
        ins(0x06, 0, 0, RET_ERRNO | errno.EPERM),
        ins(0x06, 0, 0, RET_ALLOW),
    ])
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HxxxxxxP", len(prog) // 8, ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog)
    libc = ctypes.CDLL(None, use_errno=True)
    # Pointers are 64-bit: without argtypes ctypes would pass C ints.
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fbuf), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


def main(path: str, kind: str) -> None:
    forbid_io_uring()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    from tierd_daemon.store import Store, StoreConfig
    with Store.open(path, StoreConfig(capacity=16 << 20, engine=kind)) as s:
        print(s.usage().engine, flush=True)
        data = bytes(range(256)) * 4099
        s.put("default", "k", data)
        assert s.get("default", "k").tobytes() == data
        print("roundtrip ok", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
