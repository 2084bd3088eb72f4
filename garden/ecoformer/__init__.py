"""EcoFormer: "Energy-Saving Attention with Linear Complexity" (Liu et al.
2022, https://arxiv.org/abs/2209.09004; official code ziplab/EcoFormer).

Importing this package registers the `ecoformer` model (PVTv2 with
EcoFormer attention) and its presets. The attention itself is the
`ecoformer` kernel of `official.attention`; the KSH hash learning is
`official.quantization.kernelized_hash`. See README.md.
"""

from garden.ecoformer.ecoformer_classifier import EcoformerPVTClassifier  # noqa: F401
from garden.ecoformer.ecoformer_classifier import KSHFitCallback  # noqa: F401
from garden.ecoformer.ecoformer_convert import load_official_state  # noqa: F401
from garden.ecoformer.ecoformer_convert import transfer_from_msa  # noqa: F401
from garden.ecoformer.ecoformer_energy import model_ops  # noqa: F401
from garden.ecoformer.ecoformer_layers import DWConvMLP  # noqa: F401
from garden.ecoformer.ecoformer_layers import EcoformerAttention  # noqa: F401
from garden.ecoformer.ecoformer_layers import OverlapPatchEmbed  # noqa: F401
from garden.ecoformer.ecoformer_layers import PVTBlock  # noqa: F401
from garden.ecoformer.ecoformer_presets import ecoformer_presets  # noqa: F401
