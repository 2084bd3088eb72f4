"""Inference-optimisation tools (Chitty-Venkata et al. 2023, arXiv
2307.07982; spec `inference_optimization_survey.md`). See README.md here.

int8 PTQ with a report (Keras `quantize`), static calibration, int8 KV
cache, magnitude pruning, attention-head and FFN-neuron pruning, logit and
feature distillation.
"""

from official.compression.calibration import StaticActivationQuantizer  # noqa: F401
from official.compression.calibration import apply_static_ranges  # noqa: F401
from official.compression.calibration import calibrate  # noqa: F401
from official.compression.calibration import quantize_int8_static  # noqa: F401
from official.compression.distillation import Distiller  # noqa: F401
from official.compression.distillation import feature_distillation_loss  # noqa: F401
from official.compression.distillation import kd_loss  # noqa: F401
from official.compression.ffn_pruning import mask_neurons  # noqa: F401
from official.compression.ffn_pruning import neuron_importance  # noqa: F401
from official.compression.ffn_pruning import prune_neurons  # noqa: F401
from official.compression.ffn_pruning import select_neurons  # noqa: F401
from official.compression.head_pruning import head_gates  # noqa: F401
from official.compression.head_pruning import head_importance  # noqa: F401
from official.compression.head_pruning import keep_to_gates  # noqa: F401
from official.compression.head_pruning import predicted_parameter_reduction  # noqa: F401
from official.compression.head_pruning import prune_heads  # noqa: F401
from official.compression.head_pruning import select_heads  # noqa: F401
from official.compression.kv_cache import Int8KVCache  # noqa: F401
from official.compression.kv_cache import decode_greedy  # noqa: F401
from official.compression.kv_cache import dequantize_kv  # noqa: F401
from official.compression.kv_cache import int8_step  # noqa: F401
from official.compression.kv_cache import quantize_kv  # noqa: F401
from official.compression.kv_cache import teacher_forced_logits  # noqa: F401
from official.compression.magnitude_pruning import MagnitudePruner  # noqa: F401
from official.compression.magnitude_pruning import PolynomialSparsity  # noqa: F401
from official.compression.magnitude_pruning import PruningCallback  # noqa: F401
from official.compression.magnitude_pruning import magnitude_mask  # noqa: F401
from official.compression.magnitude_pruning import polynomial_sparsity  # noqa: F401
from official.compression.measure import compressed_bytes  # noqa: F401
from official.compression.measure import median_ms  # noqa: F401
from official.compression.measure import weight_bytes  # noqa: F401
from official.compression.ptq import QuantizationReport  # noqa: F401
from official.compression.ptq import quantize_model  # noqa: F401
from official.compression.ptq import reload_quantized  # noqa: F401
