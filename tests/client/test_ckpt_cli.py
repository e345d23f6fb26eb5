"""`tierd ckpt ls|show|export|import|rm` against the real daemon."""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tierd

HERE = os.path.dirname(os.path.abspath(__file__))

# `tierd` with the ckpt commands, whether or not cli.py wires them in yet.
RUNNER = """
import argparse, sys
from tierd_daemon import cli
parser = cli.build_parser()
sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
if "ckpt" in sub.choices:
    sys.exit(cli.main(sys.argv[1:]))
from tierd_daemon.cli_ckpt import add_commands
common = argparse.ArgumentParser(add_help=False)
cli._add_common(common, argparse.SUPPRESS)
add_commands(sub, common)
args = parser.parse_args(sys.argv[1:])
sys.exit(args.object_handler(args))
"""


def _has(mod):
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


needs_safetensors = pytest.mark.skipif(
    not (_has("safetensors") and _has("ml_dtypes")),
    reason="safetensors/ml_dtypes not installed (a test extra, not a runtime dependency)")


@pytest.fixture
def tierd_ckpt(daemon, python_env):
    def run(*args):
        return subprocess.run([sys.executable, "-c", RUNNER, "ckpt", *args,
                               "--socket", daemon.socket], env=python_env,
                              capture_output=True, text=True, timeout=120)
    return run


def _state():
    rng = np.random.default_rng(3)
    st = {"model": {"w": rng.standard_normal((128, 64)).astype(np.float32),
                    "b": rng.standard_normal(64).astype(np.float16),
                    "emb": rng.integers(-100, 100, (40, 8)).astype(np.int8)},
          "opt": {"step": 5, "lr": 1e-3, "mom": rng.standard_normal(300_000)},
          "ids": np.arange(10, dtype=np.uint32)}
    try:
        import ml_dtypes
        st["model"]["bf"] = rng.standard_normal((6, 7)).astype(ml_dtypes.bfloat16)
    except ImportError:
        pass
    return st


def _flat(state):
    out = {}

    def walk(node, p):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{p}.{k}" if p else k)
        elif isinstance(node, np.ndarray):
            out[p] = node
    walk(state, "")
    return out


def _bits(a):
    a = np.asarray(a)
    return a.dtype, a.shape, np.ascontiguousarray(a).view(np.uint8).tobytes()


@pytest.fixture
def saved(daemon):
    """run 'cli-run' with steps 1 and 2 (latest 2)."""
    state = _state()
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("cli-run", keep_last=5)
        ck.save(1, {"only": np.ones(3, np.float32)}).wait("persisted")
        ck.save(2, state).wait("persisted")
        ck.close()
    return state


