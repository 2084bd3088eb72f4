"""SLAB: "Efficient Transformers with Simplified Linear Attention and
Progressive Re-parameterized Batch Normalization" (Guo et al., ICML 2024).

https://arxiv.org/abs/2405.11582; official code xinghaochen/SLAB.
Importing this package registers the `slab` model (SLAB-DeiT) and its
presets. The SLA attention itself is the `official.attention` kernel
`linear_relu` (see garden/slab/README.md).
"""

from garden.slab.slab_convert import load_official_state  # noqa: F401
from garden.slab.slab_deit import SLABDeiT  # noqa: F401
from garden.slab.slab_fold import fold_affine_into_dense  # noqa: F401
from garden.slab.slab_fold import fold_batchnorm  # noqa: F401
from garden.slab.slab_layers import SLABBlock  # noqa: F401
from garden.slab.slab_norms import ProgressiveRepBN  # noqa: F401
from garden.slab.slab_norms import RepBatchNorm  # noqa: F401
from garden.slab.slab_norms import prepbn_ln_weight  # noqa: F401
from garden.slab.slab_norms import set_prepbn_step  # noqa: F401
from garden.slab.slab_presets import slab_presets  # noqa: F401
