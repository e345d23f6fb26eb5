"""A tiny real run of ioengine=store (the real object store in a tmp dir)."""
import json

from perf_fio_shape import check_fio_shape
from tierd_perf.cli import main


def test_store_put_then_get(tiny_job, data_dir, tmp_path):
    p = tiny_job(f"[global]\nioengine=store\nsize=8m\nbs=64k\niodepth=4\nfilename={data_dir}/st\n"
                 "[put]\nrw=write\n[get]\nrw=read\n[rget]\nrw=randread\nnumjobs=2\n"
                 "[one]\nrw=randread\niodepth=1\n")
    out = tmp_path / "out.json"
    assert main(["run", p, "--output-format=json", "--output", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    put, get, rget, one = doc["jobs"]
    check_fio_shape({**doc, "jobs": [put]}, "write")
    check_fio_shape({**doc, "jobs": [get, rget, one]}, "read")
    assert put["write"]["io_bytes"] == 8 << 20 and put["write"]["total_ios"] == 128
    assert get["read"]["io_bytes"] == 8 << 20
    assert rget["read"]["io_bytes"] == 16 << 20
    assert one["read"]["io_bytes"] == 8 << 20
    assert put["ioengine"] == "store"


def test_store_objects_are_readable_by_the_store(tiny_job, data_dir, tmp_path):
    from tierd_daemon.store import Store
    path = f"{data_dir}/st2"
    p = tiny_job(f"[put]\nioengine=store\nsize=1m\nbs=64k\niodepth=4\nrw=write\nfilename={path}\n")
    assert main(["run", p, "--no-progress", "--output", str(tmp_path / "o.txt")]) == 0
    s = Store.open(path)
    try:
        keys = sorted(s.list("default"))
        assert len(keys) == 16
        assert len(s.get("default", keys[0])) == 65536
    finally:
        s.close()
