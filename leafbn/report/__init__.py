"""A study's report: the numbers (:mod:`~leafbn.report.analysis`, :mod:`~leafbn.report.robustness`,
:mod:`~leafbn.report.optuna_results`), the sentences (:mod:`~leafbn.report.prose`,
:mod:`~leafbn.report.caveats`), the figures (:mod:`~leafbn.report.plots`,
:mod:`~leafbn.report.robustness_plots`, :mod:`~leafbn.report.optuna_plots`), their rendering as
Markdown and HTML (:mod:`~leafbn.report.render`), the report's figure list and tables
(:mod:`~leafbn.report.figure_catalog`, :mod:`~leafbn.report.report_tables`), its one settings record
(:class:`ReportSettings`, :mod:`~leafbn.report.settings`), and :func:`write_report`, which puts them
together (:mod:`~leafbn.report.writer`).

The top room: it reads :mod:`leafbn.results` and :mod:`leafbn.config`; nothing imports it.
"""

from typing import Any

from leafbn.report.settings import FIGURE_FORMATS, ReportSettings, figure_formats_of


def __getattr__(name: str) -> Any:
    """``write_report`` imported on first use: the settings stay importable without pandas/matplotlib."""
    if name == "write_report":
        from leafbn.report.writer import write_report

        return write_report
    raise AttributeError(f"module 'leafbn.report' has no attribute {name!r}")


__all__ = ["write_report", "ReportSettings", "FIGURE_FORMATS", "figure_formats_of"]
