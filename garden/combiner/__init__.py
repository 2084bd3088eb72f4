"""Combiner: "Full Attention Transformer with Sparse Computation Cost"
(Ren et al., NeurIPS 2021).

https://arxiv.org/abs/2107.05768; official code google-research/
google-research `combiner/`. Importing this package registers the
`combiner_lm` (causal language model) and `combiner_classifier`
(bidirectional encoder + classification head) models; their attention is
one of the kernels `combiner_fixed`, `combiner_logsparse`, `combiner_axial`,
`combiner_mixture` of `official.attention` (see garden/combiner/README.md).
"""

from garden.combiner.combiner_classifier import CombinerClassifier  # noqa: F401,E501
from garden.combiner.combiner_layers import CombinerAttention  # noqa: F401
from garden.combiner.combiner_layers import CombinerBlock  # noqa: F401
from garden.combiner.combiner_layers import CombinerTransformer  # noqa: F401
from garden.combiner.combiner_lm import CombinerLM  # noqa: F401
from garden.combiner.combiner_lm import lm_loss  # noqa: F401
from garden.combiner.combiner_presets import combiner_classifier_presets  # noqa: F401,E501
from garden.combiner.combiner_presets import combiner_lm_presets  # noqa: F401
