"""Tests of leafbn.data.loaders: the re-alignment, the embedded copy, the loaders, the split, bad files."""

from __future__ import annotations

import gzip
import importlib.util
import shutil
import time
import urllib.error
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sklearn.datasets

from leafbn.data import files as datafiles
from leafbn.data import loaders as ld
from leafbn.data import uci
from leafbn.data.loaders import DataError, LeafData

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "leafbn" / "data" / "datasets"
EMBEDDED_SHA256 = "e10721ccbfebcfc05f28fbcabc310e2e0d8d8c9b144917df4d68df33e68de2bf"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def embedded() -> LeafData:
    return ld.load_embedded()


@pytest.fixture(scope="module")
def kaggle_frames(kaggle_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(kaggle_dir / "train.csv"), pd.read_csv(kaggle_dir / "test.csv")


def _nearest_rows(X: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the nearest row of X (Euclidean) and their largest absolute difference.

    Also asserts the match is unambiguous: every other row is more than 1e-3 away.
    """
    X = X.astype(np.float64)
    d2 = (queries**2).sum(1)[:, None] + (X**2).sum(1)[None, :] - 2.0 * queries @ X.T
    best = np.argsort(d2, axis=1)[:, :2]
    second = np.sqrt(np.maximum(np.take_along_axis(d2, best[:, 1:], axis=1), 0.0))
    assert (second > 1e-3).all(), "a Kaggle row is close to two UCI leaves"
    rows = best[:, 0]
    return rows, np.abs(X[rows] - queries).max(axis=1)


# ---------------------------------------------------------------------------------------------
# The committed files are what the scripts produce
# ---------------------------------------------------------------------------------------------
def test_embedded_copy_equals_build_output(uci_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "leaf_uci.csv.gz"
    _script("build_embedded_data").main(["--uci-dir", str(uci_dir), "--out", str(out)])
    shipped = gzip.decompress((DATASETS / "leaf_uci.csv.gz").read_bytes())
    assert gzip.decompress(out.read_bytes()) == shipped
    assert (DATASETS / "leaf_uci.csv.gz").stat().st_size < 1_000_000


def test_alignment_table_equals_derivation(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "uci_alignment.csv"
    _script("derive_uci_alignment").main(["--leaf-dir", str(kaggle_dir.parent), "--out", str(out)])
    assert out.read_bytes() == (DATASETS / "uci_alignment.csv").read_bytes()


# ---------------------------------------------------------------------------------------------
# The alignment is proven against Kaggle (ground truth: one Kaggle row = one leaf)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kaggle_match(embedded: LeafData, kaggle_frames) -> tuple[np.ndarray, np.ndarray]:
    """Nearest embedded row (and its distance) of each Kaggle train row, then each test row."""
    train, test = kaggle_frames
    both = pd.concat([train, test])[list(datafiles.FEATURE_NAMES)].to_numpy(np.float64)
    return _nearest_rows(embedded.X, both)


def test_every_kaggle_train_row_is_the_same_leaf(embedded, kaggle_frames, kaggle_match) -> None:
    train, _ = kaggle_frames
    rows, gaps = (a[: len(train)] for a in kaggle_match)
    assert gaps.max() <= 1e-4, f"{(gaps > 1e-4).sum()} Kaggle train rows not in the embedded set"
    species = np.array(embedded.classes)[embedded.y[rows]]
    assert list(species) == list(train.species)


def test_every_kaggle_test_row_appears_and_all_rows_are_covered(kaggle_frames, kaggle_match) -> None:
    train, test = kaggle_frames
    rows, gaps = kaggle_match
    assert len(rows) == len(train) + len(test) == 1584
    assert gaps[len(train) :].max() <= 1e-4  # every test row is an embedded leaf
    assert sorted(rows) == list(range(1584))  # a bijection: 990 + 594 Kaggle leaves = 1584


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------
def test_embedded(embedded: LeafData) -> None:
    assert embedded.X.shape == (1584, 192) and embedded.X.dtype == np.float32
    assert embedded.y.dtype == np.int64
    assert np.bincount(embedded.y).tolist() == [16] * 99
    assert embedded.classes[0] == "Acer_Capillipes" and "Acer_Opalus" in embedded.classes
    assert embedded.source == "embedded"
    assert embedded.record() == {
        "source": "embedded",
        "rows": 1584,
        "classes": 99,
        "features": 192,
        "sha256": EMBEDDED_SHA256,
    }
    assert "CC BY 4.0" in datafiles.CITATION and "241" in datafiles.CITATION


def test_kaggle_train(kaggle_train_csv: Path, embedded: LeafData) -> None:
    path = kaggle_train_csv
    data = ld.load_kaggle(path)
    assert data.X.shape == (990, 192) and data.X.dtype == np.float32
    assert np.bincount(data.y).tolist() == [10] * 99
    assert data.classes == embedded.classes
    assert data.source == f"kaggle:{path.resolve()}"
    assert ld.load(path.parent).record() == data.record()


def test_uci_folder_equals_embedded(uci_dir: Path, embedded: LeafData) -> None:
    data = ld.load(str(uci_dir))
    assert data.source == f"uci:{uci_dir.resolve()}"
    assert np.array_equal(data.X, embedded.X) and np.array_equal(data.y, embedded.y)
    assert data.classes == embedded.classes
    assert data.record()["sha256"] == EMBEDDED_SHA256


def test_load_honours_env(kaggle_train_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEAFBN_DATA", raising=False)
    assert ld.load().source == "embedded"
    monkeypatch.setenv("LEAFBN_DATA", str(kaggle_train_csv))
    assert ld.load().source.startswith("kaggle:")
    assert ld.load("embedded").source == "embedded"  # an explicit spec wins


# ---------------------------------------------------------------------------------------------
# Bad files: one-line DataError naming the file and the problem
# ---------------------------------------------------------------------------------------------
def _synthetic_kaggle(path: Path, classes: int = 3, per_class: int = 4) -> Path:
    """A small Kaggle-format CSV with random (synthetic) values."""
    rng = np.random.default_rng(0)
    lines = [",".join(datafiles.KAGGLE_HEADER)]
    for i in range(classes * per_class):
        values = ",".join(f"{v:.6f}" for v in rng.random(192))
        lines.append(f"{i + 1},Species_{i % classes},{values}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _edit_line(path: Path, number: int, edit) -> None:
    lines = path.read_text().splitlines()
    fields = lines[number - 1].split(",")
    lines[number - 1] = ",".join(edit(fields))
    path.write_text("\n".join(lines) + "\n")


def _raises(path: Path, *fragments: str, loader=ld.load) -> str:
    with pytest.raises(DataError) as err:
        loader(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_synthetic_kaggle_file_loads(tmp_path: Path) -> None:
    data = ld.load(_synthetic_kaggle(tmp_path / "ok.csv"))
    assert data.X.shape == (12, 192) and data.classes == ("Species_0", "Species_1", "Species_2")


def test_missing_file(tmp_path: Path) -> None:
    _raises(tmp_path / "nope.csv", "no such file", loader=ld.load_kaggle)
    _raises(tmp_path / "nope.csv", "no such file or folder")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    _raises(tmp_path / "empty.csv", "file is empty")
    (tmp_path / "header_only.csv").write_text(",".join(datafiles.KAGGLE_HEADER) + "\n")
    _raises(tmp_path / "header_only.csv", "no data rows")


def test_missing_and_extra_columns(tmp_path: Path) -> None:
    path = _synthetic_kaggle(tmp_path / "missing.csv")
    for number in range(1, 14):
        _edit_line(path, number, lambda f: f[:-1])
    _raises(path, "193 columns, expected 194", "missing 'texture64'")
    path = _synthetic_kaggle(tmp_path / "extra.csv")
    for number in range(1, 14):
        _edit_line(path, number, lambda f, n=number: [*f, "foo" if n == 1 else "0.5"])
    _raises(path, "extra 'foo'")


def test_wrong_field_count_names_the_line(tmp_path: Path) -> None:
    path = _synthetic_kaggle(tmp_path / "short.csv")
    _edit_line(path, 5, lambda f: f[:-1])
    _raises(path, "line 5 has 193 fields, expected 194")
    path = _synthetic_kaggle(tmp_path / "long.csv")
    _edit_line(path, 7, lambda f: [*f, "1"])
    _raises(path, "line 7 has 195 fields, expected 194")


def test_non_numeric_cell_names_line_and_column(tmp_path: Path) -> None:
    path = _synthetic_kaggle(tmp_path / "text.csv")
    _edit_line(path, 3, lambda f: [*f[:4], "abc", *f[5:]])
    _raises(path, "line 3, column 5 (margin3) is not a number: 'abc'")
    path = _synthetic_kaggle(tmp_path / "blank.csv")
    _edit_line(path, 4, lambda f: [*f[:-1], ""])
    _raises(path, "line 4, column 194 (texture64) is not a number")


@pytest.mark.parametrize("token", ["nan", "inf", "-Infinity", "NaN"])
def test_non_finite_cell(tmp_path: Path, token: str) -> None:
    path = _synthetic_kaggle(tmp_path / "nonfinite.csv")
    _edit_line(path, 6, lambda f: [*f[:70], token, *f[71:]])
    _raises(path, "line 6, column 71 (shape5) is not finite")


def test_unknown_format_and_folders(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello,world\n1,2\n")
    _raises(tmp_path / "notes.txt", "unknown format")
    _raises(tmp_path, "unknown format", "neither train.csv")
    test_like = tmp_path / "test_like.csv"
    test_like.write_text("id," + ",".join(datafiles.FEATURE_NAMES) + "\n1," + ",".join(["0"] * 192) + "\n")
    _raises(test_like, "no 'species' column")
    binary = tmp_path / "blob.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    _raises(binary, "cannot read")
    with pytest.raises(DataError, match="no such file or folder"):
        ld.load("definitely-not-a-spec")


def _copy_uci(uci_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in datafiles.UCI_FILES.values():
        shutil.copy(uci_dir / name, dest / name)
    return dest


def test_bad_uci_folder(uci_dir: Path, tmp_path: Path) -> None:
    folder = _copy_uci(uci_dir, tmp_path / "uci")
    tex = folder / "data_Tex_64.txt"
    _edit_line(tex, 100, lambda f: f[:-2])
    _raises(tex, "line 100 has 63 fields, expected 65", loader=lambda p: ld.load(p.parent))
    lines = (uci_dir / "data_Tex_64.txt").read_text().splitlines()
    tex.write_text("\n".join(lines[:-1]) + "\n")  # one row short
    _raises(tex, "1598 rows, expected 1599", loader=lambda p: ld.load(p.parent))
    shutil.copy(uci_dir / "data_Tex_64.txt", tex)
    mar = folder / "data_Mar_64.txt"
    _edit_line(mar, 20, lambda f: [f[0], "x", *f[2:]])
    _raises(mar, "line 20, column 2 (margin1) is not a number", loader=lambda p: ld.load(p.parent))
    mar.unlink()
    _raises(mar, "no such file", loader=lambda p: ld.load(p.parent))


def test_uci_folder_with_wrong_species_order(uci_dir: Path, tmp_path: Path) -> None:
    folder = _copy_uci(uci_dir, tmp_path / "uci")
    mar = folder / "data_Mar_64.txt"
    lines = mar.read_text().splitlines()
    mar.write_text("\n".join(lines[16:32] + lines[:16] + lines[32:]) + "\n")  # swap two blocks
    with pytest.raises(DataError, match="row 16 of the margin file is 'Acer Campestre'"):
        ld.load_uci(folder)


# ---------------------------------------------------------------------------------------------
# OpenML
# ---------------------------------------------------------------------------------------------
def test_openml_offline_is_a_one_line_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(**kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        ld.load("openml")
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert message.startswith("openml: data id 1491 (margin): cannot download")
    assert "(offline?); use --data embedded or a local copy" in message and "\n" not in message


def _fake_openml(uci_dir: Path, tamper=None):
    frames = {}
    for group, data_id in datafiles.OPENML_IDS.items():
        _, values = uci.parse_uci_file(uci_dir / datafiles.UCI_FILES[group], group)
        frames[data_id] = pd.DataFrame(values, columns=[f"V{i}" for i in range(1, 65)])
        if tamper is not None:
            frames[data_id] = tamper(group, frames[data_id])

    def fetch(*, data_id, **kwargs):
        return SimpleNamespace(data=frames[data_id])

    return fetch


def test_openml_realigned_with_the_table(uci_dir, embedded, monkeypatch) -> None:
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", _fake_openml(uci_dir))
    data = ld.load_openml()
    assert data.source == "openml" and data.classes == embedded.classes
    assert np.array_equal(data.X, embedded.X) and np.array_equal(data.y, embedded.y)


def test_openml_unexpected_frames(uci_dir, monkeypatch) -> None:
    swapped = _fake_openml(uci_dir, lambda g, f: f.iloc[::-1] if g == "shape" else f)
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", swapped)
    with pytest.raises(DataError, match=r"^openml: data id 1492 \(shape\).*does not apply$"):
        ld.load_openml()
    short = _fake_openml(uci_dir, lambda g, f: f.iloc[:-1] if g == "texture" else f)
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", short)
    with pytest.raises(DataError, match=r"data id 1493 \(texture\): shape \(1598, 64\)"):
        ld.load_openml()


def test_openml_real_call_fails_fast_or_matches(tmp_path: Path, embedded: LeafData) -> None:
    start = time.monotonic()
    try:
        data = ld.load_openml(cache_dir=str(tmp_path))
    except DataError as err:  # offline (this project's CI): must fail quickly, on one line
        assert time.monotonic() - start < 20
        assert str(err).startswith("openml: ")
        assert "\n" not in str(err)
    else:  # online: the download must match the embedded copy
        assert np.allclose(data.X, embedded.X, atol=1e-4)
