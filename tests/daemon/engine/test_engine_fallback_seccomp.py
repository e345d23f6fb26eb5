"""io_uring forbidden by seccomp (as in many containers): `auto` falls back to
the threadpool engine with one log line naming the cause; `io_uring` refuses."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_child.py")

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the seccomp filter in seccomp_child.py is for x86_64")


def run_child(disk_dir, python_env, kind):
    return subprocess.run([sys.executable, CHILD, str(disk_dir / "s"), kind], env=python_env,
                          capture_output=True, text=True, timeout=60)


def test_auto_falls_back_under_seccomp(disk_dir, python_env):
    r = run_child(disk_dir, python_env, "auto")
    if "seccomp filter refused" in r.stderr:
        pytest.skip("this kernel/container does not allow installing a seccomp filter")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["threadpool", "roundtrip", "ok"]
    warnings = [l for l in r.stderr.splitlines() if "io_uring unavailable" in l]
    assert len(warnings) == 1 and "EPERM" in warnings[0] and "threadpool" in warnings[0]


def test_explicit_io_uring_refuses_under_seccomp(disk_dir, python_env):
    r = run_child(disk_dir, python_env, "io_uring")
    if "seccomp filter refused" in r.stderr:
        pytest.skip("this kernel/container does not allow installing a seccomp filter")
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr
