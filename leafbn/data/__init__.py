"""The Leaf Classification features: their files and columns (:mod:`~leafbn.data.files`), the UCI
release's re-alignment (:mod:`~leafbn.data.uci`), the loaders of every source with the embedded
default (:mod:`~leafbn.data.loaders`), and stratified, standardised splits (:mod:`~leafbn.data.splits`).

Imports no other room of leafbn. A new data source is one ``load_*`` function in ``loaders``.
"""

from leafbn.data.files import DataError, LeafData
from leafbn.data.loaders import default_spec, load, load_embedded, load_kaggle, load_openml, load_uci
from leafbn.data.splits import Split, split

__all__ = [
    "DataError", "LeafData", "load", "load_embedded", "default_spec", "load_kaggle", "load_openml",
    "load_uci", "Split", "split",
]  # fmt: skip
