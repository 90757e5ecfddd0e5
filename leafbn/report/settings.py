"""The report's settings, defined and validated once: :class:`ReportSettings`.

``study/report.py``, ``study/run.py --report`` and :func:`leafbn.report.writer.write_report` all build
one record; its bounds and their one-line messages live here only. Light on purpose (no pandas, no
matplotlib), so a command line can refuse a bad value before the heavy imports.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ReportSettings", "FIGURE_FORMATS", "figure_formats_of"]

#: The files a figure can be written as; PNG is the one the report embeds.
FIGURE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")


def figure_formats_of(formats: str | Sequence[str]) -> tuple[str, ...]:
    """The formats to write from ``"png,svg"`` or ``["svg"]``: PNG first, always; each known.

    Raises:
        ValueError: a format outside :data:`FIGURE_FORMATS`, named with the known ones.
    """
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    names = [n.strip().lower().lstrip(".") for n in names if n.strip()]
    bad = [n for n in names if n not in FIGURE_FORMATS]
    if bad:
        raise ValueError(f"{', '.join(bad)} is not one of {', '.join(FIGURE_FORMATS)}")
    return tuple(dict.fromkeys(["png", *names]))


@dataclass(frozen=True)
class ReportSettings:
    """How the report reads a study; every field checked when the record is made.

    Attributes:
        tolerance: nats above its context's best (BN or not) a run may end and still train.
        margin: decades within which BN − no BN counts as no difference.
        window: epochs each run's outcome is the median over (None: the study's own ``window``, else
            10; see :meth:`for_study`).
        resamples: bootstrap resamples of the answer.
        random_seed: the bootstrap's seed.
        confidence: the level of the intervals; tests are significant at ``1 - confidence``.
        edge_level: the success share at which a trainable range starts and ends.
        figure_formats: the files each figure is written as (PNG always first).
    """

    tolerance: float = 0.5
    margin: float = 0.25
    window: int | None = None
    resamples: int = 2000
    random_seed: int = 0
    confidence: float = 0.95
    edge_level: float = 0.5
    figure_formats: tuple[str, ...] = ("png",)

    #: The window when neither the caller nor the study names one, in epochs.
    DEFAULT_WINDOW = 10

    def __post_init__(self) -> None:
        try:
            formats = figure_formats_of(self.figure_formats)
        except ValueError as exc:
            raise ValueError(f"figure format: {exc}") from None
        object.__setattr__(self, "figure_formats", formats)
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """The first value out of bounds as ``"NAME VALUE: must be ..."`` (the flag's name without
        dashes), or None."""
        checks = [
            ("tolerance", math.isfinite(self.tolerance) and self.tolerance >= 0, "must be >= 0 nats"),
            ("margin", 0 < self.margin < 10, "must be in (0, 10) decades"),
            ("window", self.window is None or self.window >= 1, "must be >= 1 epoch"),
            ("resamples", self.resamples >= 100, "must be >= 100 (use >= 1000 for a quotable interval)"),
            ("seed", self.random_seed >= 0, "must be >= 0"),
            ("confidence", 0 < self.confidence < 1, "must be in (0, 1)"),
            ("edge_level", 0 < self.edge_level < 1, "must be in (0, 1)"),
        ]
        values = {"seed": self.random_seed}
        for name, ok, bound in checks:
            if not ok:
                return f"{name} {values.get(name, getattr(self, name, None))}: {bound}"
        return None

    def for_study(self, study_window: int | None) -> ReportSettings:
        """These settings with ``window`` filled in: the caller's, else the study's, else 10."""
        if self.window is not None:
            return self
        return dataclasses.replace(self, window=int(study_window or self.DEFAULT_WINDOW))

    def as_dict(self) -> dict[str, object]:
        """The fields ``answer.json`` records under ``settings`` (figure formats left out)."""
        return {
            "window": self.window,
            "tolerance": self.tolerance,
            "margin": self.margin,
            "edge_level": self.edge_level,
            "resamples": self.resamples,
            "random_seed": self.random_seed,
        }
