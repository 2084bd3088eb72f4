"""Loss gradients for importance scores (head pruning).

Keras 3 has no backend-neutral gradient call; this is the one place in
`official.compression` that touches a backend (TensorFlow's GradientTape,
the garden's backend). It could move to `official/ops` unchanged.
"""

import keras


def value_and_gradients(loss_fn, variables):
    """(loss, [dloss/dv for v in variables]) of `loss_fn()`."""
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(
            "value_and_gradients: only the TensorFlow backend is supported "
            f"(running {keras.backend.backend()}).")
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn()
    return loss, tape.gradient(loss, variables)


def sparse_logits_loss(model, x, y):
    """Default loss: mean sparse categorical cross-entropy of logits."""
    logits = model(x, training=False)
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        y, logits, from_logits=True))
