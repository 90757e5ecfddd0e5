"""The leaf data's building blocks: its columns and files, the :class:`LeafData` every loader
returns, :class:`DataError`, and the strict text parsing every loader uses.

Citation (UCI data, CC BY 4.0): see :data:`CITATION`.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from leafbn.errors import DataError

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


def make_data(values: np.ndarray, names: Sequence[str], source: str) -> LeafData:
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
def read_text(path: Path) -> str:
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


def split_rows(
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


def to_float(
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


def check_header(path: Path, header: Sequence[str], expected: Sequence[str], what: str) -> None:
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
        parts.append(f"missing {few(missing)}")
    if extra:
        parts.append(f"extra {few(extra)}")
    raise DataError(f"{path}: " + "; ".join(parts))


def few(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def parse_labelled_csv(
    path: Path, text: str, expected: Sequence[str], label_column: int, what: str
) -> tuple[list[str], np.ndarray]:
    """Parse a headed CSV: species in ``label_column``, the 192 features after it."""
    lines = text.splitlines()
    check_header(path, lines[0].split(","), expected, what)
    numbers, rows = split_rows(path, lines[1:], len(expected), first_line=2)
    names = [row[label_column].strip() for row in rows]
    for number, name in zip(numbers, names):
        if not name:
            raise DataError(f"{path}: line {number} has an empty species name")
    start = label_column + 1
    values = to_float(path, numbers, [r[start:] for r in rows], FEATURE_NAMES, start + 1)
    return names, values


# ------------------------------------------------------------------------------------------------
# Package data and the alignment table
# ------------------------------------------------------------------------------------------------
def package_file(name: str) -> Path:
    """Path of a file in ``leafbn/data/datasets``; DataError if the install lacks it."""
    path = Path(str(resources.files("leafbn.data").joinpath("datasets", name)))
    if not path.is_file():
        raise DataError(f"{path}: package data missing (broken install?)")
    return path
