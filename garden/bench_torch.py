"""PyTorch side of `garden bench mae --compare-torch`, run as a script.

PyTorch and TensorFlow crash (segfault) when loaded in one process, so
`garden.bench` runs this file by path in a fresh interpreter: it imports
neither TensorFlow nor the garden package.

    python garden/bench_torch.py '{"image_size": 32, ...}' BATCH WARMUP
builds HF ViTMAEForPreTraining from the bench preset's config and serves its
training step as a persistent `official.paired_timing` worker (the ready
message carries the parameter count, torch version and thread count).
"""

import json
import sys


def vitmae_train_step(config, batch_size, seed=0):
    """One HF ViTMAEForPreTraining training step (AdamW) as a closure.

    Returns (step, info): info holds the trainable parameter count, the
    torch version and its thread count."""
    import torch
    from transformers import ViTMAEConfig
    from transformers import ViTMAEForPreTraining

    torch.manual_seed(seed)
    mlp_ratio = config.get("mlp_ratio", 4.0)
    hf_config = ViTMAEConfig(
        image_size=config["image_size"],
        patch_size=config["patch_size"],
        num_channels=config["num_channels"],
        hidden_size=config["hidden_dim"],
        num_hidden_layers=config["num_layers"],
        num_attention_heads=config["num_heads"],
        intermediate_size=int(config["hidden_dim"] * mlp_ratio),
        decoder_hidden_size=config["decoder_hidden_dim"],
        decoder_num_hidden_layers=config["decoder_num_layers"],
        decoder_num_attention_heads=config["decoder_num_heads"],
        decoder_intermediate_size=int(config["decoder_hidden_dim"]
                                      * mlp_ratio),
        mask_ratio=config["mask_ratio"],
        norm_pix_loss=config["norm_pix_loss"],
        qkv_bias=True,
        layer_norm_eps=1e-6,
    )
    model = ViTMAEForPreTraining(hf_config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pixels = torch.rand(batch_size, config["num_channels"],
                        config["image_size"], config["image_size"])

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(pixel_values=pixels).loss
        loss.backward()
        optimizer.step()

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return step, {"params": params, "torch": torch.__version__,
                  "threads": torch.get_num_threads()}


if __name__ == "__main__":
    # official/__init__ only sets an environment variable: no TensorFlow.
    from official import paired_timing

    cfg = json.loads(sys.argv[1])
    batch, n_warmup = int(sys.argv[2]), int(sys.argv[3])
    step, info = vitmae_train_step(cfg, batch)
    paired_timing.serve(step, warmup=n_warmup, info=info)
