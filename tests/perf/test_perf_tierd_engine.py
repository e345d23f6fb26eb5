"""ioengine=tierd through a daemon the runner starts itself, and bench_daemon.py --quick."""
import json
import os
import subprocess
import sys
import tempfile

from perf_fio_shape import check_fio_shape
from tierd_perf.cli import main
from tierd_perf.jobfile import JobFileError, parse_text

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_tierd_put_then_get(tiny_job, data_dir, tmp_path, monkeypatch):
    # The runner's temp dir (daemon data + socket) goes under data_dir, so
    # we can check that it is removed afterwards.
    monkeypatch.setattr(tempfile, "tempdir", data_dir)
    p = tiny_job("[global]\nioengine=tierd\nsize=8m\nbs=64k\niodepth=4\ndram=32m\n"
                 "[put]\nrw=write\n[get]\nrw=read\n[pput]\nrw=write\ndurability=persisted\n")
    out = tmp_path / "out.json"
    assert main(["run", p, "--output-format=json", "--output", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    put, get, pput = doc["jobs"]
    check_fio_shape({**doc, "jobs": [put, pput]}, "write")
    check_fio_shape({**doc, "jobs": [get]}, "read")
    assert put["write"]["io_bytes"] == 8 << 20 and put["write"]["total_ios"] == 128
    assert get["read"]["io_bytes"] == 8 << 20 and get["read"]["total_ios"] == 128
    assert get["write"]["io_bytes"] == 0
    assert pput["write"]["io_bytes"] == 8 << 20
    assert put["ioengine"] == "tierd" and put["engine"] == "tierd"
    assert put["job options"]["dram"] == "32m"
    assert os.listdir(data_dir) == []   # daemon data, socket and temp dir all gone


def test_tierd_job_options():
    job, = parse_text("[j]\nioengine=tierd\nsize=1m\nbs=64k\n")
    assert (job.dram, job.durability) == (256 << 20, "staged")
    job, = parse_text("[j]\nioengine=tierd\nsize=1m\nbs=64k\ndram=1g\ndurability=persisted\n")
    assert (job.dram, job.durability) == (1 << 30, "persisted")
    try:
        parse_text("[j]\nioengine=tierd\nsize=1m\nbs=64k\ndurability=maybe\n")
    except JobFileError as e:
        assert "durability" in str(e)
    else:
        raise AssertionError("durability=maybe accepted")


def test_bench_daemon_quick(python_env):
    before = {d for d in os.listdir("/tmp") if d.startswith("tierd-bench-")}
    p = subprocess.run([sys.executable, os.path.join(REPO, "perf", "bench_daemon.py"), "--quick"],
                       env=python_env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-4000:]
    for section in ("== (a) DRAM-hit put+get", "== (b) get_many of 64 x 4 KiB",
                    "== (c) get of NVMe-resident 1 MiB"):
        assert section in p.stdout, p.stdout
    assert "| measurement | tierd | baseline |" in p.stdout
    after = {d for d in os.listdir("/tmp") if d.startswith("tierd-bench-")}
    assert after <= before      # its data dir was removed
