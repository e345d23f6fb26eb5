"""systemd/tierd.service, tierd.sysusers, tierd.tmpfiles: syntax and the
options the daemon relies on.

`systemd-analyze verify` (Debian/Ubuntu package: systemd) is the real parser;
tests that need it skip, naming it, where it is not installed (containers,
macOS). The option checks below it run everywhere.
"""
from __future__ import annotations

import os
import sys
import shutil
import stat
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(REPO, "systemd", "tierd.service")
SYSUSERS = os.path.join(REPO, "systemd", "tierd.sysusers")
TMPFILES = os.path.join(REPO, "systemd", "tierd.tmpfiles")


def parse_unit(path: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values...]}}.

    By hand rather than configparser: systemd keys are case-sensitive, may
    repeat (each ExecStart=/SystemCallFilter= line adds), use no %-interpolation
    and accept '\\' line continuations.
    """
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    pending = ""
    with open(path) as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("[") and s.endswith("]"):
                current = sections.setdefault(s[1:-1], {})
                continue
            assert current is not None, f"{path}: {s!r} outside a section"
            key, sep, value = s.partition("=")
            assert sep, f"{path}: {s!r} is not KEY=VALUE"
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit():
    return parse_unit(UNIT)


def test_service_options(unit):
    svc = unit["Service"]

    def one(key):
        assert key in svc, f"[Service] {key}= missing"
        assert len(svc[key]) == 1, f"[Service] {key}= given {len(svc[key])} times"
        return svc[key][0]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("ExecStart") == "/usr/bin/tierd serve --config /etc/tierd/tierd.toml"
    assert one("WatchdogSec") == "30s"
    assert one("Restart") == "on-failure"
    assert one("RestartSec") == "2s"
    assert one("TimeoutStopSec") == "120s"
    assert one("LimitMEMLOCK") == "infinity"
    assert one("LimitNOFILE") == "65536"
    assert one("User") == "tierd" and one("Group") == "tierd"
    assert one("RuntimeDirectory") == "tierd" and one("RuntimeDirectoryMode") == "0750"
    assert one("StateDirectory") == "tierd" and one("StateDirectoryMode") == "0700"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute",
                "RestrictRealtime"):
        assert one(key) == "true", key
    assert one("ProtectSystem") == "strict"
    assert one("SystemCallArchitectures") == "native"
    assert set(one("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    # io_uring must stay allowed, or the engine silently runs on the threadpool.
    allow = [v.split() for v in svc["SystemCallFilter"] if not v.startswith("~")]
    deny = [v[1:].split() for v in svc["SystemCallFilter"] if v.startswith("~")]
    assert len(allow) == 1 and "@system-service" in allow[0]
    for call in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        assert call in allow[0], call
        assert not any(call in d for d in deny), call
    assert one("SystemCallErrorNumber") == "EPERM"
    # The daemon's defaults must resolve to the unit's directories (config.py:
    # data_dir = $XDG_DATA_HOME/tierd, socket = $XDG_RUNTIME_DIR/tierd/tierd.sock).
    env = dict(kv.split("=", 1) for v in svc["Environment"] for kv in v.split())
    assert os.path.join(env["XDG_DATA_HOME"], one("StateDirectory")) == "/var/lib/tierd"
    assert os.path.join(env["XDG_RUNTIME_DIR"], one("RuntimeDirectory"),
                        "tierd.sock") == "/run/tierd/tierd.sock"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_defaults_land_in_unit_directories(unit, monkeypatch):
    """Under the unit's Environment=, config.py's defaults are /var/lib/tierd
    and /run/tierd/tierd.sock: a tierd.toml that sets neither still works."""
    from tierd_daemon import config
    env = dict(kv.split("=", 1) for v in unit["Service"]["Environment"] for kv in v.split())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert config.default_data_dir() == "/var/lib/tierd"
    assert config.default_socket() == "/run/tierd/tierd.sock"


def test_sysusers_and_tmpfiles_content():
    def lines(path):
        with open(path) as f:
            return [ln.split() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]

    su = lines(SYSUSERS)
    assert ["g", "tierd", "-"] in su
    user = next(ln for ln in su if ln[:2] == ["u", "tierd"])
    assert " ".join(user[2:]) == '- "tierd storage daemon" /var/lib/tierd'
    tf = lines(TMPFILES)
    assert ["d", "/var/lib/tierd", "0700", "tierd", "tierd", "-"] in tf
    assert any(ln[:2] == ["d", "/etc/tierd"] for ln in tf)


# ---- the real parser -------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze not installed (Debian/Ubuntu: apt-get install systemd)")


def _verify(path: str) -> subprocess.CompletedProcess:
    # --man=no: the unit names no man pages to look for.
    # --recursive-errors=no: judge this unit only, not whether targets it
    # names (multi-user.target) are present in a minimal container.
    cmd = [SYSTEMD_ANALYZE, "verify", "--man=no", "--recursive-errors=no", path]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if "unrecognized option" in r.stderr:  # systemd < 250: no --recursive-errors
        cmd.remove("--recursive-errors=no")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return r


def _copy_with_true(tmp_path, text: str | None = None) -> str:
    """The unit with ExecStart pointed at an existing binary.

    verify checks that ExecStart's program exists and is executable; tierd is
    not installed at /usr/bin/tierd on a build machine, and that is not what
    this test is about: it validates the syntax and every option.
    """
    if text is None:
        with open(UNIT) as f:
            text = f.read()
    true = shutil.which("true") or "/bin/true"
    out = []
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            # Keep the arguments; only the program changes.
            args = line.partition("=")[2].split(None, 1)[1:]
            line = " ".join([f"ExecStart={true}", *args])
        out.append(line)
    path = tmp_path / "tierd.service"  # verify wants the real unit name
    path.write_text("\n".join(out) + "\n")
    return str(path)


@needs_analyze
def test_systemd_analyze_verify(tmp_path):
    r = _verify(_copy_with_true(tmp_path))
    # verify exits 0 on unknown keys and unparsable values (it only warns), so
    # any line about our unit is a failure too.
    complaints = [ln for ln in (r.stdout + r.stderr).splitlines() if "tierd.service" in ln]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr


@needs_analyze
def test_verify_catches_mistakes(tmp_path):
    """The check above is not vacuous: a typo'd key and a bad value are reported."""
    with open(UNIT) as f:
        text = f.read()
    text = text.replace("WatchdogSec=30s", "WatchdogSecs=30s").replace(
        "LimitMEMLOCK=infinity", "LimitMEMLOCK=infinit")
    r = _verify(_copy_with_true(tmp_path, text))
    out = r.stdout + r.stderr
    assert "WatchdogSecs" in out
    assert "infinit" in out


