"""Fixtures locating the shared leaf data (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRED = (
    "kaggle/train.csv",
    "kaggle/test.csv",
    "uci/data_Mar_64.txt",
    "uci/data_Sha_64.txt",
    "uci/data_Tex_64.txt",
)


@pytest.fixture(scope="session")
def leaf_dir() -> Path:
    """``$LEAFBN_SHARED/data/leaf`` (default ``<repo>/../shared``); fails, never skips, if absent."""
    path = Path(os.environ.get("LEAFBN_SHARED", REPO.parent / "shared")) / "data" / "leaf"
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        pytest.fail(
            f"shared leaf data missing under {path}: {', '.join(missing)}; "
            "set LEAFBN_SHARED to the folder holding data/leaf",
            pytrace=False,
        )
    return path
