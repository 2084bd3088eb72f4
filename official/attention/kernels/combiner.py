"""Combiner kernels (Ren et al. 2021, "Combiner: Full Attention Transformer
with Sparse Computation Cost", NeurIPS 2021, arXiv 2107.05768).

Importing this module registers `combiner_fixed`, `combiner_logsparse`,
`combiner_axial` and `combiner_mixture`; shared helpers are in
`combiner_common`.
"""

from official.attention.kernels import combiner_axial  # noqa: F401
from official.attention.kernels import combiner_fixed  # noqa: F401
from official.attention.kernels import combiner_logsparse  # noqa: F401
from official.attention.kernels import combiner_mixture  # noqa: F401
