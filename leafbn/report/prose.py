"""The sentences of a report's answer: the verdict and its uncertainty, the ranges, the tests, the
best configuration. Each function takes numbers already computed (:mod:`leafbn.report.analysis`,
:mod:`leafbn.report.robustness`) and returns report blocks (:mod:`leafbn.report.render`); nothing
here computes a statistic or draws.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from leafbn.config import TRIAL_FIELDS
from leafbn.report.render import Block, fmt

__all__ = ["answer", "batch_size_section", "best", "varying", "context_label", "values_text", "duration"]

_ON_OFF = {True: "BN", False: "no BN"}
_WITH = {True: "With BN", False: "Without BN"}
_VERDICT = {
    "bn_more_robust": "BN more robust",
    "bn_not_more_robust": "BN not more robust",
    "inconclusive": "inconclusive",
}


def values_text(values: Any) -> str:
    if isinstance(values, (list, tuple)):
        return "{" + ", ".join(fmt(v) for v in values) + "}"
    return fmt(values)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def _lrs(values: Any) -> str:
    values = sorted(float(v) for v in values)
    return ", ".join(f"{v:g}" for v in values)


def context_label(key: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in key.items())


def varying(df: pd.DataFrame, exclude: tuple[str, ...] = ()) -> list[str]:
    """The axes of TRIAL_FIELDS that ``df`` has and that take several values there, less ``exclude``."""
    present = [
        f for f in dict.fromkeys((*TRIAL_FIELDS, "batch_size")) if f in df.columns and f not in exclude
    ]
    return [f for f in present if df[f].nunique(dropna=False) > 1]


def _contexts(df: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Split by the axes other than lr and bn that take several values."""
    axes = varying(df, exclude=("lr", "bn"))
    if not axes:
        return [({}, df)]
    return [
        (dict(zip(axes, k if isinstance(k, tuple) else (k,))), g)
        for k, g in df.groupby(axes, dropna=False, sort=True)
    ]


def answer(
    answers: list[dict[str, Any]],
    stats: pd.DataFrame,
    effect: pd.DataFrame,
    settings: dict[str, Any],
    confidence: float,
) -> list[Block]:
    """The seed's question — does BN make the net robust to its learning rate? — in sentences.

    Args:
        answers: :func:`leafbn.report.robustness.bootstrap_answer`'s per-family answers.
        stats: :func:`leafbn.report.analysis.aggregate` of the no-BN-paired trials (divergence counts).
        effect: :func:`leafbn.report.analysis.bn_effect` of the same.
        settings: ``window``, ``tolerance``, ``threshold``, ``resamples``, ``random_seed``.
        confidence: the tests' level.
    """
    s = settings
    blocks: list[Block] = [
        (
            "p",
            f"How this is measured: each run's outcome is its median validation loss over its last "
            f"{s['window']} epochs (one spiking epoch cannot set it). A run succeeds when it did not "
            f"diverge, beats a uniform guess and ends within {s['tolerance']:g} nats of its family's best "
            f"learning rate (by median outcome); a learning rate is stable when at least "
            f"{s['threshold']:.0%} of its runs succeed; the stable range is the contiguous run of stable "
            f"learning rates around the best one, in decades (log10 max/min). The whole answer is "
            f"recomputed on {s['resamples']} bootstrap resamples of the runs (seeds, and splits when "
            f"there are several; random seed {s['random_seed']}): the verdict is **BN more robust** when "
            "BN's range is wider in at least 95% of them, **BN not more robust** when in at most 5%, "
            "and **inconclusive** otherwise.",
        )
    ]
    if not answers:
        return blocks + [("p", "BN cannot be compared: the study lacks runs with BN or without it.")]
    stat_ctx = {tuple(k.items()): g for k, g in _contexts(stats)}
    effect_ctx = {tuple(k.items()): g for k, g in _contexts(effect)} if len(effect) else {}
    shown = varying(pd.DataFrame([a["family"] for a in answers]))
    for ans in answers:
        key = {k: ans["family"][k] for k in shown}
        if key:
            blocks.append(("h3", context_label(key)))
        text = [_verdict_sentence(ans), _range_sentence(ans), _edge_sentence(ans)]
        fam = stat_ctx.get(tuple(key.items()))
        if fam is not None and "bn" in fam.columns:
            text += [
                _divergence_sentence(fam[fam["bn"] == bn], bn)
                for bn in (False, True)
                if (fam["bn"] == bn).any()
            ]
        eff = effect_ctx.get(tuple(key.items()))
        if eff is not None and len(eff):
            text.append(_effect_sentence(eff, 1 - confidence))
        blocks.append(("p", " ".join(t for t in text if t)))
    return blocks


