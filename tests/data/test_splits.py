"""leafbn.data.splits: stratified, disjoint, reproducible splits, standardised on the training part only."""

from __future__ import annotations

import math

import numpy as np
import pytest

from leafbn.data import loaders as ld
from leafbn.data import splits
from leafbn.data.files import DataError, LeafData


@pytest.fixture(scope="module")
def embedded() -> LeafData:
    return ld.load_embedded()


def test_split_stratified_disjoint_deterministic(embedded: LeafData) -> None:
    s = splits.split(embedded, val_fraction=0.2, split_seed=0, standardize=False)
    assert s.x_train.dtype == s.x_val.dtype == np.float32
    assert s.y_train.dtype == s.y_val.dtype == np.int32
    assert len(s.y_train) + len(s.y_val) == 1584 and len(s.y_val) == 317
    counts = np.bincount(embedded.y)
    val_counts = np.bincount(s.y_val, minlength=99)
    assert np.all(np.abs(val_counts - 0.2 * counts) <= 1)
    train_rows = {r.tobytes() for r in s.x_train}
    assert not train_rows & {r.tobytes() for r in s.x_val}
    assert len(train_rows) == len(s.x_train)
    again = splits.split(embedded, val_fraction=0.2, split_seed=0, standardize=False)
    assert np.array_equal(again.x_val, s.x_val) and np.array_equal(again.y_train, s.y_train)
    other = splits.split(embedded, val_fraction=0.2, split_seed=1, standardize=False)
    assert not np.array_equal(other.y_val, s.y_val)


def test_split_standardizes_on_train_only(embedded: LeafData) -> None:
    raw = splits.split(embedded, split_seed=3, standardize=False)
    s = splits.split(embedded, split_seed=3)
    assert s.standardized and not raw.standardized
    assert np.abs(s.x_train.mean(axis=0)).max() < 1e-4
    assert np.abs(s.x_val.mean(axis=0)).max() > 0.05  # not forced to 0
    mean = raw.x_train.astype(np.float64).mean(axis=0)
    std = raw.x_train.astype(np.float64).std(axis=0)
    expected = (raw.x_val - mean) / np.where(std == 0, 1.0, std)
    assert np.allclose(s.x_val, expected, atol=1e-4)


def test_split_rejects_small_class_and_bad_fraction(embedded: LeafData) -> None:
    keep = np.ones(len(embedded.y), bool)
    keep[np.flatnonzero(embedded.y == 5)[1:]] = False
    small = LeafData(
        X=embedded.X[keep].copy(), y=embedded.y[keep].copy(), classes=embedded.classes, source="tiny.csv"
    )
    with pytest.raises(DataError) as err:
        splits.split(small)
    message = str(err.value)
    assert "tiny.csv" in message and embedded.classes[5] in message
    assert "1 sample" in message and "at least 2" in message and "\n" not in message
    with pytest.raises(DataError, match="each part needs one row per class"):
        splits.split(embedded, val_fraction=0.01)
    with pytest.raises(ValueError, match="val_fraction"):
        splits.split(embedded, val_fraction=1.0)


def test_distinct_splits_counts_the_smallest_class_draws(embedded: LeafData) -> None:
    # 16 leaves per species, 3 of them held out at 0.2: C(16, 3) different validation draws
    assert splits.distinct_splits(embedded, 0.2) == math.comb(16, 3) == 560
    first, second = (splits.split(embedded, 0.2, seed, standardize=False) for seed in (0, 1))
    assert not np.array_equal(first.x_val, second.x_val)
