"""`MAEPretrainer` (registry name `mae`): masked-autoencoder pre-training.

Official code: facebookresearch/mae `models_mae.py` (`MaskedAutoencoderViT`).
"""

import keras
import numpy as np
from keras import ops

from garden.mae.mae_backbone import MAEViTEncoder
from garden.mae.mae_layers import MAEDecoder
from garden.mae.mae_presets import mae_presets
from official.layers.patch_embedding import patchify
from official.layers.patch_embedding import unpatchify
from official.models.garden_model import GardenModel
from official.registry import register_model


def num_visible(num_patches, mask_ratio):
    """Visible patches per sample: `int(L * (1 - mask_ratio))` (official)."""
    return int(num_patches * (1 - mask_ratio))


def random_masking(noise, num_keep):
    """Per-sample random masking from noise (paper §3 "Masking";
    `random_masking` upstream): `ids_shuffle = argsort(noise)` (small noise
    is kept), `ids_restore = argsort(ids_shuffle)`.

    Returns ids_keep (B, K) int, ids_restore (B, L) int and mask (B, L)
    float32, 1 = masked. Patch i is masked iff its rank in the shuffle,
    `ids_restore[i]`, is >= K: the official "ones, first K zeroed,
    unshuffled" mask without a scatter.
    """
    ids_shuffle = ops.argsort(noise, axis=1)
    ids_restore = ops.argsort(ids_shuffle, axis=1)
    ids_keep = ids_shuffle[:, :num_keep]
    mask = ops.cast(ops.greater_equal(ids_restore, num_keep), "float32")
    return ids_keep, ids_restore, mask


def patch_targets(images, patch_size, norm_pix_loss):
    """Per-patch pixel targets (B, L, p·p·C), float32.

    With `norm_pix_loss` each patch is normalised by its own mean and
    standard deviation (paper §3 "Reconstruction target"; `forward_loss`:
    `(x - mean) / (var + 1e-6) ** .5` with PyTorch's default unbiased
    `var`).
    """
    target = patchify(ops.cast(images, "float32"), patch_size)
    if norm_pix_loss:
        n = target.shape[-1]
        mean = ops.mean(target, axis=-1, keepdims=True)
        var = ops.sum(ops.square(target - mean), axis=-1, keepdims=True)
        var = var / (n - 1)
        target = (target - mean) / ops.sqrt(var + 1e-6)
    return target


def masked_patch_loss(reconstruction, target, mask, sample_weight=None):
    """Mean over masked patches of the per-patch mean squared error.

    Paper §3 "Reconstruction target": "we compute the loss only on masked
    patches"; `forward_loss`: `(loss * mask).sum() / mask.sum()`. With
    `sample_weight` (B,), each sample's masked patches are weighted.
    A mask with no masked patch gives 0 (the official code divides 0/0).
    """
    pred = ops.cast(reconstruction, "float32")
    per_patch = ops.mean(ops.square(pred - ops.cast(target, "float32")),
                         axis=-1)
    weights = ops.cast(mask, "float32")
    if sample_weight is not None:
        weights = weights * ops.reshape(
            ops.cast(sample_weight, "float32"), (-1, 1))
    total = ops.sum(weights)
    return ops.sum(per_patch * weights) / ops.maximum(total, 1e-12)


