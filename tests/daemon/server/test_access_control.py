"""Invariant 4: a client sees only the namespaces its uid/gid may use.

The daemon runs as root (as the tests do); the client is a forked child that
drops to uid 65534 (nobody) with a chosen group set, so SO_PEERCRED reports
a real other user. (A fork, not a new interpreter: /root, where Python
lives here, is not readable by nobody.)
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest

from rawwire import RawConn

GROUP = 4242
NOBODY = 65534

NAMESPACES = f"""
[namespaces.private]
dram_bytes = "8MiB"
allow_uids = [0]

[namespaces.shared]
dram_bytes = "8MiB"
allow_gids = [{GROUP}]
"""


def as_nobody(groups, fn):
    """Run fn() in a forked child as uid nobody with `groups`; return its JSON result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(r)
            os.setgroups(groups)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = fn()
        except BaseException as e:  # report, don't raise into pytest's stack
            out, code = {"crash": f"{type(e).__name__}: {e}"}, 1
        os.write(w, json.dumps(out).encode())
        os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.fixture
def acl_daemon(daemon_factory):
    if os.getuid() != 0:
        pytest.skip("needs root to switch to another uid")
    # Every directory up to the socket must be traversable by the other uid
    # (pytest's own tmp tree is 0700), so the socket's mode is what decides.
    sockdir = tempfile.mkdtemp(prefix="td-acl-", dir="/tmp")
    os.chmod(sockdir, 0o755)
    yield daemon_factory(socket=os.path.join(sockdir, "run", "tierd.sock"), extra=NAMESPACES,
                         server_extra=f'socket_group = "{GROUP}"\nsocket_mode = "0660"')
    shutil.rmtree(sockdir, ignore_errors=True)


def test_socket_mode_and_group(acl_daemon):
    st = os.stat(acl_daemon.socket)
    assert st.st_mode & 0o777 == 0o660 and st.st_gid == GROUP
    # The directory the daemon made for it lets the group in, nobody else.
    d = os.stat(os.path.dirname(acl_daemon.socket))
    assert d.st_mode & 0o777 == 0o750 and d.st_gid == GROUP


def test_outsider_cannot_connect(acl_daemon):
    def connect():
        try:
            RawConn(acl_daemon.socket)
            return {"connected": True}
        except PermissionError as e:
            return {"connected": False, "errno": e.errno}
    assert as_nobody([], connect) == {"connected": False, "errno": 13}


def test_forbidden_namespace_is_denied_and_its_arena_never_sent(acl_daemon):
    def probe():
        c = RawConn(acl_daemon.socket)
        out = {"visible": c.hello["namespaces"], "codes": {}}
        for op, args in [("open_ns", {"ns": "private"}),
                         ("alloc", {"ns": "private", "items": [[b"k", 10]]}),
                         ("get", {"ns": "private", "keys": [b"k"]}),
                         ("delete", {"ns": "private", "keys": [b"k"]}),
                         ("contains", {"ns": "private", "keys": [b"k"]}),
                         ("list", {"ns": "private"}),
                         ("stat", {"ns": "private", "key": b"k"}),
                         ("flush", {"ns": "private"}),
                         ("commit", {"ns": "private", "tokens": [1]}),
                         ("ns_create", {"ns": "mine", "policy": {}})]:
            rep = c.call(op, **args)
            out["codes"][op] = rep["error"]["code"] if not rep["ok"] else "OK"
        out["fds_after_denials"] = len(c.fds)
        out["status_namespaces"] = sorted(c.call("status")["result"]["namespaces"])
        rep = c.call("open_ns", ns="shared")
        out["shared_ok"] = rep["ok"]
        out["fds_after_shared"] = len(c.fds)
        c.close()
        return out

    res = as_nobody([GROUP], probe)
    assert "crash" not in res, res
    assert res["visible"] == ["cache", "default", "shared"]
    assert set(res["codes"].values()) == {"PERMISSION_DENIED"}, res["codes"]
    assert res["fds_after_denials"] == 0, "an arena fd reached a client that may not see it"
    assert res["status_namespaces"] == ["cache", "default", "shared"]
    assert res["shared_ok"] and res["fds_after_shared"] == 1


def test_root_sees_everything(acl_daemon):
    c = RawConn(acl_daemon.socket)
    assert c.hello["namespaces"] == ["cache", "default", "private", "shared"]
    assert c.call("open_ns", ns="private")["ok"] and len(c.fds) == 1
    c.close()
