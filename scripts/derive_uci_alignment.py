"""Derive which row of each UCI file belongs to each leaf, using the Kaggle rows as ground truth.

Each Kaggle row (train + test) is one leaf with all three feature groups. Every group of every
Kaggle row is looked up, at 4-decimal rounding, in the matching UCI file; the match must be
unique in both directions. The species names of the margin and texture rows must agree with each
other and with Kaggle's train labels. The structure (see ``leafbn.data.loaders``'s docstring) is checked
and printed. Writes ``species,mar_row,sha_row,tex_row`` (0-based row indices, species as written in
the margin file), sorted by ``mar_row``: indices only, no Kaggle data.

Usage::

    python scripts/derive_uci_alignment.py [--leaf-dir ../shared/data/leaf] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leafbn.data.files import ALIGNMENT_FILE, GROUPS, ROW_COLUMN, UCI_FILES, canonical_species  # noqa: E402
from leafbn.data.uci import parse_uci_file  # noqa: E402

DECIMALS = 4
BLOCK = 16  # rows per species in the UCI files


def match_rows(kaggle: np.ndarray, uci: np.ndarray, group: str) -> np.ndarray:
    """For each Kaggle vector, the index of the one UCI row equal to it at 4-decimal rounding."""
    index: dict[bytes, int] = {}
    for i, row in enumerate(np.round(uci, DECIMALS)):
        key = row.tobytes()
        if key in index:
            raise SystemExit(f"{group}: UCI rows {index[key]} and {i} are equal after rounding")
        index[key] = i
    found = [index.get(row.tobytes(), -1) for row in np.round(kaggle, DECIMALS)]
    rows = np.array(found, dtype=np.int64)
    if (rows < 0).any():
        raise SystemExit(f"{group}: {(rows < 0).sum()} Kaggle rows have no UCI match")
    if len(set(rows)) != len(rows):
        raise SystemExit(f"{group}: two Kaggle rows match the same UCI row")
    if not np.array_equal(uci[rows], kaggle):
        print(f"note: {group} values match after rounding but are not bit-identical")
    return rows


def check_structure(table: pd.DataFrame, sha_names: list[str]) -> None:
    """Check and print the structure described in leafbn.data.loaders's docstring."""
    mar, sha, tex = (table[c].to_numpy() for c in ("mar_row", "sha_row", "tex_row"))
    print(f"texture row == margin row - 1 for all leaves: {bool((tex == mar - 1).all())}")
    print(f"within-class position equal in margin and shape: {bool((mar % BLOCK == sha % BLOCK).all())}")
    pairs = sorted(set(zip(mar // BLOCK, sha // BLOCK)))
    print(f"whole blocks: {len(pairs)} margin blocks -> {len({s for _, s in pairs})} shape blocks")
    unmatched = sorted(set(range(len(sha_names) // BLOCK)) - {s for _, s in pairs})
    for block in unmatched:
        print(
            f"shape block {block} (rows {block * BLOCK}..{block * BLOCK + BLOCK - 1}, "
            f"labelled {sha_names[block * BLOCK]!r}) matches no Kaggle leaf"
        )
    right = [s for m, s in pairs if sha_names[s * BLOCK] == table.species.iloc[m * BLOCK - BLOCK]]
    print(f"shape-file labels right for {len(right)} of {len(pairs)} matched blocks")


def derive(leaf_dir: Path) -> pd.DataFrame:
    """Return the alignment table derived from ``leaf_dir/kaggle`` and ``leaf_dir/uci``."""
    train = pd.read_csv(leaf_dir / "kaggle" / "train.csv")
    test = pd.read_csv(leaf_dir / "kaggle" / "test.csv")
    kaggle = pd.concat([train, test], ignore_index=True)
    names: dict[str, list[str]] = {}
    rows: dict[str, np.ndarray] = {}
    for group in GROUPS:
        names[group], values = parse_uci_file(leaf_dir / "uci" / UCI_FILES[group], group)
        columns = [f"{group}{i}" for i in range(1, 65)]
        rows[group] = match_rows(kaggle[columns].to_numpy(np.float64), values, group)
    mar_names = np.array(names["margin"])[rows["margin"]]
    tex_names = np.array(names["texture"])[rows["texture"]]
    if not (mar_names == tex_names).all():
        raise SystemExit("margin and texture species disagree for some leaves")
    labelled = kaggle.species.notna().to_numpy()
    kaggle_names = kaggle.species[labelled].map(canonical_species).to_numpy()
    agree = np.array([canonical_species(n) for n in mar_names[labelled]]) == kaggle_names
    print(f"margin/texture species == Kaggle species: {agree.sum()}/{labelled.sum()} train rows")
    if not agree.all():
        raise SystemExit("margin species disagree with Kaggle's")
    table = pd.DataFrame({"species": mar_names, **{ROW_COLUMN[g]: rows[g] for g in GROUPS}})
    table = table.sort_values("mar_row", ignore_index=True)
    check_structure(table, names["shape"])
    kept = set(table.species)
    for species in sorted(set(names["margin"]) - kept):
        counts = {g: names[g].count(species) for g in ("margin", "texture")}
        print(f"dropped {species!r}: no Kaggle leaf; rows in margin/texture: {counts}")
    print(f"kept {len(table)} leaves, {table.species.nunique()} species")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaf-dir", type=Path, default=REPO.parent / "shared" / "data" / "leaf")
    parser.add_argument("--out", type=Path, default=REPO / "leafbn" / "data" / "datasets" / ALIGNMENT_FILE)
    args = parser.parse_args(argv)
    table = derive(args.leaf_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, lineterminator="\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
