"""leafbn.data.uci: the committed alignment table has the structure the UCI files were found to have."""

from __future__ import annotations

import numpy as np

from leafbn.data.uci import read_alignment


def test_alignment_table_structure() -> None:
    table = read_alignment()
    assert len(table["species"]) == 1584 and len(set(table["species"])) == 99
    assert "Acer Campestre" not in set(table["species"])
    assert np.array_equal(table["tex_row"], table["mar_row"] - 1)
    assert np.array_equal(table["mar_row"] % 16, table["sha_row"] % 16)
    assert 34 not in set(table["sha_row"] // 16)  # the unmatched shape block (Acer Campestre's)
