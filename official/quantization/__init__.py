"""Quantization ops shared by several papers (see README.md here).

fake int8 quantization (QAT), vector quantization (VQ-VAE, EMA, restarts),
residual VQ, finite scalar quantization and binary hashing.
"""

from official.quantization.binary_hash import BinaryHash  # noqa: F401
from official.quantization.binary_hash import binary_hash  # noqa: F401
from official.quantization.binary_hash import hamming_distance  # noqa: F401
from official.quantization.binary_hash import pairwise_hamming_distance  # noqa: F401
from official.quantization.codebook_ops import perplexity  # noqa: F401
from official.quantization.fake_quant import FakeQuant  # noqa: F401
from official.quantization.fake_quant import fake_quant  # noqa: F401
from official.quantization.fake_quant import quantization_scale  # noqa: F401
from official.quantization.fsq import FiniteScalarQuantizer  # noqa: F401
from official.quantization.residual_vq import ResidualVectorQuantizer  # noqa: F401
from official.quantization.vector_quantizer import VectorQuantizer  # noqa: F401