@needs_analyze
def test_io_uring_allowed_by_filter():
    """Whatever @system-service holds on this systemd, our filter allows io_uring."""
    r = subprocess.run([SYSTEMD_ANALYZE, "syscall-filter", "@system-service"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.skip(f"systemd-analyze syscall-filter failed: {r.stderr.strip()}")
    uring = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
    filters = parse_unit(UNIT)["Service"]["SystemCallFilter"]
    allowed = set(r.stdout.split())
    for value in filters:
        if value.startswith("~"):
            for group in value[1:].split():
                if not group.startswith("@"):
                    continue
                d = subprocess.run([SYSTEMD_ANALYZE, "syscall-filter", group],
                                   capture_output=True, text=True, timeout=60)
                assert d.returncode == 0, d.stderr
                assert not uring & set(d.stdout.split()), f"{group} denies io_uring"
        else:
            allowed |= set(value.split())
    assert uring <= allowed


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None
                    or shutil.which("systemd-tmpfiles") is None,
                    reason="systemd-sysusers/systemd-tmpfiles not installed "
                           "(Debian/Ubuntu: apt-get install systemd)")
@pytest.mark.skipif(os.geteuid() != 0, reason="creating tierd-owned files under --root needs root")
def test_sysusers_then_tmpfiles_in_temp_root(tmp_path):
    """Apply both files to an empty root, as a package postinst would."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    r = subprocess.run(["systemd-sysusers", f"--root={root}", SYSUSERS],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    entry = next(ln for ln in passwd if ln.startswith("tierd:")).split(":")
    uid, gid = int(entry[2]), int(entry[3])
    assert entry[4] == "tierd storage daemon" and entry[5] == "/var/lib/tierd"
    assert any(ln.startswith(f"tierd:x:{gid}:") for ln in
               (root / "etc" / "group").read_text().splitlines())

    # tmpfiles resolves tierd in <root>/etc/passwd, so the owner is the new uid.
    r = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", TMPFILES],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    st = os.stat(root / "var" / "lib" / "tierd")
    assert stat.S_IMODE(st.st_mode) == 0o700 and (st.st_uid, st.st_gid) == (uid, gid)
    st = os.stat(root / "etc" / "tierd")
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and st.st_gid == gid


# ---- MemoryDenyWriteExecute=true -----------------------------------------

_MDWE_CHILD = r'''
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    print("SKIP: prctl(PR_SET_MDWE) unsupported (Linux >= 6.3 needed), errno",
          ctypes.get_errno())
    sys.exit(0)
try:  # the switch really is on
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X mapping still allowed after PR_SET_MDWE")
except OSError:
    pass
import urllib.request
import numpy as np
import zstandard
from tierd_daemon.store.config import StoreConfig
from tierd_daemon.store.store import Store
from tierd_daemon.metrics import Metrics
s = Store.open(sys.argv[1], StoreConfig(capacity=64 << 20, file_size=64 << 20))
data = np.arange(300_000, dtype=np.uint32)
s.put("default", "k", data)
assert bytes(s.get("default", "k")) == data.tobytes()
assert zstandard.decompress(zstandard.compress(b"x" * 99_999)) == b"x" * 99_999
m = Metrics(lambda: {"clients": 1})
host, port = m.start_http("127.0.0.1:0")
assert b"tierd_clients 1.0" in urllib.request.urlopen(f"http://{host}:{port}/metrics").read()
m.stop()
s.close()
print("OK engine ran under MDWE")
'''


def test_runs_under_memory_deny_write_execute(disk_dir, python_env):
    """The unit sets MemoryDenyWriteExecute=true; prove the daemon's stack
    (native cffi engine, LMDB, zstd, numpy, metrics) never needs a W+X page.

    prctl(PR_SET_MDWE, REFUSE_EXEC_GAIN) is the kernel's own form of the same
    rule (recent systemd releases use it for MemoryDenyWriteExecute=). Something that
    builds code at run time (a cffi ABI-mode callback, a ctypes CFUNCTYPE, a
    JIT) fails here instead of on a production host.
    """
    r = subprocess.run([sys.executable, "-c", _MDWE_CHILD, str(disk_dir / "store")],
                       capture_output=True, text=True, timeout=120, env=python_env)
    if r.stdout.startswith("SKIP: "):
        pytest.skip(r.stdout.strip()[6:])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK engine ran under MDWE" in r.stdout
