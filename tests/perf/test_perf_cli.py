"""The command line: help, parse, and errors that say what to fix."""
import json
import subprocess
import sys

import pytest

from tierd_perf.cli import main


def test_help_lists_commands_and_engines(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("run", "parse", "ioengines:", "native", "store", "--compare-fio"):
        assert word in out


def test_run_help(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for opt in ("--output-format", "--output", "--compare-fio", "--repeat", "--section", "--size", "--runtime"):
        assert opt in out


def test_parse_json_with_overrides(tiny_job, capsys):
    p = tiny_job("[global]\nbs=4k\n[a]\nsize=1g\nrw=randread\n")
    assert main(["parse", p, "--size", "8m", "--output-format=json"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert jobs[0]["size"] == 8 << 20 and jobs[0]["bs"] == 4096


def test_job_file_error_is_one_clear_line(tiny_job, capsys):
    p = tiny_job("[a]\nsize=1m\nfrobnicate=1\n")
    assert main(["run", p]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tierd-perf: error:") and "frobnicate" in err and ":3" in err


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "tierd_perf.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "tierd-perf 0.1.0" in r.stdout
