"""MAE presets as plain dicts: constructor kwargs plus the exact trainable
parameter count of the official implementation.

How `params` was derived (facebookresearch/mae @ efb2a80, timm 0.3.2): count
every `nn.Parameter` with `requires_grad=True` of the official module.

Pre-training, `models_mae.MaskedAutoencoderViT` (p = patch, C = channels,
D = embed_dim, n = depth, Dd = decoder_embed_dim, nd = decoder_depth,
mlp_ratio 4, so the MLP hidden width is 4D):

    patch_embed.proj (Conv2d C->D, k=s=p)   p*p*C*D + D
    cls_token                               D
    pos_embed                               frozen (requires_grad=False): 0
    blocks (timm Block, each)               12*D^2 + 13*D
        norm1 2D | attn.qkv 3D^2+3D | attn.proj D^2+D | norm2 2D |
        mlp.fc1 4D^2+4D | mlp.fc2 4D^2+D
    norm                                    2D
    decoder_embed (Linear D->Dd)            D*Dd + Dd
    mask_token                              Dd
    decoder_pos_embed                       frozen: 0
    decoder_blocks (each)                   12*Dd^2 + 13*Dd
    decoder_norm                            2Dd
    decoder_pred (Linear Dd->p*p*C)         Dd*p*p*C + p*p*C

Fine-tuning, `models_vit.VisionTransformer` (timm VisionTransformer with
`global_pool`): patch_embed, cls_token, pos_embed (a trainable parameter
here: (L+1)*D), n blocks, fc_norm 2D (global_pool; replaces norm 2D in
cls-token mode, same count), head D*K + K.
`tests/garden/mae/test_mae_params.py` recomputes every count below from
these formulas and checks that the Keras models have exactly that many
trainable weights.
"""

PAPER = "https://arxiv.org/abs/2111.06377"
LICENSE = "CC-BY-NC-4.0"  # official code and weights

mae_presets = {
    "tiny": {
        "description": "Tiny MAE for tests: 16x16x3 images, patch 4, "
        "encoder 64 wide x 2 layers, decoder 48 wide x 1 layer.",
        "config": dict(
            image_size=16, patch_size=4, num_channels=3, hidden_dim=64,
            num_layers=2, num_heads=4, decoder_hidden_dim=48,
            decoder_num_layers=1, decoder_num_heads=4, mask_ratio=0.75,
            norm_pix_loss=False,
        ),
        # L=16. enc: 4*4*3*64+64=3,136; cls 64; 2*(12*64^2+13*64)=99,968;
        # norm 128. dec: 64*48+48=3,120; mask 48; 1*(12*48^2+13*48)=28,272;
        # norm 96; pred 48*48+48=2,352. Frozen tables 17*64+17*48=1,904.
        "params": 137_184,
        "source": "formula in this module's docstring (models_mae.py "
        "parameters with requires_grad)",
    },
    "paper": {
        "description": "mae_vit_base_patch16_dec512d8b: ViT-B/16 encoder, "
        "512-wide 8-block decoder, 75% masking, normalised-pixel targets "
        "(the paper's default setting, Table 1).",
        "config": dict(
            image_size=224, patch_size=16, num_channels=3, hidden_dim=768,
            num_layers=12, num_heads=12, decoder_hidden_dim=512,
            decoder_num_layers=8, decoder_num_heads=16, mask_ratio=0.75,
            norm_pix_loss=True,
        ),
        # enc: 16*16*3*768+768=590,592; cls 768; 12*7,087,872=85,054,464;
        # norm 1,536 -> 85,647,360. dec: 768*512+512=393,728; mask 512;
        # 8*3,152,384=25,219,072; norm 1,024; pred 512*768+768=393,984
        # -> 26,008,320. Total 111,655,680 trainable (+252,160 frozen
        # pos-embed values = 111,907,840 in the state dict).
        "params": 111_655_680,
        "source": "models_mae.mae_vit_base_patch16_dec512d8b, trainable "
        "nn.Parameters (formula in module docstring)",
    },
    "mae_vit_large_patch16": {
        "description": "mae_vit_large_patch16_dec512d8b (ViT-L/16 encoder).",
        "config": dict(
            image_size=224, patch_size=16, num_channels=3, hidden_dim=1024,
            num_layers=24, num_heads=16, decoder_hidden_dim=512,
            decoder_num_layers=8, decoder_num_heads=16, mask_ratio=0.75,
            norm_pix_loss=True,
        ),
        # enc 787,456 + 1,024 + 24*12,596,224 + 2,048 = 303,100,032;
        # dec 524,800 + 512 + 25,219,072 + 1,024 + 393,984 = 26,139,392.
        "params": 329_239_296,
        "source": "models_mae.mae_vit_large_patch16_dec512d8b (formula)",
    },
    "mae_vit_huge_patch14": {
        "description": "mae_vit_huge_patch14_dec512d8b (ViT-H/14 encoder).",
        "config": dict(
            image_size=224, patch_size=14, num_channels=3, hidden_dim=1280,
            num_layers=32, num_heads=16, decoder_hidden_dim=512,
            decoder_num_layers=8, decoder_num_heads=16, mask_ratio=0.75,
            norm_pix_loss=True,
        ),
        # enc 14*14*3*1280+1280=753,920 + 1,280 + 32*19,677,440 + 2,560
        # = 630,435,840; dec 655,872 + 512 + 25,219,072 + 1,024 + 301,644
        # = 26,178,124.
        "params": 656_613_964,
        "source": "models_mae.mae_vit_huge_patch14_dec512d8b (formula)",
    },
    "bench": {
        "description": "Bench configuration: 32x32x3 images, patch 4 "
        "(64 patches), encoder 192 wide x 12 layers x 3 heads, decoder "
        "128 wide x 4 layers x 4 heads, mask 0.75, batch 64. Reading of "
        "'width 192, 12 encoder + 4 decoder layers, 3/4 heads': 3 heads in "
        "the encoder (head dim 64), 4 in a 128-wide decoder (head dim 32, "
        "the paper decoder's head dim 512/16).",
        "config": dict(
            image_size=32, patch_size=4, num_channels=3, hidden_dim=192,
            num_layers=12, num_heads=3, decoder_hidden_dim=128,
            decoder_num_layers=4, decoder_num_heads=4, mask_ratio=0.75,
            norm_pix_loss=True,
        ),
        # enc 4*4*3*192+192=9,408 + 192 + 12*444,864 + 384 = 5,348,352;
        # dec 192*128+128=24,704 + 128 + 4*198,272 + 256 + 128*48+48=6,192
        # = 824,368.
        "params": 6_172_720,
        "source": "models_mae.MaskedAutoencoderViT with this config "
        "(formula in module docstring)",
        "batch_size": 64,
    },
}
mae_presets["mae_vit_base_patch16"] = {
    **mae_presets["paper"],
    "description": "Alias of 'paper' (upstream name).",
}

