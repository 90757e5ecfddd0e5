"""Leaf Classification features: load, check, re-align and split them.

Every loader returns a :class:`LeafData`: ``X`` float32 of shape ``(n, 192)`` with the columns
``margin1..64, shape1..64, texture1..64``, ``y`` int64 indices into ``classes`` (sorted species
names) and ``source``, the place the data came from. :func:`split` makes the stratified
train/validation split with a z-scoring fitted on the training part only.

Sources (``load(spec)``)
------------------------
``"embedded"`` (default)
    The UCI "One-hundred plant species leaves" features, re-aligned (below) and shipped as
    ``leafbn/datasets/leaf_uci.csv.gz``: 1584 leaves, 99 species x 16. The file holds the UCI
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

Re-alignment of the UCI files (derived by ``scripts/derive_uci_alignment.py``)
-------------------------------------------------------------------------------
The three UCI files are separate tables (one per feature group) that must not be joined by row
order. Each Kaggle row (990 train + 594 test = 1584) is one leaf with all three groups; matched at
4-decimal rounding (the values are in fact bit-identical), every Kaggle row finds exactly one row
in each UCI file, and no two Kaggle rows share a UCI row. The structure found:

* ``data_Mar_64.txt`` (1600 rows) and ``data_Tex_64.txt`` (1599 rows) list 100 species in sorted
  order, 16 rows each, except that texture has only 15 rows of Acer Campestre (its first block).
  For all 1584 matched leaves ``tex_row == mar_row - 1``: the row missing from texture is one of
  Acer Campestre's. Their species names agree with Kaggle's on all 990 train rows.
* ``data_Sha_64.txt`` (1600 rows): the *data* blocks are the margin file's 99 other species in the
  same order, with within-class row order preserved for all 1584 leaves, except that the block at
  rows 544..559 (block 34, between Ilex Aquifolium's and Ilex Cornuta's) matches no Kaggle leaf:
  margin block b holds the same leaves as shape block b - 1 for b = 1..34 and shape block b for
  b = 35..99. The shape file's *labels* are a separate 99-to-99 relabelling of whole blocks (right
  for only 2 of the 99 matched blocks: Acer Capillipes and Zelkova Serrata) and are ignored.
* Dropped: Acer Campestre, the one species Kaggle lacks (16 margin rows 0..15, 15 texture rows
  0..14, and presumably shape rows 544..559, labelled "Acer Campestre" there and left over by
  elimination). Which of its 16 leaves has no texture row cannot be determined, so none of its
  rows is kept. Kept: 1584 leaves, 99 species x 16 — exactly the Kaggle train + test leaves.

The table ``leafbn/datasets/uci_alignment.csv`` (``species,mar_row,sha_row,tex_row``, 0-based row
indices into each file, species as written in the margin/texture files) records this; it holds
no Kaggle data. Note: the UCI leaves include Kaggle's unlabelled test leaves, with labels; do not
train on one source and report on the other.

Citation (UCI data, CC BY 4.0): see :data:`CITATION`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import socket
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from sklearn.datasets import fetch_openml
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

__all__ = [
    "CITATION",
    "FEATURE_NAMES",
    "UCI_FILES",
    "DataError",
    "LeafData",
    "Split",
    "load",
    "load_embedded",
    "distinct_splits",
    "default_spec",
    "load_kaggle",
    "load_openml",
    "load_uci",
    "split",
]

#: How to cite the UCI data set that leafbn ships (license CC BY 4.0).
CITATION = (
    "Charles Mallah, James Cope, James Orwell. Plant Leaf Classification Using Probabilistic "
    "Integration of Shape, Texture and Margin Features. Signal Processing, Pattern Recognition "
    "and Applications, 2013. Data: One-hundred plant species leaves data set, UCI Machine "
    "Learning Repository, id 241, "
    "https://archive.ics.uci.edu/dataset/241/one+hundred+plant+species+leaves+data+set "
    "(CC BY 4.0)."
)

GROUPS: tuple[str, ...] = ("margin", "shape", "texture")
#: The 192 feature columns, in the order of ``LeafData.X``.
FEATURE_NAMES: tuple[str, ...] = tuple(f"{g}{i}" for g in GROUPS for i in range(1, 65))
#: The UCI file of each feature group.
UCI_FILES: dict[str, str] = {
    "margin": "data_Mar_64.txt",
    "shape": "data_Sha_64.txt",
    "texture": "data_Tex_64.txt",
}
#: Rows of each file in the UCI release the alignment table was derived for.
UCI_ROWS: dict[str, int] = {"margin": 1600, "shape": 1600, "texture": 1599}
OPENML_IDS: dict[str, int] = {"margin": 1491, "shape": 1492, "texture": 1493}
ALIGNMENT_COLUMNS: tuple[str, ...] = ("species", "mar_row", "sha_row", "tex_row")
ROW_COLUMN: dict[str, str] = {"margin": "mar_row", "shape": "sha_row", "texture": "tex_row"}
KAGGLE_HEADER: tuple[str, ...] = ("id", "species", *FEATURE_NAMES)
EMBEDDED_HEADER: tuple[str, ...] = ("species", *FEATURE_NAMES)
ALIGNMENT_FILE = "uci_alignment.csv"
EMBEDDED_FILE = "leaf_uci.csv.gz"
MIN_PER_CLASS = 2  # a stratified split needs one sample for training and one for validation
OPENML_ATOL = 1e-4
OPENML_TIMEOUT_S = 15.0


class DataError(ValueError):
    """A data file is missing or malformed; the message is one line: ``<file>: <problem>``."""


# ------------------------------------------------------------------------------------------------
# The data
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LeafData:
    """Labelled leaf features.

    Attributes
    ----------
    X : ndarray of float32, shape (n, 192)
        ``margin1..64, shape1..64, texture1..64`` (see :data:`FEATURE_NAMES`). Read-only.
    y : ndarray of int64, shape (n,)
        Indices into ``classes``. Read-only.
    classes : tuple of str
        Sorted species names in canonical (underscore) form, e.g. ``"Acer_Opalus"``.
    source : str
        ``"embedded"``, ``"openml"``, ``"kaggle:<abs path>"`` or ``"uci:<abs dir>"``.
    """

    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.X.dtype != np.float32 or self.X.shape != (n, len(FEATURE_NAMES)):
            raise ValueError(
                f"LeafData.X must be float32 of shape ({n}, {len(FEATURE_NAMES)}), "
                f"got {self.X.dtype} {self.X.shape}"
            )
        if self.y.dtype != np.int64 or self.y.ndim != 1:
            raise ValueError(f"LeafData.y must be 1-D int64, got {self.y.dtype} {self.y.shape}")
        if list(self.classes) != sorted(set(self.classes)):
            raise ValueError("LeafData.classes must be sorted and unique")
        if n and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise ValueError("LeafData.y holds indices outside classes")
        self.X.setflags(write=False)
        self.y.setflags(write=False)

    def record(self) -> dict[str, object]:
        """Describe the data for a results record.

        Returns
        -------
        dict
            ``{"source": str, "rows": int, "classes": int (number of classes), "features": int,
            "sha256": str}``; the hash covers the bytes of ``X`` (float32, little-endian), of ``y``
            (int64, little-endian) and the class names, so equal data gives an equal hash.
        """
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.X, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(self.y, dtype="<i8").tobytes())
        digest.update("\n".join(self.classes).encode("utf-8"))
        return {
            "source": self.source,
            "rows": int(self.X.shape[0]),
            "classes": len(self.classes),
            "features": int(self.X.shape[1]),
            "sha256": digest.hexdigest(),
        }


def canonical_species(name: str) -> str:
    """Return the canonical species name: stripped, spaces replaced by underscores."""
    return "_".join(name.split())


def _make_data(values: np.ndarray, names: Sequence[str], source: str) -> LeafData:
    """Build a LeafData from float64 values (n, 192) and raw species names."""
    canonical = np.array([canonical_species(n) for n in names])
    classes, y = np.unique(canonical, return_inverse=True)
    return LeafData(
        X=np.ascontiguousarray(values, dtype=np.float32),
        y=y.astype(np.int64).reshape(-1),
        classes=tuple(str(c) for c in classes),
        source=source,
    )


# ------------------------------------------------------------------------------------------------
# Parsing and checking text files
# ------------------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    """Return a file's text (gunzipped if it ends in .gz); DataError if missing, unreadable, empty."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as UTF-8 text ({type(exc).__name__})") from exc
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def _split_rows(
    name: str | Path, lines: Sequence[str], n_fields: int, first_line: int
) -> tuple[list[int], list[list[str]]]:
    """Split comma-separated lines (blank lines skipped) and check every row has ``n_fields``.

    Returns the 1-based line numbers and the fields of the non-blank lines.
    """
    numbers: list[int] = []
    rows: list[list[str]] = []
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != n_fields:
            raise DataError(f"{name}: line {number} has {len(fields)} fields, expected {n_fields}")
        numbers.append(number)
        rows.append(fields)
    if not rows:
        raise DataError(f"{name}: no data rows")
    return numbers, rows


