"""Optimizers of the papers: AdamW without decay on norms, biases and tokens.

MAE (He et al. 2022, Appendix A.1) and Point-MAE (Pang et al. 2022, Sec. 4)
train with AdamW and cosine decay with warm-up. Their parameter groups
(MAE `util/misc.py` `add_weight_decay`, Point-MAE `tools/builder.py`
`add_weight_decay`) put no weight decay on

    len(param.shape) == 1  or  name.endswith(".bias")  or  "token" in name

which covers the norm scales/offsets, every bias, and the class/mask tokens.
`no_weight_decay_variables` implements that rule on Keras variable paths (plus
the weights of every normalization layer, whatever their rank) and
`exclude_from_weight_decay` hands the result to Keras'
`optimizer.exclude_from_weight_decay(var_list=...)`, which must happen before
the optimizer is built.

Gradient clipping: `build_optimizer(clip_norm=...)` sets Keras'
`global_clipnorm`. Keras clips *before* the cross-replica gradient sum, so under
more than one replica that is not the global norm of the gradient;
`official.training.Trainer` therefore moves `global_clipnorm` into its own step,
which clips the all-reduced gradient (see `steps.py`).
"""

import keras

from official.training.schedules import CosineWithWarmup

OPTIMIZERS = ("adamw", "adam", "sgd")
NO_DECAY_PATTERNS = ("token",)
_NORM_LAYERS = (
    keras.layers.LayerNormalization,
    keras.layers.BatchNormalization,
    keras.layers.GroupNormalization,
    keras.layers.RMSNormalization,
)


def variable_path(variable):
    """The variable's full path (`"block_0/dense/kernel"`), or its name."""
    return getattr(variable, "path", None) or variable.name


def skips_weight_decay(variable, patterns=NO_DECAY_PATTERNS):
    """The papers' rule: 1-D (or 0-D) params, biases, names with a pattern."""
    path = variable_path(variable)
    if len(variable.shape) <= 1:
        return True
    if path.split("/")[-1].split(":")[0].endswith("bias"):
        return True
    lowered = path.lower()
    return any(pattern.lower() in lowered for pattern in patterns)


def no_weight_decay_variables(model_or_variables, patterns=NO_DECAY_PATTERNS):
    """Returns the trainable variables that get no weight decay.

    Args:
        model_or_variables: a Keras model/layer (its normalization layers'
            weights are also excluded, whatever their rank) or a list of
            variables.
        patterns: substrings (case-insensitive) of the variable path that
            exclude a variable; the papers use `("token",)`.
    """
    if isinstance(model_or_variables, keras.layers.Layer):
        layer = model_or_variables
        variables = list(layer.trainable_variables)
        norm_ids = {
            id(v)
            for sub in layer._flatten_layers(include_self=True)
            if isinstance(sub, _NORM_LAYERS)
            for v in sub.trainable_variables
        }
    else:
        variables = list(model_or_variables)
        norm_ids = set()
    return [
        v
        for v in variables
        if id(v) in norm_ids or skips_weight_decay(v, patterns)
    ]


def exclude_from_weight_decay(
    optimizer, model_or_variables, patterns=NO_DECAY_PATTERNS
):
    """Applies the papers' no-decay rule to `optimizer` (before it is built).

    Returns the list of excluded variables.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    excluded = no_weight_decay_variables(model_or_variables, patterns)
    inner.exclude_from_weight_decay(var_list=excluded)
    return excluded


def build_optimizer(
    name="adamw",
    learning_rate=1e-3,
    weight_decay=0.05,
    warmup_steps=0,
    total_steps=None,
    min_lr=0.0,
    clip_norm=None,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    momentum=0.9,
    no_decay_patterns=NO_DECAY_PATTERNS,
    model=None,
    loss_scale=False,
):
    """Builds a Keras optimizer with the papers' schedule and decay rule.

    Create it under the strategy's scope (the `Trainer` does).

    Args:
        name: str, one of `OPTIMIZERS`.
        learning_rate: float. The peak learning rate (a constant one when
            `total_steps` is None).
        weight_decay: float or None. Decoupled weight decay (`adamw`, `sgd`).
        warmup_steps: int. Linear warm-up steps of the cosine schedule.
        total_steps: int or None. With it, the learning rate follows
            `CosineWithWarmup(learning_rate, total_steps, warmup_steps,
            min_lr)`.
        min_lr: float. The final learning rate of the cosine.
        clip_norm: float or None. Clip gradients to this global norm.
        beta_1, beta_2, epsilon: Adam(W) parameters. `epsilon` defaults to
            PyTorch's 1e-8 (the papers' code), not Keras' 1e-7.
        momentum: float. SGD momentum.
        no_decay_patterns: path substrings excluded from weight decay.
        model: optional model (or list of variables): apply the no-decay rule
            now. Without it, call `exclude_from_weight_decay` before building
            (the `Trainer` does).
        loss_scale: bool. Wrap in `keras.optimizers.LossScaleOptimizer`
            (needed for `mixed_float16`, not for `mixed_bfloat16`).
    """
    if name not in OPTIMIZERS:
        raise ValueError(
            f"build_optimizer: unknown optimizer {name!r}; expected one of "
            f"{list(OPTIMIZERS)}."
        )
    if total_steps is not None:
        lr = CosineWithWarmup(
            learning_rate,
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            min_learning_rate=min_lr,
        )
    elif warmup_steps:
        raise ValueError(
            "build_optimizer: warmup_steps needs total_steps (the cosine "
            "schedule's length)."
        )
    else:
        lr = learning_rate
    common = dict(learning_rate=lr, global_clipnorm=clip_norm)
    if name == "adamw":
        optimizer = keras.optimizers.AdamW(
            weight_decay=weight_decay or 0.0,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            **common,
        )
    elif name == "adam":
        if weight_decay:
            raise ValueError(
                "build_optimizer: 'adam' takes no weight_decay; use 'adamw'."
            )
        optimizer = keras.optimizers.Adam(
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **common
        )
    else:
        optimizer = keras.optimizers.SGD(
            momentum=momentum, weight_decay=weight_decay or None, **common
        )
    if model is not None and weight_decay:
        exclude_from_weight_decay(optimizer, model, no_decay_patterns)
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