def mae_example_inputs(config, batch_size, seed):
    """Seeded `{"images", "mask_noise"}` NumPy inputs for a config."""
    rng = np.random.default_rng(seed)
    size = config.get("image_size", 224)
    channels = config.get("num_channels", 3)
    num_patches = (size // config.get("patch_size", 16)) ** 2
    return {
        "images": rng.uniform(
            size=(batch_size, size, size, channels)).astype("float32"),
        "mask_noise": rng.uniform(
            size=(batch_size, num_patches)).astype("float32"),
    }


@register_model(
    "mae",
    presets=mae_presets,
    example_inputs=mae_example_inputs,
    tags={"domain": "vision", "task": "masked-image-modeling",
          "modality": "image", "family": "vision-ssl", "paper": "mae"},
    description="Masked Autoencoder pre-training (He et al. 2021).",
)
class MAEPretrainer(GardenModel):
    """Masked autoencoder pre-training model (He et al. 2021).

    Paper: "Masked Autoencoders Are Scalable Vision Learners",
    https://arxiv.org/abs/2111.06377. Patches are shuffled by the argsort of
    per-sample noise; the first `int(L * (1 - mask_ratio))` are kept (§3
    "Masking"). The encoder (`MAEViTEncoder`) sees only the visible patches
    plus a cls token; the decoder (`MAEDecoder`) sees encoded tokens plus
    mask tokens at the masked positions and predicts every patch's pixels;
    the loss is the mean squared error on masked patches only.

    Noise: given as `inputs["mask_noise"]` (what export uses); otherwise
    drawn from a `SeedGenerator` in training, or with a fixed stateless seed
    at inference, so `model(x, training=False)` is deterministic.

    Args:
        image_size: int. Square input side.
        patch_size: int.
        num_channels: int.
        hidden_dim, num_layers, num_heads: encoder width, depth, heads.
        decoder_hidden_dim, decoder_num_layers, decoder_num_heads: decoder.
        mlp_ratio: float.
        layer_norm_epsilon: float.
        mask_ratio: float in [0, 1).
        norm_pix_loss: bool. Per-patch normalised pixel targets.
        activation: str. MLP activation ("gelu" = exact GELU).
        seed: int or None. Seed of the training mask generator.

    Inputs:
        dict `images` (B, H, W, C) float, optional `mask_noise` (B, L)
        float; or a bare image tensor.

    Outputs:
        dict `reconstruction` (B, L, p·p·C) predicted patches, `mask`
        (B, L) 1 = masked, `target` (B, L, p·p·C) (normalised if
        `norm_pix_loss`).

    Example:

    >>> import garden
    >>> model = garden.build("mae", preset="tiny")
    >>> out = model(garden.example_inputs("mae", preset="tiny"))
    >>> tuple(out["reconstruction"].shape), tuple(out["mask"].shape)
    ((2, 16, 48), (2, 16))
    """

    input_names = ("images", "mask_noise")
    optional_input_names = ("mask_noise",)
    # Decoder class; a subclass may swap it (ablations, tests).
    decoder_class = MAEDecoder
    # Stateless seed of the inference mask (training=False, no mask_noise).
    EVAL_MASK_SEED = 0

    def __init__(self, image_size=224, patch_size=16, num_channels=3,
                 hidden_dim=1024, num_layers=24, num_heads=16,
                 decoder_hidden_dim=512, decoder_num_layers=8,
                 decoder_num_heads=16, mlp_ratio=4.0, layer_norm_epsilon=1e-6,
                 mask_ratio=0.75, norm_pix_loss=False, activation="gelu",
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(
                f"{self.model_label}: mask_ratio must be in [0, 1); got "
                f"{mask_ratio}."
            )
        if norm_pix_loss and patch_size * patch_size * num_channels < 2:
            raise ValueError(
                f"{self.model_label}: norm_pix_loss needs at least 2 values "
                "per patch."
            )
        # === Config ===
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.decoder_hidden_dim = decoder_hidden_dim
        self.decoder_num_layers = decoder_num_layers
        self.decoder_num_heads = decoder_num_heads
        self.mlp_ratio = mlp_ratio
        self.layer_norm_epsilon = layer_norm_epsilon
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.activation = activation
        self.seed = seed
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2
        self.num_keep = num_visible(self.num_patches, mask_ratio)

        # === Layers ===
        p = self.dtype_policy
        self.encoder = MAEViTEncoder(
            image_size=image_size, patch_size=patch_size,
            num_channels=num_channels, hidden_dim=hidden_dim,
            num_layers=num_layers, num_heads=num_heads, mlp_ratio=mlp_ratio,
            layer_norm_epsilon=layer_norm_epsilon, final_norm=True,
            trainable_pos_embed=False, activation=activation, dtype=p,
            name="encoder",
        )
        self.decoder = self.decoder_class(
            grid_size=self.grid_size, patch_size=patch_size,
            num_channels=num_channels, hidden_dim=decoder_hidden_dim,
            num_layers=decoder_num_layers, num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio, layer_norm_epsilon=layer_norm_epsilon,
            activation=activation, dtype=p, name="decoder",
        )
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, self.num_channels)

    def build(self, input_shape=None):
        self.encoder.build((None,) + self.image_shape)
        self.decoder.build((None, None, self.hidden_dim))

    def draw_mask_noise(self, batch_size, training=False):
        """(B, L) uniform noise: SeedGenerator in training, else fixed."""
        seed = self.seed_generator if training else self.EVAL_MASK_SEED
        return keras.random.uniform((batch_size, self.num_patches), seed=seed)

    def call(self, inputs, training=None):
        inputs = self.unpack_inputs(inputs)
        images = self.check_input(
            "images", inputs["images"], (None,) + self.image_shape, "float")
        noise = inputs.get("mask_noise")
        if noise is None:
            noise = self.draw_mask_noise(ops.shape(images)[0], bool(training))
        else:
            noise = self.check_input(
                "mask_noise", noise, (None, self.num_patches), "float")
            noise = ops.cast(noise, "float32")
        ids_keep, ids_restore, mask = random_masking(noise, self.num_keep)
        latent = self.encoder(images, ids_keep=ids_keep, training=training)
        reconstruction = self.decoder(latent, ids_restore, training=training)
        return {
            "reconstruction": reconstruction,
            "mask": mask,
            "target": patch_targets(images, self.patch_size,
                                    self.norm_pix_loss),
        }

    def task_loss(self, x, y, y_pred, sample_weight=None):
        return masked_patch_loss(
            y_pred["reconstruction"], y_pred["target"], y_pred["mask"],
            sample_weight)

    def patchify(self, images):
        """(B, H, W, C) -> (B, L, p·p·C), the official patch layout."""
        return patchify(images, self.patch_size)

    def unpatchify(self, patches):
        """(B, L, p·p·C) -> (B, H, W, C)."""
        return unpatchify(patches, self.patch_size, self.grid_size,
                          self.num_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_channels": self.num_channels,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "decoder_hidden_dim": self.decoder_hidden_dim,
            "decoder_num_layers": self.decoder_num_layers,
            "decoder_num_heads": self.decoder_num_heads,
            "mlp_ratio": self.mlp_ratio,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "mask_ratio": self.mask_ratio,
            "norm_pix_loss": self.norm_pix_loss,
            "activation": self.activation,
            "seed": self.seed,
        }
