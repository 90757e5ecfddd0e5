"""leafbn.data.files: LeafData is read-only and its checksum changes with any value or label."""

from __future__ import annotations

import pytest

from leafbn.data import loaders as ld
from leafbn.data.files import LeafData


@pytest.fixture(scope="module")
def embedded() -> LeafData:
    return ld.load_embedded()


def test_record_hash_changes_with_data(embedded: LeafData) -> None:
    assert ld.load_embedded().record()["sha256"] == embedded.record()["sha256"]
    X = embedded.X.copy()
    X[0, 0] += 1e-3
    changed = LeafData(X=X, y=embedded.y.copy(), classes=embedded.classes, source="x")
    assert changed.record()["sha256"] != embedded.record()["sha256"]
    y = embedded.y.copy()
    y[[0, -1]] = y[[-1, 0]]
    relabelled = LeafData(X=embedded.X.copy(), y=y, classes=embedded.classes, source="x")
    assert relabelled.record()["sha256"] != embedded.record()["sha256"]


def test_leafdata_is_read_only(embedded: LeafData) -> None:
    with pytest.raises(ValueError):
        embedded.X[0, 0] = 1.0
