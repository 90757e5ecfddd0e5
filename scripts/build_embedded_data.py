"""Build ``leafbn/data/datasets/leaf_uci.csv.gz``, the embedded data set, from the three UCI files.

Reads ``data_Mar_64.txt``, ``data_Sha_64.txt``, ``data_Tex_64.txt`` and the alignment table
``leafbn/data/datasets/uci_alignment.csv`` and writes one row per leaf: the species (as written in
the margin file) and the 64 margin, 64 shape and 64 texture values, each value the *original
text token* of its UCI file (nothing re-formatted). Header ``species,margin1..64,shape1..64,
texture1..64``; LF line endings; gzip level 9 with mtime 0 (so the bytes do not depend on when it
was built). UCI data: CC BY 4.0, see ``leafbn.data.files.CITATION``.

Usage::

    python scripts/build_embedded_data.py [--uci-dir ../shared/data/leaf/uci] [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leafbn.data.files import EMBEDDED_FILE, EMBEDDED_HEADER, GROUPS, ROW_COLUMN, UCI_FILES  # noqa: E402
from leafbn.data.uci import align_uci, parse_uci_file, read_alignment, read_uci_rows  # noqa: E402


def build_text(uci_dir: Path, alignment: Path | None = None) -> str:
    """Return the embedded CSV text for the UCI files in ``uci_dir``.

    The files are parsed and checked by ``leafbn.data.loaders`` first (field and row counts, numbers,
    margin/texture species at the aligned rows); the output keeps their text tokens.
    """
    table = read_alignment(alignment)
    names, values, tokens = {}, {}, {}
    for group in GROUPS:
        path = uci_dir / UCI_FILES[group]
        names[group], values[group] = parse_uci_file(path, group)
        tokens[group] = [[cell.strip() for cell in row[1:]] for row in read_uci_rows(path, group)[1]]
    align_uci(str(uci_dir), names, values, table)  # checks the species names, raises DataError
    lines = [",".join(EMBEDDED_HEADER)]
    for i, species in enumerate(table["species"]):
        cells = [cell for g in GROUPS for cell in tokens[g][table[ROW_COLUMN[g]][i]]]
        lines.append(",".join([str(species), *cells]))
    return "\n".join(lines) + "\n"


def write(text: str, out: Path) -> None:
    """Write ``text`` gzipped (level 9, mtime 0, no file name in the header)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uci-dir", type=Path, default=REPO.parent / "shared" / "data" / "leaf" / "uci")
    parser.add_argument("--out", type=Path, default=REPO / "leafbn" / "data" / "datasets" / EMBEDDED_FILE)
    args = parser.parse_args(argv)
    text = build_text(args.uci_dir)
    write(text, args.out)
    print(f"wrote {args.out}: {text.count(chr(10)) - 1} leaves, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
