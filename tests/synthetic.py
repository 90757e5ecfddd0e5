"""Synthetic trial tables with known answers, shared by the analysis and report tests.

Five seeds per configuration; the loss of seed s is the configuration's mean + ``OFFS[s]`` (the BN
side's offsets rotated, so equal means are not identical samples). A learning rate missing from a
side's means diverged in every seed. Synthetic data is for these unit tests only, never a study's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

OFFS = np.array([-0.02, -0.01, 0.0, 0.01, 0.02])
STD = float(OFFS.std(ddof=1))
LRS = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]
# Mean final validation loss per LR.
NOBN = {1e-3: 1.0, 1e-2: 0.6, 1e-1: 0.3}  # diverges at every LR >= 1
BN = {1e-3: 1.005, 1e-2: 0.4, 1e-1: 0.2, 1.0: 0.25, 10.0: 0.5, 100.0: 1.5, 1000.0: 3.0}  # never diverges


def make_trials(
    nobn: dict = NOBN,
    bn: dict = BN,
    lrs: list = LRS,
    depths: tuple = (3,),
    seeds: int = 5,
    diverge: set | None = None,
    epochs: int = 4,
) -> pd.DataFrame:
    """A trials table as the runner writes it; ``diverge`` adds (bn, lr, seed) trials that diverged.

    Depth d adds ``0.1 * (d - 3)`` to every loss. A diverged trial stops at epoch 2.
    """
    rows = []
    for depth in depths:
        for lr in lrs:
            for on in (False, True):
                for s in range(seeds):
                    mean = (bn if on else nobn).get(lr)
                    off = OFFS[(s + 2) % 5] if on else OFFS[s]
                    div = mean is None or (diverge is not None and (on, lr, s) in diverge)
                    loss = math.nan if div else mean + off + 0.1 * (depth - 3)
                    rows.append(
                        dict(
                            trial_id=f"d{depth}-{lr:g}-{int(on)}-{s}",
                            lr=lr,
                            bn=on,
                            depth=depth,
                            width=100,
                            bn_momentum=0.99,
                            bn_placement="before",
                            batch_size=10,
                            epochs=epochs,
                            seed=s,
                            final_val_loss=loss,
                            best_val_loss=loss,
                            best_epoch=math.nan if div else epochs,
                            final_val_accuracy=math.nan if div else 1 - loss / 5,
                            final_train_loss=math.inf if div else loss / 2,
                            diverged=div,
                            diverged_epoch=2 if div else math.nan,
                            epochs_run=2 if div else epochs,
                            time_s=1.0,
                            node_id="n0",
                            retries=0,
                        )
                    )
    return pd.DataFrame(rows)


def make_curves(trials: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch curves for ``trials``: losses fall as 1/epoch to the final one; NaN where it diverged."""
    rows = []
    for t in trials.itertuples():
        for epoch in range(1, int(t.epochs_run) + 1):
            last = t.diverged and epoch == t.epochs_run
            final = 3.0 if t.diverged else t.final_val_loss
            rows.append(
                dict(
                    trial_id=t.trial_id,
                    epoch=epoch,
                    train_loss=math.nan if last else final / 2 + 1 / epoch,
                    val_loss=math.nan if last else final + 1 / epoch,
                    val_accuracy=0.5,
                )
            )
    return pd.DataFrame(rows)


def make_optuna_study():
    """A small seeded Optuna study over ``lr`` (log) and ``depth``, as an Optuna search leaves one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="lr-search", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(
        lambda t: (
            (math.log10(t.suggest_float("lr", 1e-3, 1e3, log=True)) - 1) ** 2
            + 0.01 * t.suggest_int("depth", 1, 4)
        ),
        n_trials=8,
    )
    return study
