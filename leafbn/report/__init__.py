"""A study's report: the numbers (:mod:`~leafbn.report.analysis`, :mod:`~leafbn.report.robustness`,
:mod:`~leafbn.report.optuna_results`), the sentences (:mod:`~leafbn.report.prose`,
:mod:`~leafbn.report.caveats`), the figures (:mod:`~leafbn.report.plots`,
:mod:`~leafbn.report.robustness_plots`, :mod:`~leafbn.report.optuna_plots`), their rendering as
Markdown and HTML (:mod:`~leafbn.report.render`), and :func:`write_report`, which puts them together
(:mod:`~leafbn.report.writer`).

The top room: it reads :mod:`leafbn.results` and :mod:`leafbn.config`; nothing imports it.
"""

from leafbn.report.writer import FIGURE_FORMATS, figure_formats_of, write_report

__all__ = ["write_report", "FIGURE_FORMATS", "figure_formats_of"]
