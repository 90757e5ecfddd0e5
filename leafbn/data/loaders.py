"""Leaf Classification features: load and check them, from any of their sources.

Every loader returns a :class:`LeafData`: ``X`` float32 of shape ``(n, 192)`` with the columns
``margin1..64, shape1..64, texture1..64``, ``y`` int64 indices into ``classes`` (sorted species
names) and ``source``, the place the data came from; bad data raises :class:`DataError` (both
defined in :mod:`leafbn.data.files`). The UCI files' re-alignment is :mod:`leafbn.data.uci`'s; the
stratified train/validation splits, :mod:`leafbn.data.splits`'s.

Sources (``load(spec)``)
------------------------
``"embedded"`` (default)
    The UCI "One-hundred plant species leaves" features, re-aligned (:mod:`leafbn.data.uci`) and shipped as
    ``leafbn/data/datasets/leaf_uci.csv.gz``: 1584 leaves, 99 species x 16. The file holds the UCI
    values as the *original text tokens* (no re-formatting); loaders parse them to float64 (correctly
    rounded) and then cast to float32, so the embedded copy and a UCI folder give identical arrays.
``"openml"``
    The same UCI files from OpenML (data ids 1491 margin, 1492 shape, 1493 texture), downloaded
    and cached by :func:`sklearn.datasets.fetch_openml`, re-aligned with the same table and checked
    against the embedded copy (within 1e-4).
a Kaggle ``train.csv`` (or a folder holding one)
    990 labelled leaves, 99 species x 10 (Kaggle rules: research and education only; leafbn never
    ships any of it).
a folder holding ``data_Mar_64.txt``, ``data_Sha_64.txt`` and ``data_Tex_64.txt``
    The UCI release; re-aligned with the committed table.

Class names: the canonical form is Kaggle's, with underscores (``Acer_Opalus``); UCI names
(``Acer Opalus``) are converted, so every source gives the same ``classes``.

Citation (UCI data, CC BY 4.0): see :data:`leafbn.data.files.CITATION`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from leafbn.data.files import (
    EMBEDDED_FILE,
    EMBEDDED_HEADER,
    FEATURE_NAMES,
    GROUPS,
    KAGGLE_HEADER,
    OPENML_ATOL,
    OPENML_IDS,
    OPENML_TIMEOUT_S,
    ROW_COLUMN,
    UCI_FILES,
    UCI_ROWS,
    DataError,
    LeafData,
    few,
    make_data,
    package_file,
    parse_labelled_csv,
    read_text,
)  # fmt: skip
from leafbn.data.uci import align_uci, parse_uci_file, read_alignment

__all__ = [
    "DataError",
    "LeafData",
    "load",
    "load_embedded",
    "default_spec",
    "load_kaggle",
    "load_openml",
    "load_uci",
]


# ------------------------------------------------------------------------------------------------
# Loaders
# ------------------------------------------------------------------------------------------------
def load_embedded() -> LeafData:
    """Load the shipped, re-aligned UCI copy (1584 leaves, 99 species x 16).

    Returns
    -------
    LeafData
        ``source == "embedded"``.
    """
    path = package_file(EMBEDDED_FILE)
    names, values = parse_labelled_csv(path, read_text(path), EMBEDDED_HEADER, 0, "the embedded leafbn data")
    return make_data(values, names, "embedded")


def load_kaggle(path: str | os.PathLike[str]) -> LeafData:
    """Load a Kaggle Leaf Classification ``train.csv``.

    Parameters
    ----------
    path : str or PathLike
        A CSV with header ``id,species,margin1..64,shape1..64,texture1..64``.

    Returns
    -------
    LeafData
        990 rows x 192 for the Kaggle file; ``source == "kaggle:<absolute path>"``.

    Raises
    ------
    DataError
        Missing/empty file, wrong header, wrong field count, non-numeric or non-finite cells.
    """
    path = Path(path)
    text = read_text(path)
    what = "a Kaggle train.csv"
    if text.splitlines()[0].split(",")[:2] == ["id", "margin1"]:
        raise DataError(f"{path}: no 'species' column (a Kaggle test.csv has no labels)")
    names, values = parse_labelled_csv(path, text, KAGGLE_HEADER, 1, what)
    return make_data(values, names, f"kaggle:{path.resolve()}")


def load_uci(folder: str | os.PathLike[str]) -> LeafData:
    """Load the UCI release from a folder and re-align it with the committed table.

    Parameters
    ----------
    folder : str or PathLike
        Holds ``data_Mar_64.txt``, ``data_Sha_64.txt`` and ``data_Tex_64.txt`` (1600, 1600 and
        1599 rows of a species name and 64 values, no header).

    Returns
    -------
    LeafData
        1584 leaves (Acer Campestre dropped), equal to :func:`load_embedded` for the UCI release;
        ``source == "uci:<absolute folder>"``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder holding the UCI files {few(list(UCI_FILES.values()))}")
    names: dict[str, list[str]] = {}
    values: dict[str, np.ndarray] = {}
    for group, file_name in UCI_FILES.items():
        names[group], values[group] = parse_uci_file(folder / file_name, group)
    table = read_alignment()
    aligned = align_uci(str(folder), names, values, table)
    return make_data(aligned, list(table["species"]), f"uci:{folder.resolve()}")


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Temporarily set the default socket timeout (urllib inside fetch_openml uses it)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _fetch_openml_values(group: str, cache_dir: str | None) -> np.ndarray:
    """Download (or read from sklearn's cache) one OpenML copy; its 64 feature columns as float64."""
    from sklearn.datasets import fetch_openml  # here: scikit-learn takes 1 s to import

    data_id = OPENML_IDS[group]
    label = f"openml: data id {data_id} ({group})"
    try:
        with _socket_timeout(OPENML_TIMEOUT_S), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "A network error occurred", UserWarning)
            bunch = fetch_openml(data_id=data_id, data_home=cache_dir, as_frame=True, n_retries=1, delay=0.5)
    except OSError as exc:  # URLError, TimeoutError, ConnectionError
        reason = " ".join(str(getattr(exc, "reason", exc)).split())
        raise DataError(
            f"{label}: cannot download ({reason}) (offline?); use --data embedded or a local copy"
        ) from exc
    except Exception as exc:  # sklearn raises ValueError & co. for unusable responses
        raise DataError(f"{label}: {type(exc).__name__}: {' '.join(str(exc).split())}") from exc
    try:
        frame = bunch.data
        numeric = frame.to_numpy(dtype=np.float64)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DataError(f"{label}: features are not numeric ({type(exc).__name__})") from exc
    expected = (UCI_ROWS[group], 64)
    if numeric.shape != expected:
        raise DataError(f"{label}: shape {numeric.shape}, expected {expected}")
    return numeric


