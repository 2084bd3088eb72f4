"""Point-MAE: "Masked Autoencoders for Point Cloud Self-supervised Learning"
(Pang et al., ECCV 2022).

https://arxiv.org/abs/2203.06604; official code Pang-Yatian/Point-MAE.
Importing this package registers the `point_mae` (pre-training) and
`point_mae_classifier` (fine-tuning) models and their presets.
"""

from garden.point_mae.point_mae_backbone import PointMAEBackbone  # noqa: F401
from garden.point_mae.point_mae_classifier import (  # noqa: F401
    PointMAEClassifier,
)
from garden.point_mae.point_mae_layers import MiniPointNet  # noqa: F401
from garden.point_mae.point_mae_layers import PointGrouper  # noqa: F401
from garden.point_mae.point_mae_layers import PointMAEDecoder  # noqa: F401
from garden.point_mae.point_mae_layers import (  # noqa: F401
    PositionalTransformer,
)
from garden.point_mae.point_mae_presets import (  # noqa: F401
    classifier_presets,
)
from garden.point_mae.point_mae_presets import (  # noqa: F401
    pretrainer_presets,
)
from garden.point_mae.point_mae_pretrainer import (  # noqa: F401
    PointMAEPretrainer,
)
