"""Layers shared by two or more papers."""

from official.layers.drop_path import DropPath  # noqa: F401
from official.layers.mlp import MLP  # noqa: F401
from official.layers.position_embedding import sincos_1d  # noqa: F401
from official.layers.position_embedding import sincos_2d  # noqa: F401
from official.layers.transformer_block import TransformerBlock  # noqa: F401
