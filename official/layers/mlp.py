"""The transformer MLP: Dense(D, r·D) -> activation -> Dense(r·D, D)."""

import keras

from official.registry import register_layer


@register_layer()
class MLP(keras.layers.Layer):
    """Two-layer feed-forward block.

    Args:
        hidden_dim: int. Width of the hidden layer.
        output_dim: int or None. None = the input width.
        activation: str. "gelu" is the exact (erf) GELU of the papers.
        dropout: float. Dropout after each Dense.
    """

    def __init__(self, hidden_dim, output_dim=None, activation="gelu",
                 dropout=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.activation = activation
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _fresh_initializer(self):
        return keras.initializers.get(
            keras.initializers.serialize(self.kernel_initializer))

    def build(self, input_shape):
        out_dim = self.output_dim or input_shape[-1]
        # A fresh initializer per layer: one unseeded Keras initializer
        # object returns the same values on every call.
        self.fc1 = keras.layers.Dense(
            self.hidden_dim, activation=self.activation,
            kernel_initializer=self._fresh_initializer(),
            dtype=self.dtype_policy, name="fc1",
        )
        self.fc2 = keras.layers.Dense(
            out_dim, kernel_initializer=self._fresh_initializer(),
            dtype=self.dtype_policy, name="fc2",
        )
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.fc1.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (self.hidden_dim,))

    def call(self, x, training=False):
        x = self.drop(self.fc1(x), training=training)
        return self.drop(self.fc2(x), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim or input_shape[-1],)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "output_dim": self.output_dim,
            "activation": self.activation,
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer
            ),
        }
