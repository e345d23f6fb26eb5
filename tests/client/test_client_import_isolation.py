"""`import tierd` must need only numpy and msgpack: jobs import it on GPU hosts."""
import subprocess
import sys


def test_import_pulls_nothing_heavy(python_env):
    code = ("import tierd, sys; bad = {'lmdb','cffi','zstandard','tierd_daemon'} & set(sys.modules); "
            "assert not bad, bad; tierd.connect; tierd.Client; tierd.Lease")
    r = subprocess.run([sys.executable, "-c", code], env=python_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_exports():
    import tierd
    for name in ("connect", "Client", "Lease", "TierdError", "InvalidArgument", "NotFound",
                 "UnknownNamespace", "StoreFull", "ChecksumError", "UnsupportedFilesystem",
                 "TierFull", "PermissionDenied", "DaemonUnavailable", "ProtocolError",
                 "LeaseExpired", "Busy"):
        assert hasattr(tierd, name), name
