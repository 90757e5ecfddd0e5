"""The UCI release's three files and their re-alignment into leaves.

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

The table ``leafbn/data/datasets/uci_alignment.csv`` (``species,mar_row,sha_row,tex_row``, 0-based row
indices into each file, species as written in the margin/texture files) records this; it holds
no Kaggle data. Note: the UCI leaves include Kaggle's unlabelled test leaves, with labels; do not
train on one source and report on the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leafbn.data.files import (
    ALIGNMENT_COLUMNS,
    ALIGNMENT_FILE,
    GROUPS,
    ROW_COLUMN,
    UCI_ROWS,
    DataError,
    check_header,
    package_file,
    read_text,
    split_rows,
    to_float,
)  # fmt: skip

__all__ = ["read_uci_rows", "parse_uci_file", "read_alignment", "align_uci"]


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
    numbers, rows = split_rows(path, read_text(path).splitlines(), 65, first_line=1)
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
    values = to_float(path, numbers, [r[1:] for r in rows], columns, 2)
    return [r[0].strip() for r in rows], values


def read_alignment(path: Path | None = None) -> dict[str, np.ndarray]:
    """Read the alignment table.

    Parameters
    ----------
    path : Path, optional
        Defaults to the shipped ``leafbn/data/datasets/uci_alignment.csv``.

    Returns
    -------
    dict
        ``"species"``: array of str (UCI spelling); ``"mar_row"``, ``"sha_row"``, ``"tex_row"``:
        int64 arrays of 0-based row indices into the three UCI files.
    """
    path = package_file(ALIGNMENT_FILE) if path is None else Path(path)
    lines = read_text(path).splitlines()
    check_header(path, lines[0].split(","), ALIGNMENT_COLUMNS, "an alignment table")
    numbers, rows = split_rows(path, lines[1:], len(ALIGNMENT_COLUMNS), first_line=2)
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