def _to_float(
    name: str | Path,
    numbers: Sequence[int],
    cells: Sequence[Sequence[str]],
    columns: Sequence[str],
    first_column: int,
) -> np.ndarray:
    """Parse text cells to a finite float64 array; DataError naming line and column otherwise.

    ``first_column`` is the 1-based column of ``cells[i][0]`` in the file.
    """
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        for i, row in enumerate(cells):
            for j, cell in enumerate(row):
                try:
                    float(cell)
                except ValueError:
                    where = f"line {numbers[i]}, column {first_column + j} ({columns[j]})"
                    raise DataError(f"{name}: {where} is not a number: {cell!r}") from None
        raise  # unreachable: some cell failed above
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        i, j = bad[0]
        where = f"line {numbers[i]}, column {first_column + j} ({columns[j]})"
        raise DataError(f"{name}: {where} is not finite: {cells[i][j].strip()!r}")
    return values


def _check_header(path: Path, header: Sequence[str], expected: Sequence[str], what: str) -> None:
    """DataError unless ``header`` equals ``expected``, naming missing/extra columns."""
    header = [h.strip() for h in header]
    if list(header) == list(expected):
        return
    if not header or header[0] != expected[0]:
        raise DataError(
            f"{path}: unknown format: expected {what} whose header starts with "
            f"'{','.join(expected[:3])}', got '{','.join(header[:3])}'"
        )
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    if not missing and not extra:
        raise DataError(f"{path}: header columns are duplicated or out of order")
    parts = [f"header has {len(header)} columns, expected {len(expected)}"]
    if missing:
        parts.append(f"missing {_few(missing)}")
    if extra:
        parts.append(f"extra {_few(extra)}")
    raise DataError(f"{path}: " + "; ".join(parts))


