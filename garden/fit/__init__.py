"""FIT: "Far-reaching Interleaved Transformers" (Chen & Li 2023).

https://arxiv.org/abs/2305.12689; official code google-research/pix2seq
(`architectures/transformers.py`). Importing this package registers the
`fit` model (a FIT encoder image classifier) and its presets. See
garden/fit/README.md.
"""

from garden.fit.fit_backbone import FITEncoder  # noqa: F401
from garden.fit.fit_classifier import FITClassifier  # noqa: F401
from garden.fit.fit_layers import FITCrossAttention  # noqa: F401
from garden.fit.fit_layers import chunk_causal_mask  # noqa: F401
from garden.fit.fit_layers import group_images  # noqa: F401
from garden.fit.fit_layers import parse_layers  # noqa: F401
from garden.fit.fit_presets import fit_encoder_params  # noqa: F401
from garden.fit.fit_presets import fit_presets  # noqa: F401
