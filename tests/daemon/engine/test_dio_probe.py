"""probe_dio(): file-system type and O_DIRECT alignment; aligned_buffer()."""
import os
import sys

import pytest

from tierd_daemon import dio
from tierd_daemon.dio import aligned_buffer, probe_dio


@pytest.fixture(params=["native", "fallback"])
def probe(request, monkeypatch):
    if request.param == "native":
        pytest.importorskip("tierd_daemon._native")
        return probe_dio
    monkeypatch.setitem(sys.modules, "tierd_daemon._native", None)
    return probe_dio


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_dev_shm_is_tmpfs(probe):
    info = probe("/dev/shm")
    assert info.fs_name == "tmpfs"
    assert info.fs_magic == 0x01021994
    assert info.logical_block_size == 0


def test_tmp_path_is_a_disk_with_alignment(probe, tmp_path):
    info = probe(tmp_path)
    assert info.fs_name and info.fs_name != "tmpfs", info
    assert info.mem_align > 0 and info.offset_align > 0, info
    # The same answer for a file in it.
    f = tmp_path / "f"
    f.write_bytes(b"x")
    finfo = probe(f)
    assert (finfo.fs_name, finfo.offset_align) == (info.fs_name, info.offset_align)


def test_native_probe_uses_statx(tmp_path):
    pytest.importorskip("tierd_daemon._native")
    info = probe_dio(tmp_path)
    assert info.source == "statx"
    assert info.fs_magic != 0
    assert dio.FS_MAGIC.get(info.fs_magic) in (info.fs_name, "ext4")


def test_missing_path_raises(probe, tmp_path):
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope")


def test_info_is_frozen(tmp_path):
    info = probe_dio(tmp_path)
    with pytest.raises(AttributeError):
        info.mem_align = 1


@pytest.mark.parametrize("nbytes,align", [(0, 4096), (1, 4096), (4096 * 3 + 5, 512), (100, 1 << 16), (3 << 20, 4096)])
def test_aligned_buffer(nbytes, align):
    buf = aligned_buffer(nbytes, align)
    assert buf.nbytes == nbytes and buf.dtype.name == "uint8"
    assert buf.ctypes.data % align == 0
    assert buf.flags.writeable and not buf.any()
    buf[:] = 7