def _few(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _parse_labelled_csv(
    path: Path, text: str, expected: Sequence[str], label_column: int, what: str
) -> tuple[list[str], np.ndarray]:
    """Parse a headed CSV: species in ``label_column``, the 192 features after it."""
    lines = text.splitlines()
    _check_header(path, lines[0].split(","), expected, what)
    numbers, rows = _split_rows(path, lines[1:], len(expected), first_line=2)
    names = [row[label_column].strip() for row in rows]
    for number, name in zip(numbers, names):
        if not name:
            raise DataError(f"{path}: line {number} has an empty species name")
    start = label_column + 1
    values = _to_float(path, numbers, [r[start:] for r in rows], FEATURE_NAMES, start + 1)
    return names, values


def read_uci_rows(path: Path, group: str) -> tuple[list[int], list[list[str]]]:
    """Read one UCI file as text fields, checking the field and row counts.

    Parameters
    ----------
    path : Path
        ``data_Mar_64.txt``, ``data_Sha_64.txt`` or ``data_Tex_64.txt``.
    group : str
        ``"margin"``, ``"shape"`` or ``"texture"``.

    Returns
    -------
    numbers, rows : list of int, list of list of str
        1-based line numbers and the 65 text fields (species name, 64 values) of each row.
    """
    numbers, rows = _split_rows(path, _read_text(path).splitlines(), 65, first_line=1)
    if len(rows) != UCI_ROWS[group]:
        raise DataError(
            f"{path}: {len(rows)} rows, expected {UCI_ROWS[group]} (the UCI release "
            f"the alignment table {ALIGNMENT_FILE} was derived for)"
        )
    return numbers, rows


def parse_uci_file(path: Path, group: str) -> tuple[list[str], np.ndarray]:
    """Parse one UCI file into species names (as written) and float64 values of shape (rows, 64)."""
    numbers, rows = read_uci_rows(path, group)
    columns = [f"{group}{i}" for i in range(1, 65)]
    values = _to_float(path, numbers, [r[1:] for r in rows], columns, 2)
    return [r[0].strip() for r in rows], values


# ------------------------------------------------------------------------------------------------
# Package data and the alignment table
# ------------------------------------------------------------------------------------------------
def _package_file(name: str) -> Path:
    """Path of a file in ``leafbn/datasets``; DataError if the install lacks it."""
    path = Path(str(resources.files("leafbn").joinpath("datasets", name)))
    if not path.is_file():
        raise DataError(f"{path}: package data missing (broken install?)")
    return path


def read_alignment(path: Path | None = None) -> dict[str, np.ndarray]:
    """Read the alignment table.

    Parameters
    ----------
    path : Path, optional
        Defaults to the shipped ``leafbn/datasets/uci_alignment.csv``.

    Returns
    -------
    dict
        ``"species"``: array of str (UCI spelling); ``"mar_row"``, ``"sha_row"``, ``"tex_row"``:
        int64 arrays of 0-based row indices into the three UCI files.
    """
    path = _package_file(ALIGNMENT_FILE) if path is None else Path(path)
    lines = _read_text(path).splitlines()
    _check_header(path, lines[0].split(","), ALIGNMENT_COLUMNS, "an alignment table")
    numbers, rows = _split_rows(path, lines[1:], len(ALIGNMENT_COLUMNS), first_line=2)
    table: dict[str, np.ndarray] = {"species": np.array([r[0].strip() for r in rows])}
    for k, column in enumerate(ALIGNMENT_COLUMNS[1:], start=1):
        try:
            table[column] = np.array([int(r[k]) for r in rows], dtype=np.int64)
        except ValueError:
            raise DataError(f"{path}: column {column} holds a non-integer row index") from None
    for group, column in ROW_COLUMN.items():
        index = table[column]
        if index.min() < 0 or index.max() >= UCI_ROWS[group] or len(set(index)) != len(index):
            raise DataError(f"{path}: {column} indices are out of range or repeated")
    return table


def align_uci(
    label: str,
    names: dict[str, list[str]],
    values: dict[str, np.ndarray],
    table: dict[str, np.ndarray],
) -> np.ndarray:
    """Join the three groups leaf by leaf with the table; check margin/texture names agree."""
    for group in ("margin", "texture"):
        found = np.array(names[group], dtype=object)[table[ROW_COLUMN[group]]]
        wrong = np.flatnonzero(found != table["species"].astype(object))
        if len(wrong):
            i = wrong[0]
            row = table[ROW_COLUMN[group]][i]
            raise DataError(
                f"{label}: row {row} of the {group} file is {found[i]!r}, the alignment table "
                f"expects {table['species'][i]!r} (not the UCI release leafbn was aligned for)"
            )
    return np.hstack([values[g][table[ROW_COLUMN[g]]] for g in GROUPS])


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
    path = _package_file(EMBEDDED_FILE)
    names, values = _parse_labelled_csv(
        path, _read_text(path), EMBEDDED_HEADER, 0, "the embedded leafbn data"
    )
    return _make_data(values, names, "embedded")


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
    text = _read_text(path)
    what = "a Kaggle train.csv"
    if text.splitlines()[0].split(",")[:2] == ["id", "margin1"]:
        raise DataError(f"{path}: no 'species' column (a Kaggle test.csv has no labels)")
    names, values = _parse_labelled_csv(path, text, KAGGLE_HEADER, 1, what)
    return _make_data(values, names, f"kaggle:{path.resolve()}")


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
        raise DataError(f"{folder}: not a folder holding the UCI files {_few(list(UCI_FILES.values()))}")
    names: dict[str, list[str]] = {}
    values: dict[str, np.ndarray] = {}
    for group, file_name in UCI_FILES.items():
        names[group], values[group] = parse_uci_file(folder / file_name, group)
    table = read_alignment()
    aligned = align_uci(str(folder), names, values, table)
    return _make_data(aligned, list(table["species"]), f"uci:{folder.resolve()}")


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
    return _make_data(aligned, list(table["species"]), "openml")


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


def _check_splittable(data: LeafData, val_fraction: float) -> None:
    """DataError if a class is too small, or a part too small to hold every class."""
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
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}: must be in (0, 1)")
    _check_splittable(data, val_fraction)
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
