"""Learning-rate schedules and the held-out bookkeeping they share with patience and the best
checkpoint. Everything here is a pure function of the step and of the evaluations seen, and
its state is a small JSON dict saved with the checkpoint, so ``--resume`` stays bit-identical.

    constant   lr
    cosine     lr * (1 + cos(pi * p)) / 2, p = progress from the end of warmup to the last step
    step       lr * gamma ** (number of lr_step intervals passed)
    plateau    lr * gamma ** (number of times lr_patience evaluations passed without improvement)

Warmup (any schedule): the rate grows linearly from lr / warmup_steps to lr over the first
warmup_steps steps. "Improvement": the held-out metric better than the best so far by more
than min_delta (lower for a loss-like metric, higher for accuracy).
"""
import math


class Schedule:
    def __init__(self, cfg, higher_is_better):
        self.cfg, self.higher = cfg, higher_is_better
        self.best = None  # best held-out metric so far
        self.best_step = None
        self.bad = 0  # evaluations since the best (patience)
        self.plateau_bad = 0  # evaluations since the last improvement or decay (plateau)
        self.decays = 0  # plateau decays so far

    def lr(self, step):
        """The rate for training step ``step`` (0-based: the step about to be taken)."""
        cfg = self.cfg
        base, w = cfg.lr, cfg.warmup_steps
        if step < w:
            return base * (step + 1) / w
        if cfg.lr_schedule == "cosine":
            span = max(1, cfg.steps - w)
            return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / span)))
        if cfg.lr_schedule == "step":
            return base * cfg.lr_gamma ** ((step - w) // self.step_every())
        if cfg.lr_schedule == "plateau":
            return base * cfg.lr_gamma ** self.decays
        return base

    def step_every(self):
        return self.cfg.lr_step or max(1, (self.cfg.steps - self.cfg.warmup_steps) // 3)

    def observe(self, step, metric):
        """Record one held-out evaluation; returns True when it is a new best."""
        if self.best is None:
            better = True
        elif self.higher:
            better = metric > self.best + self.cfg.min_delta
        else:
            better = metric < self.best - self.cfg.min_delta
        if better:
            self.best, self.best_step, self.bad, self.plateau_bad = float(metric), step, 0, 0
            return True
        self.bad += 1
        self.plateau_bad += 1
        if self.cfg.lr_schedule == "plateau" and self.plateau_bad >= self.cfg.lr_patience:
            self.decays += 1
            self.plateau_bad = 0
        return False

    def out_of_patience(self):
        return self.cfg.patience is not None and self.bad >= self.cfg.patience

    def state_dict(self):
        return dict(best=self.best, best_step=self.best_step, bad=self.bad, plateau_bad=self.plateau_bad,
                    decays=self.decays)

    def load_state_dict(self, d):
        """From a checkpoint's metadata (untrusted): every field checked."""
        if not isinstance(d, dict):
            raise TypeError(f"expected a mapping; got {type(d).__name__}")
        best, best_step = d.get("best"), d.get("best_step")
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float)) or not math.isfinite(best)):
            raise ValueError(f"best: expected a finite number or null; got {best!r}")
        counts = [d.get(k, 0) for k in ("bad", "plateau_bad", "decays")]
        for v in counts + ([] if best_step is None else [best_step]):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"expected counts >= 0; got {v!r}")
        self.best, self.best_step = (None if best is None else float(best)), best_step
        self.bad, self.plateau_bad, self.decays = counts

