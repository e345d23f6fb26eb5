"""Fixtures for the client tests. Every client test talks to the real daemon
(`daemon`, `daemon_factory` from tests/conftest.py); only faults that a real
daemon cannot produce (a socket that never answers) use a bare socket.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="tdc-", dir="/tmp")  # AF_UNIX paths max 108 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)
