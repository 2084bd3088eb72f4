"""Axial Transformer: "Axial Attention in Multidimensional Transformers"
(Ho, Kalchbrenner, Weissenborn, Salimans 2019).

https://arxiv.org/abs/1912.12180; official code google-research/
google-research `axial/` (TF1). Importing this package registers the
`axial_transformer` model and its presets; the `axial` attention kernel is
`official.attention.kernels.axial` (`attention(..., kernel="axial")`).
"""

from garden.axial_transformer import axial_transformer_layers as _layers
from garden.axial_transformer import axial_transformer_model as _model
from garden.axial_transformer import axial_transformer_presets as _presets
from garden.axial_transformer import axial_transformer_sampling as _sampling

AxialAttention = _layers.AxialAttention
AxialPositionalEmbedding = _layers.AxialPositionalEmbedding
AxialTransformerBlock = _layers.AxialTransformerBlock
shift = _layers.shift
shift_down = _layers.shift_down
shift_right = _layers.shift_right
AxialTransformer = _model.AxialTransformer
bits_per_dim = _model.bits_per_dim
axial_transformer_presets = _presets.axial_transformer_presets
gumbel_noise = _sampling.gumbel_noise
sample = _sampling.sample
