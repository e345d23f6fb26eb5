"""Fixtures for the client tests: a fake in-process daemon for pure unit tests.

Integration tests use the real daemon from tests/conftest.py (`daemon`,
`daemon_factory`).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_daemon import FakeDaemon  # noqa: E402


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="tdc-", dir="/tmp")  # AF_UNIX paths max 108 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(sockdir):
    f = FakeDaemon(os.path.join(sockdir, "fake.sock")).start()
    yield f
    f.stop()
