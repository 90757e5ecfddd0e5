"""The axes of a study, defined once: each axis's name, type, label, sort rank and role.

Everything that lists the axes derives from :data:`AXES`: ``TRIAL_FIELDS`` (the grid, the columns of
``trials.csv``), a trial's reported settings, the tables' numeric columns and row order, the report's
families and its figures' labels. A new axis is one :class:`Axis` here, a field of ``StudyConfig``
with its default (the seed experiment's value), and its use in the model.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Axis", "AXES", "TRIAL_FIELDS", "axis_names"]


@dataclass(frozen=True)
class Axis:
    """One axis of a study.

    ``type`` converts a value (as Ray Tune or ``trials.csv`` hands it back); ``label`` names it in a
    figure; ``sort`` ranks it when ``trials.csv``'s rows are ordered (lowest first); ``role`` is its
    part in the answer, in Google's tuning playbook's terms: ``"scientific"`` (what the study asks
    about: BN), ``"nuisance"`` (tuned over, for a fair comparison: the learning rate) or
    ``"context"`` (fixed per family: what the answer may depend on).
    """

    name: str
    type: type
    label: str
    sort: int
    role: str
    default: object = None  # the value of a study that predates the axis (None: every study has it)


#: The axes, in the order of ``trials.csv``'s columns.
AXES: tuple[Axis, ...] = (
    Axis("lr", float, "learning rate", 1, "nuisance"),
    Axis("bn", bool, "BN", 0, "scientific"),
    Axis("depth", int, "depth (hidden layers)", 2, "context"),
    Axis("width", int, "width (units)", 3, "context"),
    Axis("bn_momentum", float, "BN momentum", 4, "context"),
    Axis("bn_placement", str, "BN placement", 5, "context"),
    Axis("batch_size", int, "batch size", 6, "context"),
    Axis("init", str, "initialisation", 7, "context", "uniform"),
)


def axis_names(*types: type, role: str | None = None, by_sort: bool = False) -> tuple[str, ...]:
    """The names of the axes of any of ``types`` (all when none) and ``role`` (any when None), in
    ``trials.csv``'s order, or by their ``sort`` rank with ``by_sort``."""
    axes = sorted(AXES, key=lambda a: a.sort) if by_sort else AXES
    return tuple(a.name for a in axes if (not types or a.type in types) and role in (None, a.role))


#: The per-trial fields a grid varies (the axes), in the order they appear in ``trials.csv``.
TRIAL_FIELDS: tuple[str, ...] = axis_names()
