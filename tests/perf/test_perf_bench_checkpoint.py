"""perf/bench_checkpoint.py --quick --runs 1 with whatever tools are installed here.

torch (and safetensors) are optional (the lead's `bench` extra): without them
the benchmark runs only tierd + the baselines, and the torch peers are
skipped with the reason.
"""
import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "perf", "bench_checkpoint.py")


def _have(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except Exception:  # noqa: BLE001
        return False


def _tierd_checkpoints() -> bool:
    import tierd
    return hasattr(tierd.Client, "checkpoints")


def installed_tools() -> tuple[list[str], dict]:
    tools, skipped = [], {}
    if _tierd_checkpoints():
        tools += ["tierd", "tierd-lazy"]
    else:
        skipped["tierd"] = "tierd.Client has no checkpoints()"
    if _have("torch"):
        tools += ["torch.save", "dcp.save", "dcp.async_save"]
        if _have("safetensors"):
            tools.append("safetensors")
        else:
            skipped["safetensors"] = "safetensors not installed"
    else:
        for t in ("torch.save", "safetensors", "dcp.save", "dcp.async_save"):
            skipped[t] = "torch not installed"
    return tools, skipped


def _leftovers() -> set:
    out = {d for d in os.listdir("/tmp") if d.startswith("tierd-bench-ckpt-")}
    if os.path.isdir("/dev/shm"):
        out |= {d for d in os.listdir("/dev/shm") if d.startswith("tierd-bench-loop-")}
    return out


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
def test_bench_checkpoint_quick(python_env, tmp_path):
    tools, skipped = installed_tools()
    for name, why in skipped.items():
        print(f"skipping {name}: {why}")
    if not tools:
        pytest.skip("no checkpoint tool available: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    before = _leftovers()
    results, js = tmp_path / "RESULTS.md", tmp_path / "out.json"
    p = subprocess.run([sys.executable, BENCH, "--quick", "--runs", "1", "--tools", ",".join(tools),
                        "--record", str(results), "--json", str(js)],
                       env=python_env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    assert "| tool | blocking | time until durable |" in p.stdout, p.stdout
    doc = json.loads(js.read_text())
    assert sorted(doc["tools"]) == sorted(tools)
    assert doc["bytes"] > 120 << 20 and doc["state"]["tensors"] >= 300
    for name in tools:
        r = doc["tools"][name]
        m = r["median"]
        for k in ("blocking", "durable", "restore"):
            assert m[k] is not None and m[k] > 0, (name, k, m)
        assert m["blocking"] <= m["durable"] + 1e-9, (name, m)
        # every measurement is paired with a fio pass right after it
        assert len(r["fio_write"]) == len(r["durable"]) and len(r["fio_read"]) == len(r["restore"])
        for k in ("blocking", "durable", "restore"):
            assert r["ratio"][k] is not None and r["ratio"][k] > 0, (name, k, r["ratio"])
        alloc, _apparent = r["disk"]
        assert alloc >= 0.9 * doc["bytes"], (name, r["disk"], doc["bytes"])
        row = [ln for ln in p.stdout.splitlines()
               if ln.startswith((f"| {name} |", f"| {name}: load() |"))]
        assert row and "not available" not in row[0], (name, p.stdout)
        if name == "tierd":     # the zero-copy restore has its own row
            assert m["restore_open"] is not None and m["restore_open"] > 0, m
            assert "| tierd: open() (zero-copy restore) |" in p.stdout, p.stdout
    for base in ("memcpy", "fio_write", "fio_read"):
        assert doc["median"][base] > 0
    if "tierd" in tools:
        assert "PASS" in p.stdout or "FAIL" in p.stdout
    text = results.read_text()
    assert "checkpoint save/restore" in text and "- machine:" in text
    assert "bench_checkpoint.py --quick --runs 1" in text
    assert _leftovers() <= before        # data dir and the loop's shared file removed


def test_bench_checkpoint_missing_package_is_reported(python_env, tmp_path):
    """A tool whose package is missing is reported "not available", with the reason."""
    stub = tmp_path / "stub"            # hides torch from the child
    stub.mkdir()
    (stub / "torch.py").write_text("raise ImportError('hidden for the test')\n")
    env = dict(python_env)
    env["PYTHONPATH"] = str(stub) + os.pathsep + env["PYTHONPATH"]
    p = subprocess.run([sys.executable, BENCH, "--size", "16MiB", "--runs", "1",
                        "--tools", "torch.save,dcp.async_save"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    assert "| torch.save | not available: torch not installed |" in p.stdout, p.stdout
    assert "| dcp.async_save | not available: torch not installed |" in p.stdout, p.stdout
    assert "| memcpy of the state (baseline) |" in p.stdout


def _bench_module():
    """perf/bench_checkpoint.py as a module (perf/ is not a package)."""
    sys.path.insert(0, os.path.join(REPO, "perf"))
    try:
        import bench_checkpoint
    finally:
        sys.path.remove(os.path.join(REPO, "perf"))
    return bench_checkpoint


def test_state_shapes_and_mutation():
    import numpy as np
    b = _bench_module()
    state, info = b.make_state(8 << 20, use_torch=False)
    assert abs(info["bytes"] - (8 << 20)) < 0.1 * (8 << 20)
    assert info["tensors"] == 3 * (1 + 12 * 10 + 1)
    before = {p: b.as_bytes(t).copy() for p, t in b.leaves(state)}
    b.mutate(state, 5)
    for p, t in b.leaves(state):
        cur = b.as_bytes(t)
        if cur.size > 4096:
            assert not np.array_equal(cur, before[p]), p   # every chunk changes
        assert np.isfinite(np.asarray(t, dtype=np.float32)).all(), p
    b.verify(state, state)


def test_bench_checkpoint_balances_the_tool_order():
    """Every tool runs right after each other tool equally often (one left a
    measured after-effect on the next tool's blocking time), and first once."""
    bench_checkpoint = _bench_module()
    for tools in (list(bench_checkpoint.ALL_TOOLS), ["a", "b", "c"], ["a", "b"], ["a"]):
        n = len(tools)
        rows = 2 * n if n % 2 else n
        orders = [bench_checkpoint.run_order(tools, rep) for rep in range(rows)]
        assert all(sorted(o) == sorted(tools) for o in orders)
        pairs = Counter((o[i - 1], o[i]) for o in orders for i in range(1, n))
        want = 2 if n % 2 else 1
        assert all(pairs[(a, b)] == want for a in tools for b in tools if a != b), (tools, orders)
        assert Counter(o[0] for o in orders) == Counter({t: want for t in tools})
    assert bench_checkpoint.run_order([], 5) == []
