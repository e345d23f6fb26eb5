"""A tiny real run of ioengine=native (our engine on a real file)."""
import json
import os

from perf_fio_shape import check_fio_shape
from tierd_perf.cli import main


def _run(tiny_job, data_dir, tmp_path, body, *extra):
    p = tiny_job(f"[global]\nioengine=native\nsize=8m\nbs=64k\niodepth=4\ndirectory={data_dir}\n{body}")
    out = tmp_path / "out.json"
    rc = main(["run", p, "--output-format=json", "--output", str(out), "--no-progress", *extra])
    assert rc == 0
    return json.loads(out.read_text())


def test_native_read_lays_out_and_reads_whole_file(tiny_job, data_dir, tmp_path):
    doc = _run(tiny_job, data_dir, tmp_path, "[r]\nrw=read\n[rr]\nrw=randread\n")
    check_fio_shape(doc, "read")
    for job in doc["jobs"]:
        assert job["read"]["io_bytes"] == 8 << 20
        assert job["read"]["total_ios"] == 128
        assert job["write"]["io_bytes"] == 0
        assert job["engine"] in ("io_uring", "threadpool")
    # laid out like fio names files: jobname.jobnum.filenum
    assert os.path.getsize(os.path.join(data_dir, "r.0.0")) == 8 << 20


def test_native_write_and_mixed_with_threads(tiny_job, data_dir, tmp_path):
    doc = _run(tiny_job, data_dir, tmp_path,
               "[w]\nrw=write\n[m]\nrw=randrw\nrwmixread=50\nnumjobs=2\n")
    check_fio_shape(doc, "write")
    w, m = doc["jobs"]
    assert w["write"]["io_bytes"] == 8 << 20 and w["read"]["io_bytes"] == 0
    # two threads, 8 MiB each, split between reads and writes
    assert m["read"]["io_bytes"] + m["write"]["io_bytes"] == 16 << 20
    assert m["read"]["io_bytes"] > 0 and m["write"]["io_bytes"] > 0
    assert m["numjobs"] == 2


def test_native_time_based(tiny_job, data_dir, tmp_path):
    doc = _run(tiny_job, data_dir, tmp_path, "[t]\nrw=randread\nruntime=300ms\ntime_based\n")
    r = doc["jobs"][0]["read"]
    assert 250 <= r["runtime"] <= 1000
    assert r["io_bytes"] > 0 and r["io_bytes"] % 65536 == 0


def test_text_output_and_default_tmpdir_cleanup(tiny_job, tmp_path, capsys):
    import glob
    before = set(glob.glob("/tmp/tierd-perf-*"))
    p = tiny_job("[r]\nsize=8m\nbs=64k\niodepth=4\nrw=read\n")
    assert main(["run", p, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "r: (groupid=0, jobs=1)" in out and "read: IOPS=" in out and "BW=" in out
    # native jobs report each op's own latency, not a batch's
    assert "    clat percentiles (usec)" in out and "99.90th=[" in out
    assert "clat (batch)" not in out
    assert set(glob.glob("/tmp/tierd-perf-*")) <= before
