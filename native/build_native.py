"""cffi build script for tierd_daemon._native (API mode, links liburing).

Used by setup.py (`cffi_modules=["native/build_native.py:ffibuilder"]`).
Iterate with `python setup.py build_ext --inplace` (the module lands in
daemon/tierd_daemon/ through the package-dir mapping) or `pip install -e .`.

cffi API mode releases the GIL around every C call (its default), so a
tierd_ring_submit_wait() that blocks on the disk never stalls other threads.
"""
from __future__ import annotations

import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
# setuptools wants paths relative to the project root (setup.py's directory,
# the cwd during a build); keep the absolute one for running this by hand.
_REL = os.path.relpath(HERE)
NATIVE_DIR = _REL if not _REL.startswith("..") else HERE

with open(os.path.join(HERE, "tierd_native.h"), encoding="utf-8") as f:
    _header = f.read()

# cdef gets the declarations between the markers: the header is the single
# source of truth for both the compiler and cffi.
_cdef = re.search(r"/\* TIERD_CDEF_BEGIN \*/(.*)/\* TIERD_CDEF_END \*/", _header, re.S).group(1)

ffibuilder = FFI()
ffibuilder.cdef("struct iovec { void *iov_base; size_t iov_len; };\n" + _cdef)
ffibuilder.set_source(
    "tierd_daemon._native",
    '#include "tierd_native.h"\n',
    sources=[os.path.join(NATIVE_DIR, "tierd_native.c")],
    include_dirs=[NATIVE_DIR],
    depends=[os.path.join(NATIVE_DIR, "tierd_native.h")],
    libraries=["uring"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)
