"""leafbn: how Batch Normalization changes a network's robustness to its learning rate, measured.

A distributed hyperparameter study on Ray Tune of the Leaf Classification features, in six rooms
(``docs/architecture.md``), each importing only the rooms before it:

- :mod:`leafbn.config`: the one ``StudyConfig``, every setting of a study;
- :mod:`leafbn.data`: the leaf data from any source, and its train/validation splits;
- :mod:`leafbn.train`: the seed's Keras network and the compiled trainer;
- :mod:`leafbn.results`: the study's record (``config.json``) and tables (``trials.csv``, ``curves.csv``);
- :mod:`leafbn.tuning`: the study on Ray Tune (trainable, spaces, Tuner, session, folder, progress);
- :mod:`leafbn.report`: the numbers, sentences and figures of the robustness report.

:mod:`leafbn.moved` keeps the module paths of the flat layout before these rooms importable, so a
study folder whose pickles name them still resumes.
"""

import os as _os

from leafbn import moved as _moved

# TensorFlow's C++ start-up chatter (CPU feature notes) is not for users: only errors get through.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_moved.install()

__version__ = "0.1.0"

__all__ = ["__version__"]
