"""Write a study's report: ``RESULTS_DIR/report/`` with ``report.md``, its PNGs and ``report.html``.

:func:`write_report` reads the tables (:func:`leafbn.analysis.load_tables`), computes the numbers
(:mod:`leafbn.analysis`), draws them (:mod:`leafbn.plots`) and writes the same content twice: a
Markdown file that links the PNGs beside it, and a self-contained HTML file with every image
embedded as a ``data:image/png;base64,`` URI (no external file, script or stylesheet).

Every sentence of the answer is computed from the tables, so a study where BN does not help, or
where nothing is significant, says so. A partial or empty study still gets a report that says what
is missing; problems become warnings (re-emitted as :class:`UserWarning` and listed in the report),
never a crash. Only a missing results folder or ``trials.csv``, or an unreadable ``trials.csv``,
raise.
"""

from __future__ import annotations

import base64
import html
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leafbn import analysis, plots
from leafbn.config import TRIAL_FIELDS

__all__ = ["write_report"]

_ON_OFF = {True: "BN", False: "no BN"}
_WITH = {True: "With BN", False: "Without BN"}
# A block of the report: ("h1"|"h2"|"h3"|"p", text), ("ul", [text, ...]), ("table", df), ("img", file, alt).
Block = tuple


def write_report(
    results_dir: str | Path,
    tolerance: float = analysis.DEFAULT_TOLERANCE,
    confidence: float = 0.95,
) -> Path:
    """Write ``RESULTS_DIR/report/report.md``, ``report.html`` and the PNGs; return the ``.md`` path.

    Args:
        results_dir: the study's folder (``trials.csv``; ``curves.csv``, ``config.json``,
            ``optuna_study.pkl`` or ``optuna.db`` when present).
        tolerance: the stable-LR tolerance in nats over the family's best mean validation loss
            (see :func:`leafbn.analysis.stable_lr_range`).
        confidence: the level of the confidence intervals; tests are significant at ``1 - confidence``.

    Returns:
        The path of ``report.md``. ``report/`` is regenerated: PNGs from an earlier report are removed.

    Raises:
        FileNotFoundError: no such folder, or no ``trials.csv`` in it.
        ValueError: ``trials.csv`` is unreadable, or ``tolerance``/``confidence`` is out of range.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance {tolerance}: must be >= 0 nats")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence}: must be in (0, 1)")
    root = Path(results_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, curves, config = analysis.load_tables(root)
        out = root / "report"
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.png"):
            old.unlink()
        blocks = _build(root, out, trials, curves, config, tolerance, confidence, caught)
    md_path = out / "report.md"
    md_path.write_text(_to_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(_to_html(blocks, out), encoding="utf-8")
    for message in _messages(caught):
        warnings.warn(message, UserWarning, stacklevel=2)
    return md_path


# ------------------------------------------------------------------------------------------------
# Content
# ------------------------------------------------------------------------------------------------
def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    """The distinct messages of the UserWarnings/RuntimeWarnings caught so far, in order."""
    seen: dict[str, None] = {}
    for w in caught:
        if issubclass(w.category, (UserWarning, RuntimeWarning)) and not _is_noise(w):
            seen.setdefault(str(w.message), None)
    return list(seen)


def _is_noise(w: warnings.WarningMessage) -> bool:
    """Library chatter (Optuna's experimental API, deprecations), not a problem of the study."""
    return w.category.__name__ in ("ExperimentalWarning", "FutureWarning", "DeprecationWarning")


def _build(
    root: Path,
    out: Path,
    trials: pd.DataFrame,
    curves: pd.DataFrame,
    config: dict[str, Any],
    tolerance: float,
    confidence: float,
    caught: list,
) -> list[Block]:
    name = config.get("study", {}).get("name") if isinstance(config.get("study"), dict) else None
    blocks: list[Block] = [("h1", f"leafbn report: {name or root.resolve().name}")]
    expected = _expected_trials(config, trials)
    if expected is not None and len(trials) < expected:
        warnings.warn(f"partial study: {len(trials)} of {expected} expected trials present", stacklevel=2)
    body: list[Block] = []
    body += _what_was_run(config, trials, expected)
    if trials.empty:
        body += [("h2", "Answer"), ("p", "No trials in `trials.csv`: nothing to analyse yet.")]
        body += _caveats(config, trials, expected, None, None, tolerance, confidence)
        return blocks + _warning_block(caught) + body

    stats = analysis.aggregate(trials, confidence)
    paired = analysis.pair_nobn(trials)  # no-BN trials shared by every BN momentum/placement
    classes = (config.get("data") or {}).get("classes") if isinstance(config.get("data"), dict) else None
    chance = math.log(classes if isinstance(classes, int) and classes > 1 else 99)
    ranges = analysis.stable_lr_range(paired, tolerance, chance=chance)
    effect = analysis.bn_effect(paired, confidence)
    body += [("h2", "Answer")]
    body += _answer(analysis.aggregate(paired, confidence), ranges, effect, tolerance, confidence)
    body += _best(stats)
    body += _figures(root, out, trials, curves, stats, effect, confidence)
    body += _tables(trials, stats, ranges, effect, tolerance, confidence)
    body += _caveats(config, trials, expected, stats, effect, tolerance, confidence)
    return blocks + _warning_block(caught) + body


def _warning_block(caught: list) -> list[Block]:
    messages = _messages(caught)
    if not messages:
        return []
    return [("h2", "Warnings"), ("ul", messages)]


def _expected_trials(config: dict[str, Any], trials: pd.DataFrame) -> int | None:
    run = config.get("run") if isinstance(config.get("run"), dict) else {}
    if isinstance(run.get("trials_expected"), (int, float)) and not isinstance(
        run.get("trials_expected"), bool
    ):
        return int(run["trials_expected"])
    grid = _grid(config)
    return len(grid) if grid is not None else None


def _grid(config: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The study's full grid from ``config.json``'s ``study`` (None when absent or invalid)."""
    study = config.get("study")
    if not isinstance(study, dict):
        return None
    try:
        from leafbn.config import StudyConfig

        return StudyConfig.from_dict(study).trial_configs()
    except Exception as exc:  # noqa: BLE001 - a config from another version must not stop the report
        warnings.warn(
            f"config.json's study settings are not a valid StudyConfig ({exc}); grid unknown", stacklevel=2
        )
        return None


def _what_was_run(config: dict[str, Any], trials: pd.DataFrame, expected: int | None) -> list[Block]:
    items: list[str] = []
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    study = config.get("study") if isinstance(config.get("study"), dict) else {}
    run = config.get("run") if isinstance(config.get("run"), dict) else {}
    versions = config.get("versions") if isinstance(config.get("versions"), dict) else {}
    if data:
        sha = str(data.get("sha256", ""))[:12]
        items.append(
            "Data: "
            + ", ".join(f"{k} {data[k]}" for k in ("source", "rows", "classes", "features") if k in data)
            + (f", sha256 {sha}…" if sha else "")
        )
    if study:
        axes = ", ".join(f"{k} {_values(study[k])}" for k in TRIAL_FIELDS if k in study)
        items.append(f"Grid: {axes}")
        training = ", ".join(
            f"{k} {study[k]}"
            for k in (
                "seeds",
                "seed_base",
                "epochs",
                "batch_size",
                "drop_last",
                "momentum",
                "decay",
                "val_fraction",
                "split_seed",
                "standardize",
            )
            if k in study
        )
        items.append(f"Settings: {training}")
    elif not trials.empty:
        axes = ", ".join(
            f"{k} {_values(sorted(trials[k].dropna().unique().tolist()))}"
            for k in TRIAL_FIELDS
            if k in trials.columns
        )
        items.append(f"Grid (from trials.csv; config.json missing): {axes}")
    n_conf = (
        len(trials.drop_duplicates([f for f in TRIAL_FIELDS if f in trials.columns])) if len(trials) else 0
    )
    seeds = (
        trials.groupby([f for f in TRIAL_FIELDS if f in trials.columns], dropna=False).size()
        if len(trials)
        else None
    )
    seed_text = (
        ""
        if seeds is None
        else (
            f", {seeds.min()} seeds each"
            if seeds.min() == seeds.max()
            else f", {seeds.min()}–{seeds.max()} seeds each"
        )
    )
    n_div = int(trials["diverged"].sum()) if len(trials) else 0
    items.append(
        f"Trials: {len(trials)} present"
        + (f" of {expected} expected" if expected is not None else "")
        + f", {n_conf} configurations{seed_text}, {n_div} diverged"
    )
    if run:
        wall = run.get("wall_time_s")
        wall_text = _duration(wall) if isinstance(wall, (int, float)) else "unknown"
        items.append(
            f"Run: started {run.get('started', '?')}, finished {run.get('finished', '?')}, "
            f"wall time {wall_text}, "
            f"Ray nodes {run.get('ray_nodes', '?')}, CPUs {run.get('ray_cpus', '?')}, "
            f"trials finished {run.get('trials_finished', '?')}"
        )
    elif "node_id" in trials.columns and len(trials):
        items.append(
            f"Run: config.json has no run record; trials ran on {trials['node_id'].nunique()} Ray node(s)"
        )
    if versions:
        items.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if not config:
        items.append("config.json is missing: data record, settings and run times unknown")
    return [("h2", "What was run"), ("ul", items)]


def _values(values: Any) -> str:
    if isinstance(values, (list, tuple)):
        return "{" + ", ".join(_fmt(v) for v in values) + "}"
    return _fmt(values)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def _fmt(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "on" if value else "off"
    if isinstance(value, (float, np.floating)):
        return "—" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _lrs(values: Any) -> str:
    values = sorted(float(v) for v in values)
    return ", ".join(f"{v:g}" for v in values)


def _context_label(key: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in key.items())


def _varying(df: pd.DataFrame, exclude: tuple[str, ...] = ()) -> list[str]:
    """The axes of TRIAL_FIELDS that ``df`` has and that take several values there, less ``exclude``."""
    present = [f for f in TRIAL_FIELDS if f in df.columns and f not in exclude]
    return [f for f in present if df[f].nunique(dropna=False) > 1]


def _contexts(df: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Split by the axes other than lr and bn that take several values."""
    axes = _varying(df, exclude=("lr", "bn"))
    if not axes:
        return [({}, df)]
    return [
        (dict(zip(axes, k if isinstance(k, tuple) else (k,))), g)
        for k, g in df.groupby(axes, dropna=False, sort=True)
    ]


def _answer(
    stats: pd.DataFrame, ranges: pd.DataFrame, effect: pd.DataFrame, tolerance: float, confidence: float
) -> list[Block]:
    """The seed's question — does BN make the net robust to its learning rate? — in sentences."""
    definition = (
        f"Stable learning rate: no run diverged, the mean final validation loss beats a uniform "
        f"guess (ln of the number of classes) and is within "
        f"{tolerance:g} nats of the family's best; the stable range is the contiguous run of such "
        f"learning rates around the best one, in decades (log10 max/min)."
    )
    blocks: list[Block] = [("p", definition)]
    alpha = 1 - confidence
    range_ctx = {tuple(k.items()): g for k, g in _contexts(ranges)}
    effect_ctx = {tuple(k.items()): g for k, g in _contexts(effect)} if len(effect) else {}
    for key, fam in _contexts(stats):
        sentences: list[str] = []
        ranges_here = range_ctx.get(tuple(key.items()), ranges.iloc[0:0])
        on = ranges_here[ranges_here["bn"]]
        off = ranges_here[~ranges_here["bn"]]
        if on.empty or off.empty:
            missing = "BN" if on.empty else "no-BN"
            sentences.append(f"There are no {missing} trials here, so BN cannot be compared.")
        else:
            on, off = on.iloc[0], off.iloc[0]
            sentences.append(_range_sentence(on, off))
            sentences.append(_verdict_sentence(on, off))
            sentences.append(_edge_sentence(on, off, fam["lr"]))
        for bn in (False, True):
            side = fam[fam["bn"] == bn]
            if len(side):
                sentences.append(_divergence_sentence(side, bn))
        eff = effect_ctx.get(tuple(key.items()))
        if eff is not None and len(eff):
            sentences.append(_effect_sentence(eff, alpha))
        text = " ".join(s for s in sentences if s)
        if key:
            blocks.append(("h3", _context_label(key)))
        blocks.append(("p", text))
    return blocks


def _range_sentence(on: pd.Series, off: pd.Series) -> str:
    def span(r: pd.Series) -> str:
        if not math.isfinite(r["stable_decades"]):
            return "no learning rate is stable"
        if r["n_stable_lrs"] == 1:
            return f"only learning rate {r['stable_lr_min']:g} is stable (a range of 0 decades)"
        return (
            f"the stable learning-rate range spans {r['stable_decades']:.1f} decades "
            f"({r['stable_lr_min']:g} to {r['stable_lr_max']:g})"
        )

    def top(r: pd.Series, name: str) -> str:
        if math.isfinite(r["max_lr_no_divergence"]):
            return f"{r['max_lr_no_divergence']:g} {name}"
        return f"none {name} (every learning rate had a diverged run)"

    return (
        f"With BN, {span(on)}; without BN, {span(off)}. The highest learning rate at which no run diverged "
        f"is {top(on, 'with BN')} and {top(off, 'without')}."
    )


def _verdict_sentence(on: pd.Series, off: pd.Series) -> str:
    d_on = on["stable_decades"] if math.isfinite(on["stable_decades"]) else -1.0
    d_off = off["stable_decades"] if math.isfinite(off["stable_decades"]) else -1.0
    if d_on < 0 and d_off < 0:
        return (
            "Neither setting trained stably at any learning rate of this grid, "
            "so robustness cannot be compared."
        )
    if d_on > d_off:
        how = (
            f"wider by {d_on - max(d_off, 0):.1f} decades"
            if d_off >= 0
            else "a stable range where no-BN has none"
        )
        return f"In this study BN made the network more robust to its learning rate (stable range {how})."
    if d_on < d_off:
        how = (
            f"narrower by {d_off - max(d_on, 0):.1f} decades"
            if d_on >= 0
            else "no stable range where no-BN has one"
        )
        return f"In this study BN made the network less robust to its learning rate (stable range {how})."
    m_on, m_off = on["max_lr_no_divergence"], off["max_lr_no_divergence"]
    m_on = m_on if math.isfinite(m_on) else -math.inf
    m_off = m_off if math.isfinite(m_off) else -math.inf
    if m_on > m_off:
        return (
            "BN did not widen the stable range, but it trained without divergence at higher learning rates."
        )
    if m_on < m_off:
        return (
            "BN did not change the stable range's width, and it diverged at lower learning rates than no BN."
        )
    return "In this study BN did not change how robust the network is to its learning rate."


def _edge_sentence(on: pd.Series, off: pd.Series, lrs: pd.Series) -> str:
    """Say where a stable range is cut by the grid rather than by the loss (it may extend further)."""
    lo, hi = float(lrs.min()), float(lrs.max())
    notes = []
    for r, name in ((off, "no-BN"), (on, "BN")):
        ends = [
            w
            for w, hit in (("lowest", r["stable_lr_min"] == lo), ("highest", r["stable_lr_max"] == hi))
            if hit
        ]
        if ends and math.isfinite(r["stable_decades"]):
            notes.append(f"the {name} range reaches the {' and '.join(ends)} learning rate tried")
    if not notes:
        return ""
    text = "; ".join(notes)
    return text[0].upper() + text[1:] + ", so it may extend beyond the grid."


def _divergence_sentence(side: pd.DataFrame, bn: bool) -> str:
    name = _WITH[bn]
    runs, div = int(side["n_runs"].sum()), int(side["n_diverged"].sum())
    if div == 0:
        return f"{name}: none of {runs} runs diverged."
    hit = side[side["n_diverged"] > 0].sort_values("lr")
    lowest = float(hit["lr"].min())
    above = side[side["lr"] >= lowest]
    where = (
        f"at every learning rate ≥ {lowest:g}"
        if (above["n_diverged"] > 0).all()
        else f"at learning rates {_lrs(hit['lr'])}"
    )
    every = " in every seed" if (hit["n_diverged"] == hit["n_runs"]).all() else ""
    return f"{name}: {div} of {runs} runs diverged, {where}{every}."


def _effect_sentence(eff: pd.DataFrame, alpha: float) -> str:
    ok = eff[eff["status"] == "ok"]
    lower = ok[ok["significant"] & (ok["diff"] < 0)]
    higher = ok[ok["significant"] & (ok["diff"] > 0)]
    same = ok[~ok["significant"]]
    parts = []
    test = f"By Welch's t-test across seeds at p < {alpha:g}"
    if len(lower):
        parts.append(
            f"significantly lower at learning rate {_lrs(lower['lr'])} (by {_range_of(-lower['diff'])} nats)"
        )
    if len(higher):
        parts.append(
            f"significantly higher at learning rate {_lrs(higher['lr'])} "
            f"(by {_range_of(higher['diff'])} nats)"
        )
    if len(same):
        parts.append(f"not significantly different at learning rate {_lrs(same['lr'])}")
    text = (f"{test}: BN's mean final validation loss is " + "; ".join(parts) + ".") if parts else ""
    untested = eff[eff["status"] != "ok"]
    for status, group in untested.groupby("status", sort=False):
        text += f" No test at {_lrs(group['lr'])}: {status}."
    return text.strip()


def _range_of(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:.2g}" if f"{lo:.2g}" == f"{hi:.2g}" else f"{lo:.2g}–{hi:.2g}"


def _best(stats: pd.DataFrame) -> list[Block]:
    clean = stats[(stats["n_diverged"] == 0) & (stats["n_ok"] > 0)]
    blocks: list[Block] = [("h2", "Best configuration")]
    if clean.empty:
        return blocks + [("p", "No configuration finished all its seeds without diverging.")]
    axes = [f for f in TRIAL_FIELDS if f in stats.columns]
    items = []
    for bn in (None, True, False):
        part = clean if bn is None else clean[clean["bn"] == bn]
        if part.empty:
            continue
        row = part.loc[part["val_loss_mean"].idxmin()]
        what = ", ".join(f"{k}={_fmt(row[k])}" for k in axes)
        acc = (
            f", validation accuracy {row['val_accuracy_mean']:.3f}"
            if math.isfinite(row["val_accuracy_mean"])
            else ""
        )
        std = f" ± {row['val_loss_std']:.3f}" if math.isfinite(row["val_loss_std"]) else ""
        label = "Overall" if bn is None else f"Best with {_ON_OFF[bn]}"
        items.append(
            f"{label}: {what} — mean final validation loss {row['val_loss_mean']:.4f}{std} "
            f"over {int(row['n_ok'])} seeds{acc}."
        )
    return blocks + [("ul", items)]


def _figures(
    root: Path,
    out: Path,
    trials: pd.DataFrame,
    curves: pd.DataFrame,
    stats: pd.DataFrame,
    effect: pd.DataFrame,
    confidence: float,
) -> list[Block]:
    import matplotlib.pyplot as plt

    blocks: list[Block] = [("h2", "Figures")]

    def save(make, filename: str, alt: str) -> None:
        try:
            fig = make()
            # our figures lay themselves out (constrained); Optuna's need the tight bounding box
            tight = "tight" if fig.get_layout_engine() is None else None
            fig.savefig(out / filename, dpi=100, bbox_inches=tight)
            plt.close(fig)
            blocks.append(("img", filename, alt))
        except Exception as exc:  # noqa: BLE001 - one failed figure must not stop the report
            warnings.warn(f"could not draw {filename} ({type(exc).__name__}: {exc})", stacklevel=2)

    save(
        lambda: plots.plot_loss_vs_lr(stats, confidence),
        "loss_vs_lr.png",
        "Final validation and training cross-entropy vs learning rate, BN vs no BN",
    )
    if len(effect) and (~effect["status"].isin(["no BN side", "no no-BN side"])).any():
        save(
            lambda: plots.plot_bn_effect(effect, confidence),
            "bn_effect.png",
            "BN minus no-BN mean final validation loss per learning rate",
        )
    curve_stats = analysis.curve_summary(trials, curves, confidence)
    if len(curve_stats):
        save(
            lambda: plots.plot_learning_curves(curve_stats),
            "learning_curves.png",
            "Learning curves per learning rate, BN vs no BN",
        )
    elif len(curves):
        warnings.warn("curves.csv shares no trial_id with trials.csv: no learning curves", stacklevel=2)
    for axis in analysis.heatmap_axes(trials):
        heat = analysis.heatmap_data(trials, axis)
        if len(heat):
            save(
                lambda heat=heat, axis=axis: plots.plot_heatmaps(heat, axis),
                f"heatmap_{axis}.png",
                f"Mean validation loss and divergence rate over learning rate x {axis}",
            )
    study = analysis.load_optuna_study(root)
    if study is not None:
        save(
            lambda: plots.plot_optimization_history(study),
            "optuna_history.png",
            "Optuna optimisation history",
        )
        importances = analysis.param_importances(study)
        if len(importances):
            save(
                lambda: plots.plot_param_importances(study),
                "optuna_importances.png",
                "Optuna hyperparameter importances",
            )
            blocks += [
                ("h3", "Optuna hyperparameter importances (optuna.importance.get_param_importances)"),
                ("table", importances.assign(importance=importances["importance"].round(3))),
            ]
    return blocks


def _tables(
    trials: pd.DataFrame,
    stats: pd.DataFrame,
    ranges: pd.DataFrame,
    effect: pd.DataFrame,
    tolerance: float,
    confidence: float,
) -> list[Block]:
    level = f"{confidence:.0%}"
    blocks: list[Block] = [("h2", "Tables")]
    vary = _varying(trials, exclude=("lr", "bn"))

    r = ranges[
        [
            *[c for c in ("bn", *vary) if c in ranges.columns],
            "stable_decades",
            "stable_lr_min",
            "stable_lr_max",
            "best_lr",
            "best_val_loss",
            "max_lr_no_divergence",
            "min_lr_divergence",
            "n_diverged",
            "n_runs",
        ]
    ]
    blocks += [("h3", f"Stable learning-rate range per family (tolerance {tolerance:g} nats)"), ("table", r)]

    if len(effect):
        e = effect[
            [
                *vary,
                "lr",
                "val_loss_nobn",
                "val_loss_bn",
                "diff",
                "ci_low",
                "ci_high",
                "p_value",
                "significant",
                "n_nobn_diverged",
                "n_nobn",
                "n_bn_diverged",
                "n_bn",
                "status",
            ]
        ]
        e = e.rename(
            columns={"ci_low": f"{level} CI low", "ci_high": f"{level} CI high", "diff": "BN − no BN"}
        )
        blocks += [
            ("h3", f"BN − no-BN final validation loss per learning rate (Welch t-test, {level} CI)"),
            ("table", e),
        ]

    def cell(mean: float, std: float, ci: float) -> str:
        if not math.isfinite(mean):
            return "—"
        text = f"{mean:.4f}"
        if math.isfinite(std):
            text += f" ± {std:.4f}"
        if math.isfinite(ci):
            text += f" [{mean - ci:.4f}, {mean + ci:.4f}]"
        return text

    per = stats[[*[c for c in ("lr", "bn", *vary) if c in stats.columns]]].copy()
    per["runs"] = stats["n_runs"]
    per["diverged"] = stats["n_diverged"]
    per[f"val loss mean ± std [{level} CI]"] = [
        cell(m, s, c) for m, s, c in zip(stats["val_loss_mean"], stats["val_loss_std"], stats["val_loss_ci"])
    ]
    per["val accuracy mean ± std"] = [
        cell(m, s, math.nan) for m, s in zip(stats["val_accuracy_mean"], stats["val_accuracy_std"])
    ]
    per["train loss mean ± std"] = [
        cell(m, s, math.nan) for m, s in zip(stats["train_loss_mean"], stats["train_loss_std"])
    ]
    blocks += [("h3", "Per configuration (final values, non-diverged seeds)"), ("table", per)]
    if vary:
        blocks += [
            ("h3", "Summary per learning rate × BN (other axes pooled)"),
            ("table", analysis.summary(trials)),
        ]
    return blocks


def _caveats(
    config: dict[str, Any],
    trials: pd.DataFrame,
    expected: int | None,
    stats: pd.DataFrame | None,
    effect: pd.DataFrame | None,
    tolerance: float,
    confidence: float,
) -> list[Block]:
    items: list[str] = []
    if expected is not None:
        items.append(
            f"{len(trials)} of {expected} expected trials are present"
            + (
                " (config.json run.trials_expected)."
                if isinstance(config.get("run"), dict) and "trials_expected" in config["run"]
                else " (from config.json's grid)."
            )
        )
        missing = _missing_configs(config, trials)
        if missing:
            items.append(
                "Missing: "
                + "; ".join(missing[:10])
                + (f"; and {len(missing) - 10} more" if len(missing) > 10 else "")
                + "."
            )
    else:
        items.append(
            f"{len(trials)} trials present; the expected number is unknown (no config.json run record)."
        )
    if len(trials):
        div = int(trials["diverged"].sum())
        if div:
            items.append(
                f"{div} trial(s) diverged: they count in divergence rates and are left out of every mean; "
                "where only some seeds of a configuration diverged, its mean describes the survivors."
            )
        na = int((~trials["diverged"] & ~np.isfinite(trials["final_val_loss"].astype(float))).sum())
        if na:
            items.append(
                f"{na} trial(s) did not diverge but have no finite final validation loss (failed?): left out."
            )
        if "retries" in trials.columns and trials["retries"].fillna(0).sum() > 0:
            items.append(
                f"{int((trials['retries'].fillna(0) > 0).sum())} trial(s) were restarted by Ray Tune "
                "after a failure."
            )
        keys = [f for f in TRIAL_FIELDS if f in trials.columns]
        few = trials.groupby(keys, dropna=False).size()
        if (few < 2).any():
            items.append(f"{int((few < 2).sum())} configuration(s) have a single seed: no CI or test there.")
    if stats is not None and len(stats):
        items += _skew_caveat(stats, tolerance)
    if effect is not None:
        n_tests = int((effect["status"] == "ok").sum())
        if n_tests > 1:
            items.append(
                f"{n_tests} Welch t-tests at p < {1 - confidence:g} without correction for multiple "
                f"comparisons: about {n_tests * (1 - confidence):.1f} false positive(s) expected by chance."
            )
    study = config.get("study") if isinstance(config.get("study"), dict) else {}
    split = (
        f" (split_seed {study['split_seed']}, validation fraction {study['val_fraction']})"
        if {"split_seed", "val_fraction"} <= set(study)
        else ""
    )
    items.append(
        f"One train/validation split{split}: the spread across seeds leaves out the split's variance; "
        "there is no separate test set."
    )
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    items.append(
        f"One data set ({data.get('source', 'Leaf Classification features')}): "
        "the answer may not carry over to other data or architectures."
    )
    items.append(
        f"The stable range depends on the tolerance ({tolerance:g} nats) and on the grid's spacing: "
        "a range is measured between grid points, never between them."
    )
    if len(trials) and "bn_momentum" in trials.columns and trials["bn_momentum"].nunique() > 1:
        items.append(
            "bn_momentum (and bn_placement) do nothing without BN: "
            "no-BN trials that differ only there repeat each other."
        )
    return [("h2", "Caveats"), ("ul", items)]


def _skew_caveat(stats: pd.DataFrame, tolerance: float) -> list[str]:
    """Configurations whose mean final validation loss exceeds its median by more than ``tolerance``.

    There a few seeds' final losses are far above the rest (a loss that spikes from one epoch to
    the next does this), and the mean, on which the stable range and the t-tests rest, follows them.
    """
    skewed = stats[stats["val_loss_mean"] - stats["val_loss_median"] > tolerance]
    if skewed.empty:
        return []
    varying = _varying(stats) or ["lr"]
    shown = []
    for _, r in skewed.iterrows():
        label = _context_label({a: r[a] for a in varying})
        shown.append(f"{label} (mean {_fmt(r['val_loss_mean'])}, median {_fmt(r['val_loss_median'])})")
    more = f"; and {len(shown) - 10} more" if len(shown) > 10 else ""
    return [
        f"{len(shown)} configuration(s) have a mean final validation loss more than {tolerance:g} nats above "
        f"their median: {'; '.join(shown[:10])}{more}. A few seeds ended far above the others (a validation "
        "loss that spikes from epoch to epoch does this), and the stable range and the t-tests, which use "
        "means, follow those seeds: look at the learning curves before reading the answer."
    ]


def _missing_configs(config: dict[str, Any], trials: pd.DataFrame) -> list[str]:
    """Configurations of the grid with fewer trials present than seeds asked for."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = _grid(config)
    if grid is None:
        return []
    axes = [f for f in TRIAL_FIELDS if f in grid[0]] if grid else []

    def key(values: dict[str, Any]) -> tuple:
        return tuple(
            round(float(values[a]), 12)
            if isinstance(values[a], (int, float, np.number)) and not isinstance(values[a], (bool, np.bool_))
            else values[a]
            for a in axes
        )

    want: dict[tuple, int] = {}
    for g in grid:
        want[key(g)] = want.get(key(g), 0) + 1
    have: dict[tuple, int] = {}
    if len(trials) and set(axes) <= set(trials.columns):
        for rec in trials[axes].to_dict("records"):
            have[key(rec)] = have.get(key(rec), 0) + 1
    out = []
    for k, n in want.items():
        if have.get(k, 0) < n:
            out.append(
                ", ".join(f"{a}={_fmt(v)}" for a, v in zip(axes, k)) + f" ({have.get(k, 0)}/{n} seeds)"
            )
    return out


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------
def _display(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text: floats to 4 significant digits, ``bn`` on/off, other booleans yes/no, NaN as —."""
    if not len(df):
        return df.astype(str)

    def column(col: pd.Series) -> pd.Series:
        if col.name != "bn" and col.dtype == bool:
            return col.map({True: "yes", False: "no"})
        return col.map(_fmt)

    return df.apply(column).astype(str)


def _md_table(df: pd.DataFrame) -> str:
    shown = _display(df)
    try:
        return shown.to_markdown(index=False, disable_numparse=True)
    except ImportError:  # tabulate missing: the same pipe table by hand
        cells = [[str(c) for c in shown.columns], *shown.to_numpy().tolist()]
        esc = [[c.replace("|", "\\|") for c in row] for row in cells]
        lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in esc[0]) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
        return "\n".join(lines)


def _to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            parts.append(block[1])
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            parts.append(_md_table(block[1]) if len(block[1]) else "_(empty)_")
        elif kind == "img":
            parts.append(f"![{block[2]}]({block[1]})")
    return "\n\n".join(parts) + "\n"


def _inline_html(text: str) -> str:
    text = html.escape(text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
body{line-height:1.45}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f3f3f3;padding:0 .2em}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}"""


def _to_html(blocks: list[Block], folder: Path) -> str:
    title = next((b[1] for b in blocks if b[0] == "h1"), "leafbn report")
    head = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
    )
    parts = [head]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{_inline_html(block[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            parts.append(
                _display(block[1]).to_html(index=False, border=0, escape=True, na_rep="—")
                if len(block[1])
                else "<p><em>(empty)</em></p>"
            )
        elif kind == "img":
            data = base64.b64encode((folder / block[1]).read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}"></figure>'
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)
