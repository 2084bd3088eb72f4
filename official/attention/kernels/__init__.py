"""Built-in kernels; importing a module registers its kernels."""

from official.attention.kernels import axial  # noqa: F401
from official.attention.kernels import chunked  # noqa: F401
from official.attention.kernels import combiner  # noqa: F401
from official.attention.kernels import dense  # noqa: F401
from official.attention.kernels import ecoformer  # noqa: F401
from official.attention.kernels import linear_attention  # noqa: F401
from official.attention.kernels import local_global  # noqa: F401
from official.attention.kernels import lowrank  # noqa: F401
from official.attention.kernels import lsh  # noqa: F401
from official.attention.kernels import performer  # noqa: F401
from official.attention.kernels import split_k  # noqa: F401
