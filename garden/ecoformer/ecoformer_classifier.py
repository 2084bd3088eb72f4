"""`EcoformerPVTClassifier` (registry name `ecoformer`): PVTv2 + EcoFormer.

Official code: ziplab/EcoFormer@a277f9e `pvt/pvt_v2.py`
(`PyramidVisionTransformerV2`, `set_retrain`) and `pvt/main.py` (the hash
functions are refitted at the start of every k-th epoch, k = 300 > 30
fine-tuning epochs, so once; the fit happens inside the first forward).
"""

import keras
import numpy as np
from keras import ops

from garden.ecoformer.ecoformer_layers import ATTENTION_TYPES
from garden.ecoformer.ecoformer_layers import OverlapPatchEmbed
from garden.ecoformer.ecoformer_layers import PVTBlock
from garden.ecoformer.ecoformer_layers import dense
from garden.ecoformer.ecoformer_presets import ecoformer_presets
from official.models.garden_model import GardenModel
from official.registry import register_model


def stage_grids(image_size, num_stages=4):
    """Token grid side per stage: Conv(7, s4, p3), then Conv(3, s2, p1)."""
    sides, side = [], image_size
    for i in range(num_stages):
        k, s = (7, 4) if i == 0 else (3, 2)
        side = (side + 2 * (k // 2) - k) // s + 1
        sides.append(side)
    return sides


def ecoformer_example_inputs(config, batch_size, seed):
    rng = np.random.default_rng(seed)
    size = config.get("image_size", 224)
    channels = config.get("num_channels", 3)
    return {"images": rng.uniform(
        size=(batch_size, size, size, channels)).astype("float32")}


def ecoformer_example_labels(config, batch_size, seed):
    rng = np.random.default_rng(seed + 1)
    return rng.integers(0, config.get("num_classes", 1000),
                        size=(batch_size,)).astype("int32")


@register_model(
    "ecoformer",
    presets=ecoformer_presets,
    example_inputs=ecoformer_example_inputs,
    example_labels=ecoformer_example_labels,
    tags={"domain": "vision", "family": "efficient-attention",
          "modality": "image", "task": "image-classification",
          "paper": "ecoformer"},
    description="PVTv2 with EcoFormer hashed linear attention (KSH-learned "
    "binary codes).",
)
class EcoformerPVTClassifier(GardenModel):
    """PVTv2 image classifier with EcoFormer attention in stages 1-3.

    Paper: Liu et al. 2022, "EcoFormer: Energy-Saving Attention with Linear
    Complexity", https://arxiv.org/abs/2209.09004 (sec. 4, sec. 5.1 with
    PVTv2). Stages: `OverlapPatchEmbed` (7x7/4, then 3x3/2), blocks with
    EcoFormer attention (shared `to_qk`, kernelized b-bit hash codes, linear
    attention; `attention_types` picks "ecoformer" or softmax "msa" per
    stage, official: MSA in the last stage), PVTv2's depthwise-conv MLP,
    LayerNorm per stage, global average pool, linear head.

    The hash functions are learned by KSH, not by the task gradient: call
    `fit_hash_functions(images)` on one batch before training (the official
    code fits on the first training batch), or use `KSHFitCallback`. Until
    then each EcoFormer layer hashes with random functions.

    Args:
        image_size: int. Square input side.
        num_channels: int.
        embed_dims, num_heads, mlp_ratios, depths: per-stage lists (4).
        num_classes: int.
        attention_types: per-stage list of "ecoformer" / "msa"; None =
            EcoFormer in stages 1-3, MSA in stage 4 (official).
        num_bits: int. b (official 16).
        num_anchors: int. m (official 25).
        topk: int. KSH labels per row and sign (official 10).
        normalize: "official" (released `linear_attention_bias`, default, to
            match released checkpoints) or "kernel_smoother".
        drop_path: float. Maximum stochastic-depth rate (linear schedule).
        label_smoothing: float. Used by `task_loss`.
        layer_norm_epsilon: float. Block and stage norms (1e-6; the patch
            embeddings' LayerNorm keeps PyTorch's default 1e-5).

    Inputs:
        `{"images": (B, S, S, C)}` or the bare image tensor.

    Outputs:
        (B, num_classes) logits.

    Example:

    >>> import garden
    >>> model = garden.build("ecoformer", preset="tiny")
    >>> x = garden.example_inputs("ecoformer", preset="tiny")
    >>> fits = model.fit_hash_functions(x["images"])
    >>> len(fits), tuple(model(x).shape)
    (3, (2, 10))
    """

    input_names = ("images",)

    def __init__(self, image_size=224, num_channels=3,
                 embed_dims=(32, 64, 160, 256), num_heads=(1, 2, 5, 8),
                 mlp_ratios=(8, 8, 4, 4), depths=(2, 2, 2, 2),
                 num_classes=1000, attention_types=None, num_bits=16,
                 num_anchors=25, topk=10, normalize="official",
                 drop_path=0.1, label_smoothing=0.0, layer_norm_epsilon=1e-6,
                 **kwargs):
        super().__init__(**kwargs)
        num_stages = len(embed_dims)
        if attention_types is None:
            attention_types = ["ecoformer"] * (num_stages - 1) + ["msa"]
        lists = dict(num_heads=num_heads, mlp_ratios=mlp_ratios,
                     depths=depths, attention_types=attention_types)
        for key, value in lists.items():
            if len(value) != num_stages:
                raise ValueError(
                    f"EcoformerPVTClassifier: {key} has {len(value)} entries "
                    f"for {num_stages} stages.")
        bad = set(attention_types) - set(ATTENTION_TYPES)
        if bad:
            raise ValueError(
                f"EcoformerPVTClassifier: unknown attention types "
                f"{sorted(bad)}; expected {ATTENTION_TYPES}.")
        # === Config ===
        self.image_size = image_size
        self.num_channels = num_channels
        self.embed_dims = list(embed_dims)
        self.num_heads = list(num_heads)
        self.mlp_ratios = list(mlp_ratios)
        self.depths = list(depths)
        self.num_classes = num_classes
        self.attention_types = list(attention_types)
        self.num_bits = num_bits
        self.num_anchors = num_anchors
        self.topk = topk
        self.normalize = normalize
        self.drop_path = drop_path
        self.label_smoothing = label_smoothing
        self.layer_norm_epsilon = layer_norm_epsilon
        self.grids = stage_grids(image_size, num_stages)

        # === Layers ===
        p = self.dtype_policy
        total = sum(self.depths)
        rates = [drop_path * i / max(total - 1, 1) for i in range(total)]
        self.patch_embeds, self.stages, self.norms = [], [], []
        cur = 0
        for i, dim in enumerate(self.embed_dims):
            k, s = (7, 4) if i == 0 else (3, 2)
            self.patch_embeds.append(OverlapPatchEmbed(
                k, s, dim, dtype=p, name=f"patch_embed{i + 1}"))
            self.stages.append([
                PVTBlock(self.num_heads[i], self.mlp_ratios[i],
                         (self.grids[i], self.grids[i]),
                         attention_type=self.attention_types[i],
                         num_bits=num_bits, num_anchors=num_anchors,
                         normalize=normalize, drop_path=rates[cur + j],
                         layer_norm_epsilon=layer_norm_epsilon, dtype=p,
                         name=f"block{i + 1}_{j}")
                for j in range(self.depths[i])])
            cur += self.depths[i]
            self.norms.append(keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=p, name=f"norm{i + 1}"))
        self.head = dense(num_classes, "head", p)

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, self.num_channels)

    def build(self, input_shape=None):
        shape = (None,) + self.image_shape
        for i, dim in enumerate(self.embed_dims):
            self.patch_embeds[i].build(shape)
            tokens = (None, self.grids[i] ** 2, dim)
            for block in self.stages[i]:
                block.build(tokens)
            self.norms[i].build(tokens)
            shape = (None, self.grids[i], self.grids[i], dim)
        self.head.build((None, self.embed_dims[-1]))

    def _stage_input(self, i, x):
        x = self.patch_embeds[i](x)
        return ops.reshape(x, (-1, self.grids[i] ** 2, self.embed_dims[i]))

    def _stage_output(self, i, x):
        x = self.norms[i](x)
        if i < len(self.embed_dims) - 1:
            x = ops.reshape(x, (-1, self.grids[i], self.grids[i],
                                self.embed_dims[i]))
        return x

    def features(self, images, training=False):
        """(B, D_4) pooled features (`forward_features` upstream)."""
        x = images
        for i in range(len(self.embed_dims)):
            x = self._stage_input(i, x)
            for block in self.stages[i]:
                x = block(x, training=training)
            x = self._stage_output(i, x)
        return ops.mean(x, axis=1)

    def call(self, inputs, training=None):
        inputs = self.unpack_inputs(inputs)
        images = self.check_input("images", inputs["images"],
                                  (None,) + self.image_shape, "float")
        return self.head(self.features(images, training=training))

    def task_loss(self, x, y, y_pred, sample_weight=None):
        """Cross-entropy from logits with label smoothing."""
        labels = ops.one_hot(ops.reshape(ops.cast(y, "int32"), (-1,)),
                             self.num_classes)
        per_sample = keras.losses.categorical_crossentropy(
            labels, ops.cast(y_pred, "float32"), from_logits=True,
            label_smoothing=self.label_smoothing)
        if sample_weight is None:
            return ops.mean(per_sample)
        w = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        return ops.sum(per_sample * w) / ops.maximum(ops.sum(w), 1e-12)

    # ------------------------------------------------------------- KSH fit
    def ecoformer_layers(self):
        """The `EcoformerAttention` layers, in forward order."""
        if not self.built:
            self.build()
        return [b.attn for stage in self.stages for b in stage
                if b.attention_type == "ecoformer"]

    def fit_hash_functions(self, images, topk=None, iterations=100,
                           learning_rate=5e-4, momentum=0.9, seed=0):
        """Learns every EcoFormer layer's hash functions on one batch.

        As the official first training forward after `set_retrain()`: layers
        are fitted in forward order, each on its own input (the batch's
        shared queries/keys) computed with the already fitted earlier
        layers, in inference mode (official fine-tuning keeps the model in
        eval mode). Layer l draws its anchors with seed `seed + l`. Eager;
        returns the per-layer `KSHFit` results.
        """
        if not self.built:
            self.build()
        topk = self.topk if topk is None else topk
        x = ops.convert_to_tensor(np.asarray(images, "float32"))
        fits = []
        for i in range(len(self.embed_dims)):
            x = self._stage_input(i, x)
            for block in self.stages[i]:
                if block.attention_type == "ecoformer":
                    fits.append(block.attn.fit_hash(
                        block.norm1(x), topk=topk, iterations=iterations,
                        learning_rate=learning_rate, momentum=momentum,
                        seed=seed + len(fits)))
                x = block(x, training=False)
            x = self._stage_output(i, x)
        return fits

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "num_channels": self.num_channels,
            "embed_dims": self.embed_dims,
            "num_heads": self.num_heads,
            "mlp_ratios": self.mlp_ratios,
            "depths": self.depths,
            "num_classes": self.num_classes,
            "attention_types": self.attention_types,
            "num_bits": self.num_bits,
            "num_anchors": self.num_anchors,
            "topk": self.topk,
            "normalize": self.normalize,
            "drop_path": self.drop_path,
            "label_smoothing": self.label_smoothing,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }


class KSHFitCallback(keras.callbacks.Callback):
    """Refits the hash functions at the start of every `period`-th epoch.

    Official `main.py`: `set_retrain()` when `epoch % args.k == 0` (k = 300),
    and the next training forward fits on its batch. A callback does not see
    the batch, so it fits on `images` (a batch the caller picks).
    """

    def __init__(self, images, period=300, **fit_kwargs):
        super().__init__()
        self.images = images
        self.period = period
        self.fit_kwargs = fit_kwargs
        self.fits = []

    def on_epoch_begin(self, epoch, logs=None):
        if epoch % self.period == 0:
            self.fits.append(self.model.fit_hash_functions(
                self.images, **self.fit_kwargs))
