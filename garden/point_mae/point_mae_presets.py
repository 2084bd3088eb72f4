"""Point-MAE presets as plain dicts, and example inputs for the registry.

`params` is the exact trainable parameter count of the official PyTorch
modules (github.com/Pang-Yatian/Point-MAE @ 7445a68, `models/Point_MAE.py`):
`sum(p.numel() for p in model.parameters() if p.requires_grad)` of
`Point_MAE(cfg)` / `PointTransformer(cfg)`, run on CPU with the CUDA
extensions (knn_cuda, pointnet2_ops, chamfer) replaced by stand-ins that own
no parameters. BatchNorm running statistics are buffers, not parameters; our
count (Keras trainable weights) likewise holds BN gamma/beta only.

Formula (D = trans_dim = encoder_dims, (h1, h2, h3) = mini-PointNet widths,
official (128, 256, 512), K = group_size, P = 128 = pos-MLP hidden width,
n_cls classes; Conv1d k=1 counts as Linear):

    mini-PointNet (`Encoder`)   3*h1+h1 | BN 2*h1 | h1*h2+h2 |
                                2*h2*h3+h3 | BN 2*h3 | h3*D+D
    pos_embed (Linear 3->P, GELU, Linear P->D)    3P+P + P*D+D
    Block (qkv_bias=False)      norm1 2D | qkv 3D^2 | proj D^2+D | norm2 2D |
                                fc1 4D^2+4D | fc2 4D^2+D  = 12D^2 + 9D
    norm                        2D
    Point_MAE adds: mask_token D, decoder_pos_embed (as pos_embed),
        decoder blocks, decoder norm 2D, increase_dim (Conv1d D->3K) D*3K+3K.
    PointTransformer adds: cls_token D, cls_pos D, head
        Linear(2D,256) + BN(256) + Linear(256,256) + BN(256) +
        Linear(256,n_cls).

Paper sizes (D=384, 12 blocks):
    mini-PointNet 512 + 256 + 33,024 + 262,656 + 1,024 + 196,992 = 494,464
    pos_embed 512 + 49,536 = 50,048;  block 1,773,312;  12 blocks 21,279,744
    encoder 494,464 + 50,048 + 21,279,744 + 768 = 21,825,024
    Point_MAE: + 384 + 50,048 + 4 * 1,773,312 + 768 + 36,960 = 29,006,432
    PointTransformer (40 cls): + 768 + 196,864 + 512 + 65,792 + 512 + 10,280
        = 22,099,752  (15 cls: 22,093,327; the count does not depend on
        the number of points or groups: no per-group parameter).
Tiny sizes (D=64, 2 blocks, widths (32, 64, 128); the official Encoder
hard-codes its widths, so it was counted with a width-parametrised copy of
the same modules):
    mini-PointNet 128 + 64 + 2,112 + 16,512 + 256 + 8,256 = 27,328
    pos_embed 8,768;  block 49,792;  encoder 27,328 + 8,768 + 99,584 + 128
        = 135,808
    Point_MAE (1 decoder block, K=16): + 64 + 8,768 + 49,792 + 128 + 3,120
        = 197,680
    PointTransformer (7 cls): + 128 + 33,024 + 512 + 65,792 + 512 + 1,799
        = 237,575
`tests/garden/point_mae/test_point_mae_params.py` recomputes these from the
formula and checks the Keras models against them.
"""

import numpy as np

PAPER = "https://arxiv.org/abs/2203.06604"
LICENSE = "MIT"  # official code (no released weights are ported here)
SOURCE = ("Pang-Yatian/Point-MAE@7445a68 models/Point_MAE.py: trainable "
          "nn.Parameters of {cls}({cfg}), counted by instantiating the "
          "official module (formula in point_mae_presets docstring)")

_ENCODER_PAPER = dict(
    num_points=1024, num_groups=64, group_size=32, embed_dim=384, depth=12,
    num_heads=6, mlp_ratio=4.0, patch_dims=(128, 256, 512),
    pos_hidden_dim=128, drop_path_rate=0.1, layer_norm_epsilon=1e-5,
    activation="gelu",
)
_ENCODER_TINY = dict(
    num_points=256, num_groups=16, group_size=16, embed_dim=64, depth=2,
    num_heads=2, mlp_ratio=4.0, patch_dims=(32, 64, 128),
    pos_hidden_dim=128, drop_path_rate=0.1, layer_norm_epsilon=1e-5,
    activation="gelu",
)

_PRETRAIN_PAPER = {
    "description": "Point-MAE pre-training on ShapeNet-55 "
    "(cfgs/pretrain.yaml): 1024 points, 64 groups x 32, 384 wide, 12 "
    "blocks / 6 heads, decoder 4 blocks / 6 heads, 60% random masking, "
    "Chamfer-L2.",
    "config": dict(_ENCODER_PAPER, decoder_depth=4, decoder_num_heads=6,
                   mask_ratio=0.6, loss="cdl2"),
    "params": 29_006_432,
    "source": SOURCE.format(cls="Point_MAE", cfg="cfgs/pretrain.yaml"),
    "preprocessing": {"num_points": 1024, "normalization": "pc_norm"},
    "weights": None,
}

