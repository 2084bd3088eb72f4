"""Learning-rate schedules: cosine decay with linear warm-up.

The schedule of MAE (He et al. 2022, Appendix A.1: "cosine decay, warmup 40
epochs") and Point-MAE (Pang et al. 2022, Sec. 4: "cosine learning rate decay",
10 warm-up epochs), applied per optimizer step as in their
`adjust_learning_rate` (MAE `util/lr_sched.py`):

    lr(s) = init + (peak - init) * s / W                     for s < W
    lr(s) = min + (peak - min) * (1 + cos(pi * p)) / 2       for s >= W,
            p = min(1, (s - W) / (T - W))

with W = `warmup_steps`, T = `total_steps`. So lr(0) = init (0 by default, as in
MAE), lr(W) = peak and lr(s) = min for every s >= T.
"""

import math

import keras
from keras import ops

from official.registry import register_layer


@register_layer()
class CosineWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak_learning_rate`, then cosine decay to `min`.

    Args:
        peak_learning_rate: float. The learning rate at the end of warm-up.
        total_steps: int. The step at which the cosine reaches
            `min_learning_rate` (and stays there).
        warmup_steps: int. Number of linear warm-up steps (0: none).
        min_learning_rate: float. The final learning rate.
        initial_learning_rate: float. The learning rate at step 0.

    Example:

    >>> lr = CosineWithWarmup(1e-3, total_steps=100, warmup_steps=10)
    >>> [round(float(lr(s)), 6) for s in (0, 5, 10, 100)]
    [0.0, 0.0005, 0.001, 0.0]
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_steps=0,
        min_learning_rate=0.0,
        initial_learning_rate=0.0,
        name="cosine_with_warmup",
    ):
        super().__init__()
        if total_steps <= 0:
            raise ValueError(
                f"CosineWithWarmup: total_steps must be > 0; got {total_steps}."
            )
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(
                "CosineWithWarmup: warmup_steps must be in [0, total_steps]; "
                f"got warmup_steps={warmup_steps}, total_steps={total_steps}."
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.min_learning_rate = float(min_learning_rate)
        self.initial_learning_rate = float(initial_learning_rate)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warmup = float(self.warmup_steps)
        decay_steps = float(max(1, self.total_steps - self.warmup_steps))
        progress = ops.clip((step - warmup) / decay_steps, 0.0, 1.0)
        cosine = self.min_learning_rate + (peak - self.min_learning_rate) * (
            0.5 * (1.0 + ops.cos(math.pi * progress))
        )
        if self.warmup_steps == 0:
            return cosine
        linear = self.initial_learning_rate + (
            peak - self.initial_learning_rate
        ) * (step / warmup)
        return ops.where(step < warmup, linear, cosine)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "min_learning_rate": self.min_learning_rate,
            "initial_learning_rate": self.initial_learning_rate,
            "name": self.name,
        }


def cosine_with_warmup(
    peak_learning_rate,
    total_steps,
    warmup_steps=0,
    min_learning_rate=0.0,
    initial_learning_rate=0.0,
):
    """Returns a `CosineWithWarmup` schedule (see its docstring)."""
    return CosineWithWarmup(
        peak_learning_rate,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        min_learning_rate=min_learning_rate,
        initial_learning_rate=initial_learning_rate,
    )