def _interval(iv: dict[str, Any], unit: str = "", signed: bool = False) -> str:
    if iv["estimate"] is None:
        return "none"
    f = "{:+.1f}" if signed else "{:.1f}"
    text = f.format(iv["estimate"]) + unit
    if iv["ci_low"] is not None:
        text += f" (95% interval {f.format(iv['ci_low'])} to {f.format(iv['ci_high'])})"
    return text


def _probability(p: float) -> str:
    """``= 0.738``; ``> 0.999`` or ``< 0.001`` where three decimals would round to a certainty."""
    if 0.9995 <= p < 1:
        return "> 0.999"
    if 0 < p < 0.0005:
        return "< 0.001"
    return f"= {p:.3f}"


def _verdict_sentence(ans: dict[str, Any]) -> str:
    p = _probability(ans["p_bn_wider"])
    head = f"**Verdict: {_VERDICT[ans['verdict']]}** — P(BN's stable range is wider) {p}"
    tail = f", over {ans['seeds']} seeds" + (f" × {ans['splits']} splits" if ans["splits"] > 1 else "") + "."
    if ans["verdict"] == "inconclusive":
        if ans["seeds_to_settle"]:
            tail += (
                f" About {ans['seeds_to_settle']} seeds per configuration would likely settle it "
                "(the same resampling, drawing that many)."
            )
        else:
            tail += (
                " Run more seeds: resampling these runs at up to 8× as many seeds does not settle it"
                " (a success rate at the threshold stays there when its own runs are redrawn); only new"
                " seeds can tell which side of it a learning rate is on."
            )
    return head + tail


def _range_sentence(ans: dict[str, Any]) -> str:
    def arm(name: str) -> str:
        iv, lrs = ans["stable_decades"][name], ans["stable_lrs"][name]
        if iv["estimate"] is None:
            return "no learning rate is stable"
        return f"{_interval(iv, ' decades')}, from {lrs[0]:g} to {lrs[1]:g}"

    def top(name: str) -> str:
        iv = ans["max_lr_no_divergence"][name]
        if iv["estimate"] is None:
            return "none (every learning rate had a diverged run)"
        ci = f" (95% interval {iv['ci_low']:g} to {iv['ci_high']:g})" if iv["ci_low"] is not None else ""
        return f"{iv['estimate']:g}{ci}"

    return (
        f"Stable range with BN: {arm('bn')}; without BN: {arm('no_bn')}. BN − no BN: "
        f"{_interval(ans['difference_decades'], ' decades', signed=True)}. Highest learning rate without a "
        f"diverged run: {top('bn')} with BN, {top('no_bn')} without."
    )


def _edge_sentence(ans: dict[str, Any]) -> str:
    """Say where a stable range is cut by the grid rather than by the loss (it may extend further)."""
    lo, hi = min(ans["lrs"]), max(ans["lrs"])
    notes = []
    for name, label in (("no_bn", "no-BN"), ("bn", "BN")):
        a, b = ans["stable_lrs"][name]
        ends = [w for w, hit in (("lowest", a == lo), ("highest", b == hi)) if hit and a is not None]
        if ends:
            notes.append(f"the {label} range reaches the {' and '.join(ends)} learning rate tried")
    if not notes:
        return ""
    text = "; ".join(notes)
    return text[0].upper() + text[1:] + ", so it may extend beyond the grid."


