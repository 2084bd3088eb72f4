"""Stochastic depth (Huang et al. 2016), per sample."""

import keras
from keras import ops

from official.registry import register_layer


@register_layer()
class DropPath(keras.layers.Layer):
    """Drops the whole residual branch of a sample with probability `rate`.

    Surviving samples are scaled by 1/(1-rate). Identity at inference.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"DropPath: rate must be in [0, 1); got {rate}.")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        noise = keras.random.uniform(
            shape, seed=self.seed_generator, dtype=x.dtype
        )
        return x * ops.cast(noise < keep, x.dtype) / keep

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
