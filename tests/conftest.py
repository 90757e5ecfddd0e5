"""Fixtures locating the leaf data: the shared folder where present, else what may ship with the tests.

``$LEAFBN_SHARED/data/leaf`` (default ``<repo>/../shared/data/leaf``) holds Kaggle's CSVs, which may
not be redistributed, and the UCI files (CC BY 4.0). Where the shared folder exists (as in CI) every
file must be there and nothing skips. In a fresh clone without it, the UCI files come from
``tests/fixtures/uci`` (compressed), Kaggle-format CSVs are written from the embedded copy (which holds
the very rows of Kaggle's train and test files), and only the tests that compare against Kaggle's
own files skip, each saying how to enable them.
"""

from __future__ import annotations

import lzma
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_ROOT = Path(os.environ.get("LEAFBN_SHARED", REPO.parent / "shared"))
SHIPPED_UCI = REPO / "tests" / "fixtures" / "uci"
REQUIRED = (
    "kaggle/train.csv",
    "kaggle/test.csv",
    "uci/data_Mar_64.txt",
    "uci/data_Sha_64.txt",
    "uci/data_Tex_64.txt",
)
NO_KAGGLE = (
    f"Kaggle's CSVs are not in this clone and {SHARED_ROOT} does not exist: "
    "set LEAFBN_SHARED to the folder holding data/leaf/kaggle to run this test"
)


@pytest.fixture(scope="session")
def shared_leaf() -> Path | None:
    """The shared ``data/leaf`` folder, or None where the shared root does not exist.

    Fails (never skips) if the root exists but a file is missing: there a skip would hide a broken setup.
    """
    if not SHARED_ROOT.exists():
        return None
    path = SHARED_ROOT / "data" / "leaf"
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        pytest.fail(
            f"shared leaf data missing under {path}: {', '.join(missing)}; "
            "set LEAFBN_SHARED to the folder holding data/leaf",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def kaggle_dir(shared_leaf: Path | None) -> Path:
    """Kaggle's own ``train.csv`` and ``test.csv``; skips, with the way to enable it, where absent."""
    if shared_leaf is None:
        pytest.skip(NO_KAGGLE)
    return shared_leaf / "kaggle"


@pytest.fixture(scope="session")
def uci_dir(shared_leaf: Path | None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three UCI files: the shared copy, or the one shipped (compressed) with the tests."""
    if shared_leaf is not None:
        return shared_leaf / "uci"
    folder = tmp_path_factory.mktemp("uci")
    for packed in SHIPPED_UCI.glob("*.xz"):
        (folder / packed.stem).write_bytes(lzma.decompress(packed.read_bytes()))
    return folder


def write_kaggle_csv(path: Path, per_species: int = 10) -> Path:
    """A train.csv in Kaggle's format (``id,species,margin1..texture64``) from the embedded copy.

    The first ``per_species`` leaves of each species (Kaggle's train file has 10), species named
    as Kaggle names them, ids from 1. Returns ``path``.
    """
    from leafbn.data import files as datafiles
    from leafbn.data import loaders as ld

    embedded = ld.load_embedded()
    rows = np.concatenate(
        [np.flatnonzero(embedded.y == c)[:per_species] for c in range(len(embedded.classes))]
    )
    lines = [",".join(datafiles.KAGGLE_HEADER)]
    for i, row in enumerate(rows, start=1):
        values = ",".join(f"{v:.6g}" for v in embedded.X[row])
        lines.append(f"{i},{embedded.classes[embedded.y[row]]},{values}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def kaggle_train_csv(shared_leaf: Path | None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kaggle's train.csv where the shared folder is present, else one written from the embedded copy."""
    if shared_leaf is not None:
        return shared_leaf / "kaggle" / "train.csv"
    return write_kaggle_csv(tmp_path_factory.mktemp("kaggle") / "train.csv")