def load_openml(cache_dir: str | None = None) -> LeafData:
    """Load the UCI features from OpenML (ids 1491, 1492, 1493) and re-align them.

    Parameters
    ----------
    cache_dir : str, optional
        ``data_home`` of :func:`sklearn.datasets.fetch_openml` (default: sklearn's, usually
        ``~/scikit_learn_data``). Once cached, no network is needed.

    Returns
    -------
    LeafData
        1584 leaves; ``source == "openml"``; values equal the embedded copy within 1e-4.

    Raises
    ------
    DataError
        Offline or download failure (socket timeout 15 s, one retry), unexpected row counts, or
        values that differ from the UCI release at the aligned positions.
    """
    values = {group: _fetch_openml_values(group, cache_dir) for group in GROUPS}
    table = read_alignment()
    aligned = np.hstack([values[g][table[ROW_COLUMN[g]]] for g in GROUPS])
    reference = load_embedded().X
    close = np.isclose(aligned, reference, rtol=0.0, atol=OPENML_ATOL)
    if not close.all():
        i, j = np.argwhere(~close)[0]
        group = GROUPS[j // 64]
        raise DataError(
            f"openml: data id {OPENML_IDS[group]} ({group}): row {table[ROW_COLUMN[group]][i]}, "
            f"{FEATURE_NAMES[j]} is {aligned[i, j]:.6g}, the UCI release has {reference[i, j]:.6g}; "
            "the alignment table does not apply"
        )
    return make_data(aligned, list(table["species"]), "openml")


def default_spec() -> str:
    """The data a study uses when none is named: ``$LEAFBN_DATA`` if set (non-empty), else ``"embedded"``."""
    return os.environ.get("LEAFBN_DATA") or "embedded"


def load(spec: str | os.PathLike[str] | None = None) -> LeafData:
    """Load leaf data from a spec.

    Parameters
    ----------
    spec : str or PathLike, optional
        ``"embedded"``, ``"openml"``, a path to a Kaggle ``train.csv``, or a folder holding either
        ``train.csv`` or the three UCI files. None (default): :func:`default_spec`.

    Returns
    -------
    LeafData

    Raises
    ------
    DataError
        Unknown spec, or any problem of the files it names.
    """
    if spec is None:
        spec = default_spec()
    if spec == "embedded":
        return load_embedded()
    if spec == "openml":
        return load_openml()
    path = Path(spec).expanduser()
    if path.is_file():
        return load_kaggle(path)
    if path.is_dir():
        return _load_folder(path)
    raise DataError(
        f"{spec}: no such file or folder; expected 'embedded', 'openml', a Kaggle train.csv, "
        "or a folder holding train.csv or the UCI files"
    )


def _load_folder(folder: Path) -> LeafData:
    """Load a folder holding a Kaggle train.csv or the UCI files (not both)."""
    has_kaggle = (folder / "train.csv").is_file()
    has_uci = any((folder / f).exists() for f in UCI_FILES.values())
    if has_kaggle and has_uci:
        raise DataError(f"{folder}: holds both train.csv and UCI files; name one file or folder")
    if has_kaggle:
        return load_kaggle(folder / "train.csv")
    if has_uci:
        return load_uci(folder)
    raise DataError(
        f"{folder}: unknown format: the folder holds neither train.csv (Kaggle) "
        f"nor {', '.join(UCI_FILES.values())} (UCI)"
    )
