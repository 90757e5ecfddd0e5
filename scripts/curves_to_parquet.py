"""Write a study's ``curves.csv`` as a compact ``curves.parquet`` beside it (how docs/ ships curves).

``python scripts/curves_to_parquet.py STUDY_DIR [--remove-csv]``: the same columns (``trial_id, split,
epoch, train_loss, val_loss, val_accuracy``), losses and accuracy as float32, zstd-compressed.
:func:`leafbn.results.tables.load_tables` reads ``curves.parquet`` when present, else ``curves.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leafbn.results.tables import CURVE_COLUMNS, read_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--remove-csv", action="store_true", help="delete curves.csv once written")
    args = parser.parse_args(argv)
    source = args.study_dir / "curves.csv"
    if not source.is_file():
        print(f"error: {source}: no such file (the study has no curves to convert)", file=sys.stderr)
        return 2
    curves = read_table(source)[CURVE_COLUMNS]
    curves["trial_id"] = curves["trial_id"].astype(str)
    for col in ("split", "epoch"):
        if curves[col].notna().all():
            curves[col] = curves[col].astype(np.int32)
    for col in ("train_loss", "val_loss", "val_accuracy"):
        curves[col] = curves[col].astype(np.float32)
    target = args.study_dir / "curves.parquet"
    curves.to_parquet(target, engine="pyarrow", compression="zstd", index=False)
    if args.remove_csv:
        source.unlink()
    print(f"{target}: {len(curves)} rows, {target.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
