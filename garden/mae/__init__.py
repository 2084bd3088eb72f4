"""MAE: "Masked Autoencoders Are Scalable Vision Learners" (He et al. 2021).

https://arxiv.org/abs/2111.06377; official code facebookresearch/mae.
Importing this package registers the `mae` (pre-training) and
`mae_classifier` (fine-tuning) models and their presets.
"""

from garden.mae.mae_backbone import MAEViTEncoder  # noqa: F401
from garden.mae.mae_classifier import MAEClassifier  # noqa: F401
from garden.mae.mae_layers import MAEAttention  # noqa: F401
from garden.mae.mae_layers import MAEBlock  # noqa: F401
from garden.mae.mae_layers import MAEDecoder  # noqa: F401
from garden.mae.mae_presets import mae_classifier_presets  # noqa: F401
from garden.mae.mae_presets import mae_presets  # noqa: F401
from garden.mae.mae_pretrainer import MAEPretrainer  # noqa: F401
from garden.mae.mae_pretrainer import masked_patch_loss  # noqa: F401
from garden.mae.mae_pretrainer import patch_targets  # noqa: F401
from garden.mae.mae_pretrainer import random_masking  # noqa: F401
