"""The axes of a study, defined once: each axis's name, type, label, sort rank and role.

Everything that lists the axes derives from :data:`AXES`: ``TRIAL_FIELDS`` (the grid, the columns of
``trials.csv``), a trial's reported settings, the tables' numeric columns and row order, the report's
families and its figures' labels. A new axis is one :class:`Axis` here, a field of ``StudyConfig``
with its default (the seed experiment's value), and its use in the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Axis", "AXES", "BN_PLACEMENTS", "INITS", "TRIAL_FIELDS", "axis_names"]

#: Where BatchNormalization goes (``--bn-placement``): before or after the ReLU.
BN_PLACEMENTS = ("before", "after")
#: Initialisations of the Dense kernels (``--init``): the blog's U(-0.05, 0.05), or Keras' He normal /
#: Glorot uniform, which scale with each layer's fan-in (and fan-out).
INITS = ("uniform", "he_normal", "glorot_uniform")


@dataclass(frozen=True)
class Axis:
    """One axis of a study.

    ``type`` converts a value (as Ray Tune or ``trials.csv`` hands it back); ``label`` names it in a
    figure; ``sort`` ranks it when ``trials.csv``'s rows are ordered (lowest first); ``role`` is its
    part in the answer, in Google's tuning playbook's terms: ``"scientific"`` (what the study asks
    about: BN), ``"nuisance"`` (tuned over, for a fair comparison: the learning rate) or
    ``"context"`` (fixed per family: what the answer may depend on). ``valid`` says whether one
    value is in bounds, ``bound`` says which they are (:class:`leafbn.config.StudyConfig` refuses
    the others with it).
    """

    name: str
    type: type
    label: str
    sort: int
    role: str
    default: object = None  # the value of a study that predates the axis (None: every study has it)
    valid: Callable[[object], bool] | None = None  # None: any value of its type
    bound: str = ""


#: The axes, in the order of ``trials.csv``'s columns.
AXES: tuple[Axis, ...] = (
    Axis("lr", float, "learning rate", 1, "nuisance",
         valid=lambda v: math.isfinite(v) and v > 0, bound="must be > 0 and finite"),
    Axis("bn", bool, "BN", 0, "scientific"),
    Axis("depth", int, "depth (hidden layers)", 2, "context",
         valid=lambda v: v >= 0, bound="must be >= 0 (hidden layers after the first)"),
    Axis("width", int, "width (units)", 3, "context", valid=lambda v: v >= 1, bound="must be >= 1"),
    Axis("bn_momentum", float, "BN momentum", 4, "context",
         valid=lambda v: 0.0 <= v < 1.0, bound="must be in [0, 1)"),
    Axis("bn_placement", str, "BN placement", 5, "context",
         valid=lambda v: v in BN_PLACEMENTS, bound=f"must be one of {', '.join(BN_PLACEMENTS)}"),
    Axis("batch_size", int, "batch size", 6, "context", valid=lambda v: v >= 1, bound="must be >= 1"),
    Axis("init", str, "initialisation", 7, "context", "uniform",
         valid=lambda v: v in INITS, bound=f"must be one of {', '.join(INITS)}"),
)  # fmt: skip


def axis_names(*types: type, role: str | None = None, by_sort: bool = False) -> tuple[str, ...]:
    """The names of the axes of any of ``types`` (all when none) and ``role`` (any when None), in
    ``trials.csv``'s order, or by their ``sort`` rank with ``by_sort``."""
    axes = sorted(AXES, key=lambda a: a.sort) if by_sort else AXES
    return tuple(a.name for a in axes if (not types or a.type in types) and role in (None, a.role))


#: The per-trial fields a grid varies (the axes), in the order they appear in ``trials.csv``.
TRIAL_FIELDS: tuple[str, ...] = axis_names()
