"""Stratified train/validation splits of the leaf data, standardised on the training part only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leafbn.data.files import MIN_PER_CLASS, DataError, LeafData

__all__ = ["Split", "distinct_splits", "split", "split_sizes"]


# ------------------------------------------------------------------------------------------------
# Splitting
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Split:
    """A stratified train/validation split.

    Attributes
    ----------
    x_train, x_val : ndarray of float32, shapes (n_train, 192) and (n_val, 192)
    y_train, y_val : ndarray of int32
        Class indices into the ``classes`` of the LeafData that was split.
    standardized : bool
        Whether the features were z-scored with a StandardScaler fitted on ``x_train`` only.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    standardized: bool


def split_sizes(data: LeafData, val_fraction: float) -> tuple[int, int]:
    """The training and validation rows :func:`split` gives (sklearn rounds the validation count
    up), known without splitting.

    Raises ValueError for ``val_fraction`` outside (0, 1), DataError if a class is too small for a
    stratified split or a part too small to hold every class.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}: must be in (0, 1)")
    counts = np.bincount(data.y, minlength=len(data.classes))
    small = np.flatnonzero(counts < MIN_PER_CLASS)
    if len(small):
        k = small[0]
        raise DataError(
            f"{data.source}: class {data.classes[k]!r} has {counts[k]} sample(s), a stratified "
            f"split needs at least {MIN_PER_CLASS} per class"
        )
    n_val = math.ceil(val_fraction * len(data.y))
    n_train = len(data.y) - n_val
    if min(n_val, n_train) < len(data.classes):
        n, c = len(data.y), len(data.classes)
        low, high = math.ceil(1000 * c / n) / 1000, math.floor(1000 * (n - c) / n) / 1000
        raise DataError(
            f"--val-fraction {val_fraction}: gives {n_train} training and {n_val} validation rows of "
            f"{data.source} for {c} classes; each part needs one row per class: use {low:g} to {high:g}"
        )
    return n_train, n_val


def distinct_splits(data: LeafData, val_fraction: float) -> int:
    """How many different stratified validation draws the smallest class allows.

    A class of ``n`` rows puts about ``round(n * val_fraction)`` of them (at least 1) in the
    validation part; the bound is the fewest ways any class can do that, ``comb(n, k)``, capped at
    10**6. A study's ``--splits`` beyond it would repeat a class's validation rows.
    """
    counts = np.bincount(data.y, minlength=len(data.classes))
    counts = counts[counts > 0]
    ways = [math.comb(int(n), max(1, min(int(n) - 1, round(n * val_fraction)))) for n in counts]
    return int(min(min(ways, default=1), 10**6))


def split(data: LeafData, val_fraction: float = 0.2, split_seed: int = 0, standardize: bool = True) -> Split:
    """Split stratified by class, and z-score with statistics of the training part only.

    Parameters
    ----------
    data : LeafData
    val_fraction : float, default=0.2
        Share of rows held out for validation, in (0, 1); sklearn rounds the count up.
    split_seed : int, default=0
        ``random_state`` of :func:`sklearn.model_selection.train_test_split`.
    standardize : bool, default=True
        Fit a StandardScaler on the training part and apply it to both parts.

    Returns
    -------
    Split
        float32 features, int32 labels.

    Raises
    ------
    ValueError
        ``val_fraction`` outside (0, 1).
    DataError
        A class has fewer than 2 samples, or a part would hold fewer rows than there are classes.
    """
    # scikit-learn is imported here, not with the module: a Ray worker unpickles its Split
    # from this module and needs none of it (1 s of every worker's start, measured).
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    split_sizes(data, val_fraction)
    train_idx, val_idx = train_test_split(
        np.arange(len(data.y)), test_size=val_fraction, random_state=split_seed, stratify=data.y
    )
    x_train = np.asarray(data.X[train_idx], dtype=np.float64)
    x_val = np.asarray(data.X[val_idx], dtype=np.float64)
    if standardize:
        scaler = StandardScaler().fit(x_train)
        x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    return Split(
        x_train=x_train.astype(np.float32),
        y_train=data.y[train_idx].astype(np.int32),
        x_val=x_val.astype(np.float32),
        y_val=data.y[val_idx].astype(np.int32),
        standardized=standardize,
    )
