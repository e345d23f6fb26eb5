"""Config: the shipped file parses, defaults work with no file, bad input names the key."""
from __future__ import annotations

import os

import pytest

from tierd_daemon import config
from tierd_daemon.config import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_builtin_default_needs_no_file(monkeypatch, tmp_path):
    monkeypatch.delenv("TIERD_CONFIG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    cfg = config.load(None)
    assert cfg.data_dir == str(tmp_path / "tierd")
    assert set(cfg.store.namespaces) == {"default", "cache"}
    assert cfg.store.namespaces["default"].durable and not cfg.store.namespaces["cache"].durable
    assert 256 << 20 <= cfg.store.capacity <= 4 << 30
    assert cfg.dram.keep_warm == "auto" and cfg.dram.keep_warm_interval_s == 5.0


def test_shipped_config_parses():
    cfg = config.load(os.path.join(REPO, "config", "tierd.toml"))
    assert cfg.store.max_io_bytes == 1 << 20
    assert cfg.store.file_size == 64 << 30


def test_env_var_is_used(monkeypatch, tmp_path):
    p = tmp_path / "t.toml"
    p.write_text('[store]\ncapacity = "300MiB"\n')
    monkeypatch.setenv("TIERD_CONFIG", str(p))
    assert config.load(None).store.capacity == 300 << 20


@pytest.mark.parametrize("text, needle", [
    ("[store]\ncapacty = 1\n", "unknown key 'capacty'"),
    ("[store]\ncapacity = \"lots\"\n", "store.capacity"),
    ("[store]\nengine = \"spdk\"\n", "engine"),
    ("[store]\nqueue_depth = 0\n", "queue_depth"),
    ("[store]\nprewrite = \"yes\"\n", "prewrite"),
    ("bogus = 1\n", "unknown key 'bogus'"),
    ("[namespaces.x]\ncompression = \"lz4\"\n", "compression"),
    ("[namespaces.x]\ndurabel = true\n", "unknown key 'durabel'"),
    ("[namespaces.x]\nhuge_pages = \"no\"\n", "namespaces.x.huge_pages"),
    ("[namespaces.\"bad name\"]\n", "namespace name"),
    ("log_level = \"loud\"\n", "log_level"),
    ("[dram]\nkeep_warm = \"sometimes\"\n", "dram.keep_warm"),
    ("[dram]\nkeep_warm_interval_s = 0\n", "dram.keep_warm_interval_s"),
    ("[dram]\nkeep_warm = true\n", "dram.keep_warm"),
    ("[dram]\nkeepwarm = \"on\"\n", "unknown key 'keepwarm'"),
    ("[store\n", "not valid TOML"),
])
def test_bad_config_names_the_key(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        config.load(str(p))


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(str(tmp_path / "nope.toml"))
