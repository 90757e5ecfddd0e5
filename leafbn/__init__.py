"""leafbn: how Batch Normalization changes a network's robustness to its learning rate, measured.

A distributed hyperparameter study on Ray Tune of the Leaf Classification features. The modules:
``config`` (the one ``StudyConfig``), ``data`` (loading, re-alignment, splitting), ``model``
(the seed's Keras network and optimizer), ``train`` (the compiled trainer), ``tuning`` (the Ray
Tune study), ``tables`` (results → ``trials.csv``/``curves.csv``), ``analysis``, ``plots`` and
``report`` (the robustness report).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
