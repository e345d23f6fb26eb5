import tempfile

import pytest

@pytest.fixture
def tiny_job(tmp_path):
    """Write a job file under tmp_path and return its path."""
    def make(body: str, name: str = "job.fio") -> str:
        p = tmp_path / name
        p.write_text(body)
        return str(p)
    return make

@pytest.fixture
def data_dir():
    """A directory on /tmp (ext4 here, so O_DIRECT works), removed afterwards."""
    import shutil
    d = tempfile.mkdtemp(prefix="tierd-perf-test-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)
