"""leafbn.train.xla_cache: one persistent-cache folder per CPU model, feature set and XLA_FLAGS."""

import os
import platform
from pathlib import Path

from leafbn.train.xla_cache import cpu_key, xla_cache_dir


def test_the_xla_cache_keeps_one_folder_per_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("LEAFBN_XLA_CACHE", str(tmp_path))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    here = xla_cache_dir()
    assert here == tmp_path / cpu_key() and here.name.startswith(platform.machine())
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=SSE4_2")  # code built for a narrower CPU
    assert xla_cache_dir() != here
    monkeypatch.delenv("XLA_FLAGS")
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: real(self, *a, **k).replace("avx", "xyz"))
    assert xla_cache_dir() != here  # another CPU's feature flags
    monkeypatch.setenv("LEAFBN_XLA_CACHE", "off")
    assert xla_cache_dir() is None


def test_xla_options_are_added_once_and_a_users_own_setting_wins(monkeypatch):
    from leafbn.train.xla_cache import XLA_OPTIONS, use_xla_options

    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    use_xla_options()
    use_xla_options()
    assert os.environ["XLA_FLAGS"].split() == ["--xla_cpu_max_isa=AVX2", *XLA_OPTIONS]
    name = XLA_OPTIONS[0].split("=")[0]
    monkeypatch.setenv("XLA_FLAGS", f"{name}=false")
    use_xla_options()
    assert os.environ["XLA_FLAGS"] == f"{name}=false"
