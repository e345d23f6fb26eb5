"""Job-file parsing: fio's format, suffixes, [global] inheritance, errors."""
import pytest

from tierd_perf.jobfile import JobFileError, load, parse_size, parse_text, parse_time


@pytest.mark.parametrize("text,expected", [
    ("512", 512), ("4k", 4096), ("4K", 4096), ("4kb", 4096), ("1m", 1 << 20), ("1M", 1 << 20),
    ("2g", 2 << 30), ("1t", 1 << 40), ("1Mi", 1 << 20),
    # fio's default kb_base=1024 "compatibility mode": IEC suffixes are powers of 1000
    ("1KiB", 1000), ("1MiB", 1_000_000), ("1GiB", 1_000_000_000),
])
def test_sizes_like_fio(text, expected):
    assert parse_size(text) == expected


def test_kb_base_1000_swaps_meanings():
    assert parse_size("1k", kb_base=1000) == 1000
    assert parse_size("1KiB", kb_base=1000) == 1024
    jobs = parse_text("[global]\nkb_base=1000\n[j]\nsize=1MiB\nbs=4KiB\n")
    assert jobs[0].size == 1 << 20 and jobs[0].bs == 4096


@pytest.mark.parametrize("text,seconds", [
    ("10", 10.0), ("10s", 10.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("250us", 250e-6),
])
def test_times(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


def test_bad_size_and_time():
    with pytest.raises(ValueError):
        parse_size("4x")
    with pytest.raises(ValueError):
        parse_time("10 parsecs")


def test_global_inheritance_and_overrides():
    text = """
; comment
[global]
bs=64k
iodepth=8
size=1g
direct=1
# another comment
[a]
rw=randread
runtime=10s
time_based

[b]
rw=randrw
rwmixread=70
bs=1m
numjobs=4
ioengine=store
filename=/tmp/somewhere
"""
    a, b = parse_text(text, "x.fio")
    assert (a.name, a.rw, a.bs, a.iodepth, a.size, a.runtime, a.time_based) == \
        ("a", "randread", 65536, 8, 1 << 30, 10.0, True)
    assert a.ioengine == "native" and a.direct and a.is_random and a.read_fraction == 1.0
    assert (b.rw, b.bs, b.numjobs, b.ioengine, b.filename, b.read_fraction) == \
        ("randrw", 1 << 20, 4, "store", "/tmp/somewhere", 0.7)
    assert not b.time_based and b.runtime is None
    a2, b2 = parse_text(text, "x.fio", overrides={"size": "8m", "runtime": "1s"})
    assert a2.size == b2.size == 8 << 20 and a2.runtime == b2.runtime == 1.0


def test_unknown_option_names_option_file_and_line():
    with pytest.raises(JobFileError) as e:
        parse_text("[global]\nbs=4k\n[j]\nsize=1m\nbogus_opt=3\n", "my.fio")
    msg = str(e.value)
    assert "my.fio:5" in msg and "bogus_opt" in msg


def test_unknown_ioengine_lists_supported():
    with pytest.raises(JobFileError) as e:
        parse_text("[j]\nsize=1m\nioengine=libaio\n", "e.fio")
    msg = str(e.value)
    assert "libaio" in msg and "native" in msg and "store" in msg and "e.fio:3" in msg


@pytest.mark.parametrize("body,needle", [
    ("[j]\nrw=read\n", "size is required"),
    ("[j]\nsize=1m\nrw=sideways\n", "unknown rw mode"),
    ("[j]\nsize=1m\nbs=4q\n", "bad value for bs"),
    ("[j]\nsize=1m\ntime_based\n", "time_based needs runtime"),
    ("[j]\nsize=1m\nbs=512\n", "multiple of 4096"),
    ("[j]\nsize=4k\nbs=64k\n", "smaller than bs"),
    ("bs=4k\n", "outside any section"),
    ("[global]\nbs=4k\n", "no job sections"),
    ("[j]\nsize=1m\n[j]\nsize=1m\n", "duplicate job section"),
])
def test_validation_errors(body, needle):
    with pytest.raises(JobFileError, match=needle):
        parse_text(body, "v.fio")


def test_load_sections_and_missing_file(tiny_job):
    p = tiny_job("[a]\nsize=1m\n[b]\nsize=2m\n")
    assert [j.name for j in load([p], sections=["b"])] == ["b"]
    with pytest.raises(JobFileError, match="no job section named c"):
        load([p], sections=["c"])
    with pytest.raises(JobFileError, match="cannot read job file"):
        load([p + ".missing"])


def test_shipped_job_files_parse():
    import glob
    import os
    root = os.path.join(os.path.dirname(__file__), "..", "..", "perf", "jobs")
    files = sorted(glob.glob(os.path.join(root, "*.fio")))
    names = {os.path.basename(f) for f in files}
    assert {"seq-read-1m.fio", "seq-write-1m.fio", "randread-4k.fio", "store-put-get-1m.fio",
            "issue2-bench.fio"} <= names
    bench = load([os.path.join(root, "issue2-bench.fio")])
    assert [j.name for j in bench] == [
        "seq-write-1m", "seq-read-1m", "seq-write-1m-plainpages", "seq-read-1m-plainpages",
        "randread-4k", "store-put-1m", "store-get-1m", "store-put-1m-plainpages",
        "store-get-1m-plainpages"]
    assert [j.hugepages for j in bench].count(False) == 4
    for f in files:
        assert load([f])


def test_submit_batch_and_hugepages_options(tmp_path):
    from tierd_perf.fio import fio_args
    from tierd_perf.jobfile import load
    p = tmp_path / "j.fio"
    p.write_text("[a]\nrw=read\nsize=1m\niodepth_batch=8\nhugepages=0\n[b]\nrw=read\nsize=1m\n")
    a, b = load([str(p)], None, {})
    assert (a.iodepth_batch_submit, a.hugepages) == (8, False)
    assert (b.iodepth_batch_submit, b.hugepages) == (1, True)
    args = fio_args(a, filename="/x")
    assert "--iodepth_batch_submit=8" in args
    assert not any("huge" in x for x in args), "hugepages is ours only; fio has no such option"
