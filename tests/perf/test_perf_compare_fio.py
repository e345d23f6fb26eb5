"""--compare-fio on a tiny job (real fio; skipped where fio is missing)."""
import json
import shutil

import pytest

from tierd_perf.cli import main

needs_fio = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed (apt-get install fio)")


@needs_fio
def test_compare_native_and_store(tiny_job, data_dir, tmp_path):
    p = tiny_job(f"[global]\nsize=8m\nbs=64k\niodepth=4\ndirectory={data_dir}\n"
                 "[nat]\nioengine=native\nrw=read\n[st]\nioengine=store\nrw=write\n")
    out = tmp_path / "cmp.json"
    rc = main(["run", p, "--compare-fio", "--repeat", "2", "--output-format=json",
               "--output", str(out), "--no-progress"])
    assert rc == 0
    doc = json.loads(out.read_text())
    cmp = {c["jobname"]: c for c in doc["comparison"]}
    assert set(cmp) == {"nat", "st"}
    for c in cmp.values():
        assert len(c["pairs"]) == 2
        for pair in c["pairs"]:
            assert pair["ours"]["io_bytes"] == 8 << 20
            assert pair["fio"]["io_bytes"] == 8 << 20
            assert pair["fio"]["bw_bytes"] > 0
        assert c["ratio"]["bw"] > 0 and c["ratio"]["iops"] > 0
        assert c["median"]["fio"]["clat_p99_ns"] > 0
    assert "--filename_format" in cmp["st"]["fio_command"]
    # fio ran on the very file ioengine=native laid out, and left no extra files
    import os
    assert "nat.0.0" in os.listdir(data_dir)
    assert not [f for f in os.listdir(data_dir) if f.startswith("fio-compare")]


@needs_fio
def test_compare_text_table(tiny_job, data_dir, capsys):
    p = tiny_job(f"[r]\nsize=4m\nbs=64k\niodepth=4\nrw=read\ndirectory={data_dir}\n")
    assert main(["run", p, "--compare-fio", "--repeat", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Comparison with fio" in out and "bw ratio" in out


def test_fio_missing_says_how_to_install(tiny_job, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    p = tiny_job("[r]\nsize=4m\nbs=64k\nrw=read\n")
    assert main(["run", p, "--compare-fio", "--no-progress"]) == 1
    assert "apt-get install fio" in capsys.readouterr().err
