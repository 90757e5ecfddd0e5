"""A concise progress line for a person watching a study, as a Ray Tune callback.

Every ``every`` seconds (and when the study ends) it prints one line::

    [leafbn 0:42] 23/70 done · 2 running · 45 pending · 3 diverged · best val_loss 0.412 (lr=0.01 bn=on)
        · ~1:05 left
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ray import tune

from leafbn.config import flat_config, trial_seeds

__all__ = ["ProgressLine"]


def _stopped_early(trial: Any) -> bool:
    """The trial's last report is before its last epoch, and it did not diverge."""
    result, epochs = trial.last_result or {}, trial.config.get("epochs")
    epoch = result.get("epoch")
    return epoch is not None and epochs is not None and epoch < epochs and not result.get("diverged")


def _networks(trial: Any) -> int:
    """How many networks (runs) a trial trains: a unit's runs, or one per seed."""
    config = flat_config(trial.config)
    return int(config["runs"]) if "unit" in config else len(trial_seeds(trial.config))


def _diverged(result: dict, networks: int) -> int:
    """How many of a finished trial's networks diverged, from its last report."""
    if isinstance(result.get("diverged"), int) and not isinstance(result.get("diverged"), bool):
        return result["diverged"]  # a unit's count
    if isinstance(result.get("networks"), list):
        return sum(bool(n.get("diverged")) for n in result["networks"])
    return networks if result.get("diverged") else 0


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds))).removeprefix("0:")


class ProgressLine(tune.Callback):
    """Prints finished/running/pending counts, the best trial so far, elapsed and remaining time."""

    def __init__(
        self, total: int, every: float = 10.0, echo: Callable[[str], Any] = print, already: int = 0
    ) -> None:
        """``total`` runs, ``already`` of them finished in an earlier session (not Ray trials now)."""
        self.total, self.every, self.echo, self.already = total, every, echo, already
        self.setup()

    def setup(self, **info: Any) -> None:
        """Start the clock; Ray Tune calls this when a run starts, also one resumed by ``Tuner.restore``.

        A resumed study restores this callback as it was pickled: the clock restarts here, and the
        remaining time counts only trials finished since, not those finished before the interruption.
        """
        self.start = time.monotonic()
        self.last = -math.inf
        self.done_before: int | None = None  # trials already done when this run's first line was drawn

    def line(self, trials: list) -> str:
        """One progress line, counting networks (a trial trains one per seed). A trial ended before
        its last epoch without diverging (ASHA stopped it, or the study was interrupted) counts as
        stopped, not done; one that ended without a single report (an interrupted study's
        never-started trials) as pending."""
        ended = [
            t
            for t in trials
            if t.status == "ERROR" or (t.status == "TERMINATED" and "val_loss" in (t.last_result or {}))
        ]
        stopped = [t for t in ended if t.status == "TERMINATED" and _stopped_early(t)]
        done = [t for t in ended if not any(t is s for s in stopped)]
        n_done, n_stopped = sum(map(_networks, done)), sum(map(_networks, stopped))
        n_done += getattr(self, "already", 0)  # a callback pickled before this attribute has none
        running = sum(_networks(t) for t in trials if t.status == "RUNNING")
        pending = max(self.total - n_done - n_stopped - running, 0)
        results = [t.last_result or {} for t in done]
        diverged = sum(_diverged(r, _networks(t)) for r, t in zip(results, done))
        finite = [
            (r["val_loss"], t) for r, t in zip(results, done) if math.isfinite(r.get("val_loss", math.nan))
        ]
        elapsed = time.monotonic() - self.start
        if self.done_before is None:
            self.done_before = n_done
        new = n_done - self.done_before
        parts = [
            f"[leafbn {_clock(elapsed)}] {n_done}/{self.total} done",
            f"{running} running",
            f"{pending} pending",
        ]
        if stopped:
            parts.insert(1, f"{n_stopped} stopped early")
        if diverged:
            parts.append(f"{diverged} diverged")
        if finite:
            loss, best = min(finite, key=lambda pair: pair[0])
            own = {k: best.last_result[k] for k in ("lr", "bn") if best.last_result.get(k) is not None}
            cfg = {**flat_config(best.config), **own}  # a unit reports its best run's lr and bn
            bn = "on" if cfg.get("bn") else "off"
            parts.append(f"best val_loss {loss:.3f} (lr={cfg.get('lr'):.3g} bn={bn})")
        if new > 0 and n_done < self.total:
            parts.append(f"~{_clock(elapsed / new * (self.total - n_done))} left")
        return " · ".join(parts)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self.echo(self.line(trials))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.echo(self.line(trials))
