"""leafbn: how Batch Normalization changes a network's robustness to its learning rate, measured.

A distributed hyperparameter study on Ray Tune of the Leaf Classification features. The modules:
``config`` (the one ``StudyConfig``), ``data`` (loading, re-alignment, splitting), ``model``
(the seed's Keras network and optimizer), ``train`` (the compiled trainer), ``tuning`` (the Ray
Tune study), ``tables`` (results → ``trials.csv``/``curves.csv``), ``analysis``, ``plots`` and
``report`` (the robustness report).
"""

import os as _os

# TensorFlow's C++ start-up chatter (CPU feature notes) is not for users: only errors get through.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

__all__ = ["__version__"]