def batch_size_section(
    answers: list[dict[str, Any]], n_train: int | None = None, drop_last: bool = False
) -> list[Block]:
    """When the batch size varies: BN's robustness per batch size (the small-batch confound), with
    the size of each epoch's last batch when ``n_train`` (training rows) is known."""
    sizes = {a["family"].get("batch_size") for a in answers} - {None}
    if len(sizes) < 2:
        return []
    rows = [
        {
            **{k: v for k, v in a["family"].items() if k != "batch_size"},
            "batch_size": a["family"]["batch_size"],
            "last batch (rows)": _last_batch(n_train, int(a["family"]["batch_size"]), drop_last),
            "verdict": _VERDICT[a["verdict"]],
            "P(BN wider)": a["p_bn_wider"],
            "BN decades": a["stable_decades"]["bn"]["estimate"],
            "no-BN decades": a["stable_decades"]["no_bn"]["estimate"],
            "difference": a["difference_decades"]["estimate"],
        }
        for a in answers
    ]
    table = pd.DataFrame(rows).sort_values("batch_size", kind="stable")
    table = table[
        [c for c in table.columns if c == "batch_size" or c not in TRIAL_FIELDS or table[c].nunique() > 1]
    ]
    return [
        ("h2", "BN's robustness by batch size"),
        (
            "p",
            "BN normalises each minibatch by its own statistics, so its benefit can depend on the batch "
            "size and on the size of each epoch's last, smaller batch (see `--drop-last`). The verdict per "
            "batch size:",
        ),
        ("table", table),
    ]


def _last_batch(n_train: int | None, size: int, drop_last: bool) -> str:
    if n_train is None:
        return "—"
    rest = n_train % size
    if rest == 0:
        return f"{size} (none left over)"
    return f"{rest} (dropped)" if drop_last else str(rest)


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
    if len(lower):
        parts.append(f"lower at learning rate {_lrs(lower['lr'])} (by {_range_of(-lower['diff'])} nats)")
    if len(higher):
        parts.append(f"higher at learning rate {_lrs(higher['lr'])} (by {_range_of(higher['diff'])} nats)")
    if len(same):
        parts.append(f"not significantly different at learning rate {_lrs(same['lr'])}")
    text = (
        (
            f"Per learning rate, by Welch's t-test with Holm's correction across learning rates "
            f"(p < {alpha:g}), BN's mean outcome is " + "; ".join(parts) + "."
        )
        if parts
        else ""
    )
    disagree = ok[~ok["tests_agree"]]
    if len(ok):
        text += (
            " The Mann–Whitney U rank test (also Holm-corrected) agrees at every tested learning rate."
            if disagree.empty
            else f" The Mann–Whitney U rank test (also Holm-corrected) disagrees at {_lrs(disagree['lr'])}: "
            "there a few runs far from the rest drive the t-test."
        )
    untested = eff[eff["status"] != "ok"]
    for status, group in untested.groupby("status", sort=False):
        text += f" No test at {_lrs(group['lr'])}: {status}."
    return text.strip()


def _range_of(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:.2g}" if f"{lo:.2g}" == f"{hi:.2g}" else f"{lo:.2g}–{hi:.2g}"


def best(stats: pd.DataFrame) -> list[Block]:
    clean = stats[(stats["n_diverged"] == 0) & (stats["n_ok"] > 0)]
    blocks: list[Block] = [("h2", "Best configuration")]
    if clean.empty:
        return blocks + [("p", "No configuration finished all its seeds without diverging.")]
    axes = varying(stats) or ["lr", "bn"]
    items = []
    for bn in (None, True, False):
        part = clean if bn is None else clean[clean["bn"] == bn]
        if part.empty:
            continue
        row = part.loc[part["val_loss_mean"].idxmin()]
        what = ", ".join(f"{k}={fmt(row[k])}" for k in axes)
        acc = (
            f", validation accuracy {row['val_accuracy_mean']:.3f}"
            if math.isfinite(row["val_accuracy_mean"])
            else ""
        )
        std = f" ± {row['val_loss_std']:.3f}" if math.isfinite(row["val_loss_std"]) else ""
        label = "Overall" if bn is None else f"Best with {_ON_OFF[bn]}"
        items.append(
            f"{label}: {what} — mean outcome (validation loss) {row['val_loss_mean']:.4f}{std}, "
            f"median {row['val_loss_median']:.4f}, "
            f"over {int(row['n_ok'])} seeds{acc}."
        )
    return blocks + [("ul", items)]
