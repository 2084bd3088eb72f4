"""PyTorch side of `garden bench mae --compare-torch`, run as a script.

PyTorch and TensorFlow crash (segfault) when loaded in one process, so
`garden.bench` runs this file by path in a fresh interpreter: it imports
neither TensorFlow nor the garden package.

    python garden/bench_torch.py '{"image_size": 32, ...}' BATCH STEPS WARMUP
prints one JSON line: {"samples_per_s": ..., "params": ...}.

    python garden/bench_torch.py --serve '{"image_size": 32, ...}' BATCH WARMUP
is the same step as a persistent `official.paired_timing` worker (the paired
comparison `garden bench mae --compare-torch` runs).
"""

import json
import sys
import time


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


def vitmae_throughput(config, batch_size, steps, warmup, seed=0):
    """Samples/s of HF ViTMAEForPreTraining training steps (AdamW)."""
    step, info = vitmae_train_step(config, batch_size, seed)
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    return dict(info, samples_per_s=batch_size * steps / seconds)


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        # official/__init__ only sets an environment variable: no TensorFlow.
        from official import paired_timing

        cfg = json.loads(sys.argv[2])
        batch, n_warmup = int(sys.argv[3]), int(sys.argv[4])
        step, info = vitmae_train_step(cfg, batch)
        paired_timing.serve(step, warmup=n_warmup, info=info)
    else:
        cfg = json.loads(sys.argv[1])
        batch, n_steps, n_warmup = (int(a) for a in sys.argv[2:5])
        print(json.dumps(vitmae_throughput(cfg, batch, n_steps, n_warmup)))
