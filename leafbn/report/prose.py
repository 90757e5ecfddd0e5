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
from leafbn.report.contexts import contexts, varying
from leafbn.report.render import Block, fmt

__all__ = [
    "answer", "specification_blocks", "batch_size_section", "best", "varying", "context_label", "values_text",
    "duration",
]  # fmt: skip

_ON_OFF = {True: "BN", False: "no BN"}
_WITH = {True: "With BN", False: "Without BN"}
_VERDICT = {
    "bn_more_robust": "BN more robust",
    "bn_less_robust": "BN less robust",
    "no_difference": "no difference",
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


def _contexts(df: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Split by the axes other than lr and bn that take several values."""
    return [(key, rows) for _, key, rows in contexts(df)]


def answer(
    answers: list[dict[str, Any]],
    stats: pd.DataFrame,
    effect: pd.DataFrame,
    settings: dict[str, Any],
    confidence: float,
    specification: dict[str, Any] | None = None,
) -> list[Block]:
    """The seed's question — does BN make the net robust to its learning rate? — in sentences.

    Args:
        answers: :func:`leafbn.report.robustness.bootstrap_answer`'s per-context answers.
        stats: :func:`leafbn.report.analysis.aggregate` of the no-BN-paired trials (divergence counts).
        effect: :func:`leafbn.report.analysis.bn_effect` of the same.
        settings: ``window``, ``tolerance``, ``bar``, ``margin``, ``resamples``, ``random_seed``,
            ``outcome_source`` (and ``fallback_runs``: runs whose outcome is their final epoch).
        confidence: the tests' level.
        specification: :func:`leafbn.report.specification.specification_table`'s record, or None.
    """
    blocks = method_blocks(settings)
    if not answers:
        return blocks + [("p", "BN cannot be compared: the study lacks runs with BN or without it.")]
    stat_ctx = {tuple(k.items()): g for k, g in _contexts(stats)}
    effect_ctx = {tuple(k.items()): g for k, g in _contexts(effect)} if len(effect) else {}
    shown = varying(pd.DataFrame([a["family"] for a in answers]))
    for ans in answers:
        key = {k: ans["family"][k] for k in shown}
        if key:
            blocks.append(("h3", context_label(key)))
        text = [_verdict_sentence(ans), _range_sentence(ans), _edge_sentence(ans), _shares_sentence(ans),
                _sensitivity_sentence(ans)]  # fmt: skip
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
    if specification is not None:
        blocks += specification_blocks(specification)
    return blocks


def method_blocks(settings: dict[str, Any]) -> list[Block]:
    """How the answer is measured, in one paragraph (led by a warning when some outcomes are read
    from the final epoch); ``settings`` as :func:`answer` takes them."""
    s = settings
    blocks: list[Block] = []
    if s.get("fallback_runs"):
        blocks.append(("p", f"**Outcome read from the final epoch for {s['fallback_runs']} runs**: the study "
                            "folder has no learning curves for them (curves.parquet or curves.csv), so their "
                            f"outcome is not the median of their last {s['window']} epochs."))  # fmt: skip
    blocks.append((
        "p",
        f"How this is measured: each run's outcome is its median validation loss over its last {s['window']} "
        "epochs. A run *trains* when its outcome is finite, clearly better than chance (below "
        f"{s['bar']:.2f} nats: the true class's probability at least min(10, √classes) times a uniform "
        "guess's) and within "
        f"{s['tolerance']:g} nats of the best configuration of its context, BN or not (one target for "
        "both arms); otherwise it *diverged* (NaN/inf), is *stuck* (not clearly better than chance) "
        "or is *behind*. "
        "Each arm's width is the area under its success-rate curve over log10(learning rate), the curve "
        "interpolated between grid points (decades); its edges are where that curve crosses one half. "
        f"The whole answer is recomputed on {s['resamples']} paired bootstrap resamples (random seed "
        f"{s['random_seed']}): the (split, seed) units, shared by every learning rate and arm, are drawn "
        "with replacement within each split. The verdict is **BN more robust** (or **less**) when the "
        "two-sided bootstrap p of the width difference, Holm-corrected across contexts, is below "
        f"{2 * (1 - 0.95):g}; **no difference** when its 90% interval lies within ±{s['margin']:g} decades; "
        "**inconclusive** otherwise.",
    ))  # fmt: skip
    return blocks


def specification_blocks(specification: dict[str, Any]) -> list[Block]:
    """The specification table under a heading, led by its one-sentence headline."""
    table = pd.DataFrame(specification["rows"])
    if len(table):
        table["verdict"] = table["verdict"].map(_VERDICT)
        table = table.rename(columns={"estimate": "BN − no BN (decades)", "ci_low": "95% low",
                                      "ci_high": "95% high", "p_bn_wider": "P(BN wider)"})  # fmt: skip
    dl = specification.get("drop_last")
    note = (
        f" This study ran with drop_last {'on' if dl else 'off'}; drop_last is study-wide, so the other "
        "setting is another study's table."
        if dl is not None
        else ""
    )
    return [
        ("h3", "The answer under every reasonable analysis"),
        ("p", f"**{specification['headline']}**{note}"),
        ("table", table),
    ]


def _interval(iv: dict[str, Any], unit: str = "", signed: bool = False) -> str:
    if iv["estimate"] is None:
        return "none"
    f = "{:+.2f}" if signed else "{:.2f}"
    text = f.format(iv["estimate"]) + unit
    if iv["ci_low"] is not None and iv["ci_low"] == iv["ci_high"] == iv["estimate"]:
        text += " (the same in every resample)"
    elif iv["ci_low"] is not None:
        text += f" (95% interval {f.format(iv['ci_low'])} to {f.format(iv['ci_high'])})"
    return text


def _probability(p: float) -> str:
    """``= 0.738``; ``> 0.999`` or ``< 0.001`` where three decimals would round to a certainty."""
    if 0.9995 <= p < 1:
        return "> 0.999"
    if 0 < p < 0.0005:
        return "< 0.001"
    return f"= {p:.3f}"


def _p_value(p: float) -> str:
    return f"< {1 / 1000:g}" if p < 0.001 else f"= {p:.3g}"


def _verdict_sentence(ans: dict[str, Any]) -> str:
    p = _probability(ans["p_bn_wider"])
    units = f"{ans['seeds']} seeds" + (f" × {ans['splits']} splits" if ans["splits"] > 1 else "")
    return (
        f"**Verdict: {_VERDICT[ans['verdict']]}** — P(BN's trainable range is wider) {p} "
        f"(Holm-corrected two-sided p {_p_value(ans['p_holm'])}), over {units} per learning rate and arm."
    )


def _range_sentence(ans: dict[str, Any]) -> str:
    w = ans["width_decades"]
    return (
        f"Width of learning rates in which a run trains: with BN {_interval(w['bn'], ' decades')}, "
        f"without BN {_interval(w['no_bn'], ' decades')}; BN − no BN: "
        f"{_interval(ans['difference_decades'], ' decades', signed=True)}."
    )


def _lr_interval(iv: dict[str, Any]) -> str:
    if iv["estimate"] is None:
        return "none (fewer than half the runs train at every learning rate)"
    ci = f" (95% interval {iv['ci_low']:.3g} to {iv['ci_high']:.3g})" if iv["ci_low"] is not None else ""
    if iv["ci_low"] is not None and iv["ci_low"] == iv["ci_high"] == iv["estimate"]:
        ci = " (the same in every resample)"
    return f"{iv['estimate']:.3g}{ci}"


def _edge_sentence(ans: dict[str, Any]) -> str:
    """The edges where half the runs train, and where the grid, not the loss, cuts them."""
    lo, up = ans["lower_edge_lr"], ans["upper_edge_lr"]
    text = (
        f"At least half the runs train from learning rate {_lr_interval(lo['bn'])} with BN and "
        f"{_lr_interval(lo['no_bn'])} without (lower edge); the highest learning rate at which at least half "
        f"train is {_lr_interval(up['bn'])} with BN and {_lr_interval(up['no_bn'])} without (upper edge)."
    )
    notes = []
    for name, label in (("no_bn", "no-BN"), ("bn", "BN")):
        ends = [w for w in ("lower", "upper") if ans["edge_at_grid"][name][w]]
        if ends:
            notes.append(f"the {label} {' and '.join(ends)} edge is the grid's end")
    if notes:
        joined = "; ".join(notes)
        text += f" {joined[0].upper()}{joined[1:]}, so that range may extend beyond the grid."
    return text


def _sensitivity_sentence(ans: dict[str, Any]) -> str:
    s = ans.get("lr_sensitivity")
    if not s:
        return ""
    return (
        "A check that needs no tolerance, Wortsman et al. (2023)'s LR sensitivity (the mean over the grid "
        "of how far an arm's mean outcome lies above its best learning rate's, each run capped at a uniform "
        f"guess's loss; lower is more robust): with BN {_interval(s['bn'], ' nats')}, without BN "
        f"{_interval(s['no_bn'], ' nats')}; BN − no BN {_interval(s['difference'], ' nats', signed=True)}, "
        f"P(BN lower) {_probability(s['p_bn_lower'])}."
    )


def _shares_sentence(ans: dict[str, Any]) -> str:
    def arm(name: str) -> str:
        sh = ans["outcome_shares"][name]
        return (
            f"{sh['trains']:.0%} train, {sh['behind']:.0%} are behind, "
            f"{sh['stuck']:.0%} are stuck at chance, {sh['diverged']:.0%} diverged"
        )

    return f"Of all runs over the grid, with BN {arm('bn')}; without BN {arm('no_bn')}."


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
            "BN decades": a["width_decades"]["bn"]["estimate"],
            "no-BN decades": a["width_decades"]["no_bn"]["estimate"],
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
            f"Per learning rate, by the paired t-test over the (split, seed) pairs with Holm's correction "
            f"across learning rates (p < {alpha:g}), BN's outcome is " + "; ".join(parts) + "."
        )
        if parts
        else ""
    )
    disagree = ok[~ok["tests_agree"]]
    if len(ok):
        text += (
            " The Wilcoxon signed-rank test (also Holm-corrected) agrees at every tested learning rate."
            if disagree.empty
            else f" The Wilcoxon signed-rank test (also Holm-corrected) disagrees at {_lrs(disagree['lr'])}: "
            + (
                "with fewer than 6 pairs its smallest two-sided p is 0.0625."
                if "n_pairs" in disagree and (disagree["n_pairs"] < 6).all()
                else "there a few pairs far from the rest drive the t-test."
            )
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
