"""Write a study's report: ``RESULTS_DIR/report/`` with ``report.md``, ``report.html``, the PNGs and
``answer.json``.

:func:`write_report` reads the tables (:func:`leafbn.results.tables.load_tables`), computes the
numbers (:mod:`leafbn.report.analysis`, :mod:`leafbn.report.robustness`), draws them
(:mod:`leafbn.report.plots`, :mod:`leafbn.report.robustness_plots`), words them
(:mod:`leafbn.report.prose`, :mod:`leafbn.report.caveats`) and renders the same content twice
(:mod:`leafbn.report.render`): Markdown linking the PNGs beside it, and a self-contained HTML file.
``answer.json`` is the verdict, machine-readable (docs/results.md).

A partial or empty study still gets a report that says what is missing; problems become warnings
(re-emitted as :class:`UserWarning` and listed in the report), never a crash. Only a missing results
folder or ``trials.csv``, or an unreadable ``trials.csv``, raise.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from leafbn.report import (
    analysis,
    caveats,
    optuna_plots,
    optuna_results,
    plots,
    prose,
    robustness,
    robustness_plots,
)
from leafbn.report.render import Block, to_html, to_markdown
from leafbn.results import tables
from leafbn.results.record import StudyRecord

__all__ = ["write_report"]


def write_report(
    results_dir: str | Path,
    tolerance: float = analysis.DEFAULT_TOLERANCE,
    confidence: float = 0.95,
    threshold: float = robustness.DEFAULT_THRESHOLD,
    resamples: int = robustness.DEFAULT_RESAMPLES,
    window: int | None = None,
    random_seed: int = 0,
) -> Path:
    """Write ``RESULTS_DIR/report/`` (report.md, report.html, answer.json, PNGs); return the .md path.

    Args:
        results_dir: the study's folder (``trials.csv``; ``curves.csv``, ``config.json``,
            ``optuna_study.pkl`` or ``optuna.db`` when present).
        tolerance: nats above its family's best a successful run may end.
        confidence: the level of the intervals; tests are significant at ``1 - confidence``.
        threshold: the success rate at which a learning rate is stable, in (0, 1].
        resamples: bootstrap resamples of the answer (>= 100).
        window: epochs each run's outcome is the median over (None: the study's ``window`` in
            config.json, else :data:`leafbn.report.robustness.DEFAULT_WINDOW`).
        random_seed: the bootstrap's seed.

    Raises:
        FileNotFoundError: no such folder, or no ``trials.csv`` in it.
        ValueError: ``trials.csv`` is unreadable, or an option is out of range.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance {tolerance}: must be >= 0 nats")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence}: must be in (0, 1)")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold {threshold}: must be in (0, 1]")
    if resamples < 100:
        raise ValueError(f"resamples {resamples}: must be >= 100")
    if window is not None and window < 1:
        raise ValueError(f"window {window}: must be >= 1 epoch")
    root = Path(results_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, curves, record = tables.load_tables(root)
        if window is None:
            window = int(record.study.get("window") or robustness.DEFAULT_WINDOW)
        settings = dict(
            window=window,
            tolerance=tolerance,
            threshold=threshold,
            resamples=resamples,
            random_seed=random_seed,
        )
        out = root / "report"
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.png"):
            old.unlink()
        blocks, answer = _build(root, out, trials, curves, record, settings, confidence, caught)
    (out / "answer.json").write_text(json.dumps(answer, indent=2) + "\n", encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(to_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(to_html(blocks, out), encoding="utf-8")
    for message in _messages(caught):
        warnings.warn(message, UserWarning, stacklevel=2)
    return md_path


def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    """The distinct messages of the UserWarnings/RuntimeWarnings caught so far, in order."""
    seen: dict[str, None] = {}
    for w in caught:
        noise = w.category.__name__ in ("ExperimentalWarning", "FutureWarning", "DeprecationWarning")
        if issubclass(w.category, (UserWarning, RuntimeWarning)) and not noise:
            seen.setdefault(str(w.message), None)
    return list(seen)


def _build(
    root: Path,
    out: Path,
    trials: pd.DataFrame,
    curves: pd.DataFrame,
    record: StudyRecord,
    settings: dict[str, Any],
    confidence: float,
    caught: list,
) -> tuple[list[Block], dict[str, Any]]:
    name = record.study.get("name")
    blocks: list[Block] = [("h1", f"leafbn report: {name or root.resolve().name}")]
    expected = caveats.expected_trials(record, trials)
    if expected is not None and len(trials) < expected:
        warnings.warn(f"partial study: {len(trials)} of {expected} expected trials present", stacklevel=2)
    body: list[Block] = caveats.what_was_run(record, trials, expected)
    tolerance = settings["tolerance"]
    if trials.empty:
        body += [("h2", "Answer"), ("p", "No trials in `trials.csv`: nothing to analyse yet.")]
        body += caveats.caveats(record, trials, expected, None, None, tolerance, confidence)
        return blocks + _warning_block(caught) + body, robustness.answer_record([], settings)

    data, study = record.data, record.study
    classes = data.get("classes")
    chance = math.log(classes if isinstance(classes, int) and classes > 1 else 99)
    trials = robustness.add_outcomes(trials, curves, settings["window"])
    stats = analysis.aggregate(trials, confidence)
    paired = analysis.pair_nobn(trials)  # no-BN runs shared by every BN momentum/placement
    stab = robustness.stability(paired, tolerance, chance, settings["threshold"], confidence)
    answers, draws = robustness.bootstrap_answer(
        paired, tolerance, chance, settings["threshold"], settings["resamples"], settings["random_seed"]
    )
    effect = analysis.bn_effect(paired, confidence)
    body += [("h2", "Answer")]
    body += prose.answer(answers, analysis.aggregate(paired, confidence), effect, settings, confidence)
    rows, val_fraction = data.get("rows"), study.get("val_fraction")
    n_train = (
        rows - math.ceil(rows * val_fraction)
        if isinstance(rows, int) and isinstance(val_fraction, float)
        else None
    )
    body += prose.batch_size_section(answers, n_train, bool(study.get("drop_last")))
    body += prose.best(stats)
    body += _figures(
        root, out, trials, curves, stats, stab, answers, draws, effect, settings, chance, confidence
    )
    body += _tables(trials, stats, stab, effect, confidence)
    body += caveats.caveats(record, trials, expected, stats, effect, tolerance, confidence)
    return blocks + _warning_block(caught) + body, robustness.answer_record(answers, settings)


def _warning_block(caught: list) -> list[Block]:
    messages = _messages(caught)
    return [("h2", "Warnings"), ("ul", messages)] if messages else []


def _figures(
    root: Path,
    out: Path,
    trials: pd.DataFrame,
    curves: pd.DataFrame,
    stats: pd.DataFrame,
    stab: pd.DataFrame,
    answers: list[dict[str, Any]],
    draws: pd.DataFrame,
    effect: pd.DataFrame,
    settings: dict[str, Any],
    chance: float,
    confidence: float,
) -> list[Block]:
    """Draw every figure into ``out``; each becomes an image block whose caption says how to read it."""
    import matplotlib.pyplot as plt  # only to close Optuna's pyplot figures

    blocks: list[Block] = [("h2", "Figures")]

    def save(make, filename: str, caption: str) -> None:
        try:
            fig = make()
            # our figures lay themselves out (constrained); Optuna's need the tight bounding box
            tight = "tight" if fig.get_layout_engine() is None else None
            fig.savefig(out / filename, dpi=100, bbox_inches=tight)
            plt.close(fig)
            blocks.append(("img", filename, caption))
        except Exception as exc:
            warnings.warn(f"could not draw {filename} ({type(exc).__name__}: {exc})", stacklevel=2)

    cap = robustness_plots.CAP
    save(
        lambda: robustness_plots.plot_runs_vs_lr(trials),
        "runs_vs_lr.png",
        f"Every run: its outcome (median validation loss over its last {settings['window']} epochs) against "
        f"its learning rate; red ×: diverged runs, ▲: outcomes above {cap:g} nats. Where one colour's points "
        "stay low over more learning rates, that arm is more robust.",
    )
    save(
        lambda: robustness_plots.plot_success_rate(stab, settings["threshold"]),
        "success_rate.png",
        "Share of runs that succeed at each learning rate (band: Wilson 95% interval); a learning rate is "
        f"stable where its line reaches the dashed threshold ({settings['threshold']:.0%}).",
    )
    if answers:
        save(
            lambda: robustness_plots.plot_bootstrap(draws, answers),
            "bootstrap.png",
            f"How sure the answer is: BN's stable range minus no-BN's, in decades, over "
            f"{settings['resamples']} resamples of the runs; the share right of 0 is P(BN wider), "
            "the solid line the estimate, the dotted ones its 95% interval.",
        )
    eb = robustness.expected_best(trials, chance)
    if len(eb):
        save(
            lambda: robustness_plots.plot_expected_best(eb),
            "expected_best.png",
            "Expected best outcome when tuning each arm with n runs drawn at random from its grid "
            "(Dodge et al. 2019; band ± 1 s.d.): the lower curve is easier to tune at that budget; a "
            "diverged run counts as a uniform guess.",
        )
    save(
        lambda: plots.plot_loss_vs_lr(stats, confidence),
        "loss_vs_lr.png",
        f"Mean outcome (validation) and final training loss per learning rate ({confidence:.0%} CI band); "
        f"X: diverged runs, ▲: means above {cap:g} nats.",
    )
    if len(effect) and (~effect["status"].isin(["no BN side", "no no-BN side"])).any():
        save(
            lambda: plots.plot_bn_effect(effect, confidence),
            "bn_effect.png",
            "BN minus no-BN mean outcome per learning rate (Welch CI); below 0 BN ends lower; filled markers "
            "are significant after Holm's correction.",
        )
    curve_stats = analysis.curve_summary(trials, curves, confidence)
    if len(curve_stats):
        save(
            lambda: plots.plot_learning_curves(curve_stats),
            "learning_curves.png",
            f"Learning curves per learning rate (mean over the seeds still finite); axis capped at {cap:g} "
            "nats, epochs above it are counted in the panel.",
        )
    elif len(curves):
        warnings.warn("curves.csv shares no trial_id with trials.csv: no learning curves", stacklevel=2)
    for axis in analysis.heatmap_axes(trials):
        heat = analysis.heatmap_data(trials, axis)
        if len(heat):
            save(
                lambda heat=heat, axis=axis: plots.plot_heatmaps(heat, axis),
                f"heatmap_{axis}.png",
                f"Mean outcome and divergence rate over learning rate × {axis}, per BN setting.",
            )
    study = optuna_results.load_optuna_study(root)
    if study is not None:
        save(
            lambda: optuna_plots.plot_optimization_history(study),
            "optuna_history.png",
            "Optuna optimisation history.",
        )
        importances = optuna_results.param_importances(study)
        if len(importances):
            save(
                lambda: optuna_plots.plot_param_importances(study),
                "optuna_importances.png",
                "Optuna hyperparameter importances.",
            )
            blocks += [
                ("h3", "Optuna hyperparameter importances (optuna.importance.get_param_importances)"),
                ("table", importances.assign(importance=importances["importance"].round(3))),
            ]
    return blocks


def _tables(
    trials: pd.DataFrame,
    stats: pd.DataFrame,
    stab: pd.DataFrame,
    effect: pd.DataFrame,
    confidence: float,
) -> list[Block]:
    level = f"{confidence:.0%}"
    vary = prose.varying(trials, exclude=("lr", "bn"))
    blocks: list[Block] = [("h2", "Tables")]
    s = stab[[*[c for c in ("bn", *vary, "lr") if c in stab.columns]]].copy()
    s["success"] = [f"{k}/{n}" for k, n in zip(stab["n_success"], stab["n_runs"])]
    s["success rate [Wilson 95%]"] = [
        f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
        for r, lo, hi in zip(stab["success_rate"], stab["success_ci_low"], stab["success_ci_high"])
    ]
    s["diverged"] = stab["n_diverged"]
    s["median [IQR]"] = [
        "—" if not math.isfinite(m) else f"{m:.4f} [{a:.4f}, {b:.4f}]"
        for m, a, b in zip(stab["outcome_median"], stab["outcome_q1"], stab["outcome_q3"])
    ]
    s["family best"] = stab["family_best"]
    s["stable"] = stab["stable"]
    blocks += [("h3", "Success per configuration (outcome = median of the last epochs)"), ("table", s)]
    if len(effect):
        e = effect[[*vary, "lr", "val_loss_nobn", "val_loss_bn", "diff", "ci_low", "ci_high", "p_value",
                    "p_welch_holm", "p_mw", "p_mw_holm", "significant", "tests_agree", "status"]]  # fmt: skip
        e = e.rename(columns={
            "ci_low": f"{level} CI low", "ci_high": f"{level} CI high", "diff": "BN − no BN",
            "p_value": "p Welch", "p_welch_holm": "p Welch (Holm)", "p_mw": "p Mann–Whitney",
            "p_mw_holm": "p Mann–Whitney (Holm)", "tests_agree": "tests agree",
        })  # fmt: skip
        blocks += [("h3", f"BN − no-BN mean outcome per learning rate ({level} Welch CI; Holm across LRs)"),
                   ("table", e)]  # fmt: skip

    def cell(mean: float, std: float, ci: float) -> str:
        if not math.isfinite(mean):
            return "—"
        text = f"{mean:.4f}" + (f" ± {std:.4f}" if math.isfinite(std) else "")
        return text + (f" [{mean - ci:.4f}, {mean + ci:.4f}]" if math.isfinite(ci) else "")

    per = stats[[*[c for c in ("lr", "bn", *vary) if c in stats.columns]]].copy()
    per["runs"] = stats["n_runs"]
    per["diverged"] = stats["n_diverged"]
    per[f"outcome mean ± std [{level} CI]"] = [
        cell(m, s, c) for m, s, c in zip(stats["val_loss_mean"], stats["val_loss_std"], stats["val_loss_ci"])
    ]
    per["outcome median"] = stats["val_loss_median"]
    per["val accuracy mean ± std"] = [
        cell(m, s, math.nan) for m, s in zip(stats["val_accuracy_mean"], stats["val_accuracy_std"])
    ]
    per["train loss mean ± std"] = [
        cell(m, s, math.nan) for m, s in zip(stats["train_loss_mean"], stats["train_loss_std"])
    ]
    blocks += [("h3", "Per configuration (non-diverged runs)"), ("table", per)]
    return blocks
