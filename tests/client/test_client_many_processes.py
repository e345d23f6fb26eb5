"""16 client processes at once; every read is exactly one of the values ever written."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_sixteen_processes(daemon, python_env):
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "mp_worker.py"), daemon.socket,
                               str(w), "150"], env=python_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in range(16)]
    failures = []
    for w, p in enumerate(procs):
        try:
            out, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        if p.returncode != 0 or not out.startswith("ok"):
            failures.append(f"worker {w} rc={p.returncode}\n{out}\n{err[-3000:]}")
    assert not failures, "\n".join(failures)