pretrainer_presets = {
    "tiny": {
        "description": "Tiny Point-MAE for tests and the CPU proxy: 256 "
        "points, 16 groups x 16, 64 wide, 2 blocks, 1 decoder block.",
        "config": dict(_ENCODER_TINY, decoder_depth=1, decoder_num_heads=2,
                       mask_ratio=0.6, loss="cdl2"),
        "params": 197_680,
        "source": SOURCE.format(
            cls="Point_MAE", cfg="tiny config, Encoder widths (32, 64, 128)"),
        "preprocessing": {"num_points": 256, "normalization": "pc_norm"},
        "weights": None,
    },
    "paper": _PRETRAIN_PAPER,
    "point_mae_shapenet55": _PRETRAIN_PAPER,
}

_MODELNET40 = {
    "description": "Point-MAE fine-tuning on ModelNet40, 1k points "
    "(cfgs/finetune_modelnet.yaml): 64 groups x 32, cls token + max-pool "
    "head, 40 classes.",
    "config": dict(_ENCODER_PAPER, num_classes=40, head_dims=(256, 256),
                   head_dropout=0.5),
    "params": 22_099_752,
    "source": SOURCE.format(cls="PointTransformer",
                            cfg="cfgs/finetune_modelnet.yaml"),
    "preprocessing": {"num_points": 1024, "normalization": "pc_norm"},
    "weights": None,
}

classifier_presets = {
    "tiny": {
        "description": "Tiny Point-MAE classifier (tiny encoder, official "
        "256-256 head, 7 shapes3d classes).",
        "config": dict(_ENCODER_TINY, num_classes=7, head_dims=(256, 256),
                       head_dropout=0.5),
        "params": 237_575,
        "source": SOURCE.format(
            cls="PointTransformer",
            cfg="tiny config, Encoder widths (32, 64, 128)"),
        "preprocessing": {"num_points": 256, "normalization": "pc_norm"},
        "weights": None,
    },
    "paper": _MODELNET40,
    "point_mae_modelnet40": _MODELNET40,
    "point_mae_modelnet40_8k": {
        "description": "ModelNet40 with 8192 points "
        "(cfgs/finetune_modelnet_8k.yaml): 512 groups x 32.",
        "config": dict(_ENCODER_PAPER, num_points=8192, num_groups=512,
                       num_classes=40, head_dims=(256, 256),
                       head_dropout=0.5),
        "params": 22_099_752,
        "source": SOURCE.format(cls="PointTransformer",
                                cfg="cfgs/finetune_modelnet_8k.yaml"),
        "preprocessing": {"num_points": 8192, "normalization": "pc_norm"},
        "weights": None,
    },
    "point_mae_scanobjectnn_hardest": {
        "description": "ScanObjectNN PB_T50_RS (cfgs/finetune_scan_hardest"
        ".yaml): 2048 points, 128 groups x 32, 15 classes.",
        "config": dict(_ENCODER_PAPER, num_points=2048, num_groups=128,
                       num_classes=15, head_dims=(256, 256),
                       head_dropout=0.5),
        "params": 22_093_327,
        "source": SOURCE.format(cls="PointTransformer",
                                cfg="cfgs/finetune_scan_hardest.yaml"),
        "preprocessing": {"num_points": 2048, "normalization": "pc_norm"},
        "weights": None,
    },
}


def example_points(batch_size, num_points, seed):
    """Random `pc_norm`-ed clouds (B, N, 3) float32 (zero mean, radius 1)."""
    rng = np.random.RandomState(seed)
    pts = rng.standard_normal((batch_size, num_points, 3))
    pts -= pts.mean(axis=1, keepdims=True)
    pts /= np.linalg.norm(pts, axis=-1).max(axis=1)[:, None, None]
    return pts.astype("float32")


def pretrainer_example_inputs(config, batch_size=2, seed=0):
    """{"points", "mask_noise"}: explicit noise makes exports deterministic."""
    rng = np.random.RandomState(seed + 1)
    return {
        "points": example_points(batch_size, config["num_points"], seed),
        "mask_noise": rng.uniform(
            size=(batch_size, config["num_groups"])).astype("float32"),
    }


def classifier_example_inputs(config, batch_size=2, seed=0):
    return {"points": example_points(batch_size, config["num_points"], seed)}


def classifier_example_labels(config, batch_size=2, seed=0):
    rng = np.random.RandomState(seed + 2)
    return rng.randint(0, config["num_classes"], size=(batch_size,)).astype(
        "int32")