mae_classifier_presets = {
    "tiny": {
        "description": "Tiny MAE fine-tuning ViT for tests (encoder of the "
        "'tiny' mae preset, global pool, 10 classes).",
        "config": dict(
            image_size=16, patch_size=4, num_channels=3, hidden_dim=64,
            num_layers=2, num_heads=4, num_classes=10, global_pool=True,
            drop_path=0.1,
        ),
        # 3,136 + 64 + pos 17*64=1,088 + 99,968 + fc_norm 128 + 64*10+10=650
        "params": 105_034,
        "source": "models_vit.VisionTransformer formula (module docstring)",
    },
    "paper": {
        "description": "models_vit.vit_base_patch16 fine-tuning: ViT-B/16, "
        "global average pool + fc_norm, 1000 classes, drop_path 0.1, label "
        "smoothing 0.1 (main_finetune.py defaults).",
        "config": dict(
            image_size=224, patch_size=16, num_channels=3, hidden_dim=768,
            num_layers=12, num_heads=12, num_classes=1000, global_pool=True,
            drop_path=0.1, label_smoothing=0.1,
        ),
        # 590,592 + 768 + pos 197*768=151,296 + 85,054,464 + 1,536
        # + 768*1000+1000=769,000.
        "params": 86_567_656,
        "source": "models_vit.vit_base_patch16(num_classes=1000, "
        "global_pool=True) trainable nn.Parameters (formula)",
    },
    "vit_large_patch16": {
        "description": "models_vit.vit_large_patch16 fine-tuning (drop_path "
        "0.2 as in FINETUNE.md).",
        "config": dict(
            image_size=224, patch_size=16, num_channels=3, hidden_dim=1024,
            num_layers=24, num_heads=16, num_classes=1000, global_pool=True,
            drop_path=0.2, label_smoothing=0.1,
        ),
        "params": 304_326_632,
        "source": "models_vit.vit_large_patch16 (formula)",
    },
    "vit_huge_patch14": {
        "description": "models_vit.vit_huge_patch14 fine-tuning (drop_path "
        "0.3 as in FINETUNE.md).",
        "config": dict(
            image_size=224, patch_size=14, num_channels=3, hidden_dim=1280,
            num_layers=32, num_heads=16, num_classes=1000, global_pool=True,
            drop_path=0.3, label_smoothing=0.1,
        ),
        "params": 632_045_800,
        "source": "models_vit.vit_huge_patch14 (formula)",
    },
}
mae_classifier_presets["vit_base_patch16"] = {
    **mae_classifier_presets["paper"],
    "description": "Alias of 'paper' (upstream name).",
}
