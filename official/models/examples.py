"""Seeded example inputs and labels shared by models of the same kind.

`register_model(example_inputs=..., example_labels=...)` takes functions
`(config, batch_size, seed) -> inputs`; image classifiers and token models
share these instead of each writing its own.
"""

import numpy as np


def image_inputs(config, batch_size, seed):
    """{"images": (B, S, S, C) uniform [0, 1)} from the config's
    `image_size` (default 224) and `num_channels` (default 3)."""
    rng = np.random.default_rng(seed)
    size = config.get("image_size", 224)
    channels = config.get("num_channels", 3)
    return {"images": rng.uniform(
        size=(batch_size, size, size, channels)).astype("float32")}


def class_labels(config, batch_size, seed):
    """(B,) int32 class ids below the config's `num_classes` (default
    1000), from a stream independent of the inputs' (seed + 1)."""
    rng = np.random.default_rng(seed + 1)
    return rng.integers(0, config.get("num_classes", 1000),
                        size=(batch_size,)).astype("int32")
