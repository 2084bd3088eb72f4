"""Distributed training: custom loop, strategies, optimizers, checkpoints.

Public API:

* `Trainer`: the custom loop (`loop.py`), works under every `tf.distribute`
  strategy; atomic resumable checkpoints; CSV/TensorBoard/JSON logs.
* `make_strategy(kind)`: "default", "mirrored", "multi_worker", "tpu".
* `build_optimizer(...)`: AdamW/Adam/SGD with the papers' cosine + warm-up
  schedule and no-weight-decay rule.
* `CosineWithWarmup` / `cosine_with_warmup(...)`: the learning-rate schedule.
* `CheckpointManager`: atomic checkpoints (used by `Trainer`).
"""

from official.training.checkpointing import CheckpointManager  # noqa: F401
from official.training.data import default_split_batch  # noqa: F401
from official.training.loop import Trainer  # noqa: F401
from official.training.optimizers import build_optimizer  # noqa: F401
from official.training.optimizers import exclude_from_weight_decay  # noqa: F401
from official.training.optimizers import no_weight_decay_variables  # noqa: F401
from official.training.schedules import CosineWithWarmup  # noqa: F401
from official.training.schedules import cosine_with_warmup  # noqa: F401
from official.training.strategy import is_chief  # noqa: F401
from official.training.strategy import make_strategy  # noqa: F401
