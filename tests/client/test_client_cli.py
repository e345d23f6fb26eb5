"""`tierd put|get|rm|ls|status` against the real daemon."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def tierd_cmd(daemon, python_env):
    def run(*args, input=None):
        return subprocess.run([sys.executable, os.path.join(HERE, "cli_runner.py"), *args,
                               "--socket", daemon.socket], input=input, env=python_env,
                              capture_output=True, timeout=120)
    return run


def test_put_file_get_file(tierd_cmd, tmp_path):
    src = tmp_path / "in.bin"
    payload = bytes(range(256)) * 4099
    src.write_bytes(payload)
    r = tierd_cmd("put", "default", "files/a", str(src))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out.bin"
    r = tierd_cmd("get", "default", "files/a", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == payload


def test_put_stdin_get_stdout_binary(tierd_cmd):
    payload = b"\x00\xff\r\n binary \x00" * 1000
    r = tierd_cmd("put", "cache", "stdin-key", input=payload)
    assert r.returncode == 0, r.stderr
    r = tierd_cmd("put", "cache", "dash-key", "-", input=b"dash")
    assert r.returncode == 0, r.stderr
    r = tierd_cmd("get", "cache", "stdin-key")
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload
    assert tierd_cmd("get", "cache", "dash-key").stdout == b"dash"


def test_put_durability_follows_namespace(tierd_cmd, daemon):
    import tierd
    assert tierd_cmd("put", "default", "dur", input=b"persist me").returncode == 0
    with tierd.connect(daemon.socket) as c:
        assert c.namespace_info("default")["durable"] is True
        st = c.stat("default", "dur")
    assert st["size"] == len(b"persist me")
    r = tierd_cmd("put", "cache", "x", "--durability", "bogus", input=b"")
    assert r.returncode == 2  # argparse usage error


def test_rm_ls(tierd_cmd):
    for k in ("ls/a", "ls/b", "other"):
        assert tierd_cmd("put", "cache", k, input=k.encode()).returncode == 0
    r = tierd_cmd("ls", "cache", "--prefix", "ls/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["ls/a", "ls/b"]
    r = tierd_cmd("ls", "cache", "-l", "--prefix", "ls/")
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "4" and lines[0].split()[-1] == "ls/a"
    assert lines[0].split()[1] in ("dram", "nvme")
    assert tierd_cmd("rm", "cache", "ls/a").returncode == 0
    assert tierd_cmd("ls", "cache", "--prefix", "ls/").stdout.decode().split() == ["ls/b"]
    r = tierd_cmd("rm", "cache", "ls/a")
    assert r.returncode == 1 and r.stderr.decode().startswith("tierd: error:")
    r = tierd_cmd("get", "cache", "ls/a")
    assert r.returncode == 1 and b"tierd: error:" in r.stderr and r.stdout == b""


def test_status(tierd_cmd):
    r = tierd_cmd("status", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert isinstance(doc, dict)
    r = tierd_cmd("status")
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert "NAMESPACE" in text and "default" in text and "cache" in text
    warm = doc["dram"]
    assert (f"dram: kept warm, every page read every {warm['keep_warm_interval_s']:g} s"
            if warm["keep_warm"] else "dram: not kept warm") in text
    assert warm["keep_warm_why"] in text


def test_unreachable(python_env, tmp_path):
    r = subprocess.run([sys.executable, os.path.join(HERE, "cli_runner.py"), "status", "--socket",
                        str(tmp_path / "none.sock")], env=python_env, capture_output=True,
                       timeout=60)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("tierd: error: no tierd daemon answers")