def test_ls_text_and_json(tierd_ckpt, saved):
    r = tierd_ckpt("ls", "cli-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["STEP", "SAVED", "TENSORS", "BYTES"]
    assert len(lines) == 3
    assert lines[1].split()[0] == "1" and not lines[1].startswith("*")
    assert lines[2].startswith("*") and lines[2].split()[1] == "2"
    assert lines[2].split()[4] == str(len(_flat(saved)))
    r = tierd_ckpt("ls", "cli-run", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["step"] for x in rows] == [1, 2]
    assert [x["latest"] for x in rows] == [False, True]
    assert rows[1]["tensors"] == len(_flat(saved))
    assert rows[1]["bytes"] == sum(a.nbytes for a in _flat(saved).values())
    assert rows[0]["bytes"] == 12 and rows[0]["time"] > 0


def test_ls_unknown_run_and_bad_names(tierd_ckpt, daemon):
    r = tierd_ckpt("ls", "nothing-here")
    assert r.returncode == 0 and r.stdout == "" and "no checkpoints" in r.stderr
    assert json.loads(tierd_ckpt("ls", "nothing-here", "--json").stdout) == []
    r = tierd_ckpt("ls", "bad/run")
    assert r.returncode == 1 and r.stderr.startswith("tierd: error: run name")
    r = tierd_ckpt("ls", "cli-run", "--ns", "no-such-ns")
    assert r.returncode == 1 and "tierd: error:" in r.stderr


def test_show(tierd_ckpt, saved):
    r = tierd_ckpt("show", "cli-run")               # latest
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("run cli-run step 2 (latest)")
    assert out[1].split() == ["PATH", "DTYPE", "SHAPE", "BYTES"]
    rows = {ln.split()[0]: ln for ln in out[2:]}
    assert set(rows) == set(_flat(saved))
    assert rows["model.w"].split()[1] == "float32" and "(128, 64)" in rows["model.w"]
    assert rows["model.w"].split()[-1] == str(128 * 64 * 4)
    assert "(10,)" in rows["ids"] and " uint32 " in rows["ids"]
    if "model.bf" in rows:
        assert rows["model.bf"].split()[1] == "bfloat16"
    r = tierd_ckpt("show", "cli-run", "1", "--json")
    doc = json.loads(r.stdout)
    assert doc["step"] == 1 and doc["latest"] is False
    assert doc["tensors"] == [{"path": "only", "dtype": "float32", "shape": [3], "bytes": 12}]
    r = tierd_ckpt("show", "cli-run", "7")
    assert r.returncode == 1 and "tierd: error:" in r.stderr and "step 7" in r.stderr
    r = tierd_ckpt("show", "cli-run", "seven")
    assert r.returncode == 2 and "invalid step" in r.stderr


@needs_safetensors
def test_export_import_rm(tierd_ckpt, saved, daemon, tmp_path):
    import safetensors.numpy as stn
    out = tmp_path / "step2.safetensors"
    r = tierd_ckpt("export", "cli-run", "2", str(out))
    assert r.returncode == 0, r.stderr
    assert "exported step 2" in r.stderr and "\r" not in r.stderr   # no bar: not a TTY
    flat = _flat(saved)
    got = stn.load_file(str(out))
    assert set(got) == set(flat)
    for k, a in flat.items():
        assert _bits(got[k]) == _bits(a), k

    r = tierd_ckpt("import", "cli-run", "9", str(out))
    assert r.returncode == 0, r.stderr
    with tierd.connect(daemon.socket) as c:
        ck = c.checkpoints("cli-run", keep_last=5)
        assert ck.steps() == [1, 2, 9] and ck.latest() == 9
        back = ck.load(9)
        assert back["opt"]["step"] == 5 and back["opt"]["lr"] == 1e-3
        for k, a in _flat(back).items():
            assert _bits(a) == _bits(flat[k]), k
        assert set(_flat(back)) == set(flat)
        ck.close()

    r = tierd_ckpt("import", "cli-run", "9", str(out))          # step taken
    assert r.returncode == 1 and "already has step 9" in r.stderr
    r = tierd_ckpt("import", "cli-run", "10", str(tmp_path / "nope.safetensors"))
    assert r.returncode == 1 and r.stderr.startswith("tierd: error: cannot read")
    r = tierd_ckpt("export", "cli-run", "latest", str(tmp_path / "latest.safetensors"))
    assert r.returncode == 0 and "exported step 9" in r.stderr

    r = tierd_ckpt("rm", "cli-run", "9")
    assert r.returncode == 0, r.stderr
    rows = json.loads(tierd_ckpt("ls", "cli-run", "--json").stdout)
    assert [x["step"] for x in rows] == [1, 2] and rows[1]["latest"] is True
    r = tierd_ckpt("rm", "cli-run", "9")
    assert r.returncode == 1 and r.stderr.startswith("tierd: error:")


def test_export_missing_step(tierd_ckpt, saved, tmp_path):
    r = tierd_ckpt("export", "cli-run", "42", str(tmp_path / "x.safetensors"))
    assert r.returncode == 1 and "tierd: error:" in r.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_help_reads_like_the_rest(daemon, python_env):
    r = subprocess.run([sys.executable, "-c", RUNNER, "ckpt", "--help"], env=python_env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for word in ("ls", "show", "export", "import", "rm"):
        assert word in r.stdout
    r = subprocess.run([sys.executable, "-c", RUNNER, "ckpt"], env=python_env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2


def test_progress_bar_on_a_tty(saved, daemon, tmp_path, monkeypatch, capsys):
    """The bar only appears when stderr is a terminal; driven in-process."""
    pytest.importorskip("safetensors", reason="safetensors is not installed")
    pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
    from tierd_daemon import cli, cli_ckpt
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "ckpt" not in sub.choices:
        common = argparse.ArgumentParser(add_help=False)
        cli._add_common(common, argparse.SUPPRESS)
        cli_ckpt.add_commands(sub, common)
    out = tmp_path / "tty.safetensors"
    args = parser.parse_args(["ckpt", "export", "cli-run", "2", str(out), "--socket",
                              daemon.socket])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert args.object_handler(args) == 0
    err = capsys.readouterr().err
    assert "\r" in err and "MB/s" in err and "fetch" in err and "write" in err
    total = sum(a.nbytes for a in _flat(saved).values())
    from tierd_daemon.units import format_size
    assert f"{format_size(total)} / {format_size(total)}" in err
