"""`garden bench NAME`: training throughput of a registered model.

Measures samples/s of full training steps (forward, loss, backward, AdamW
update) on a fixed synthetic batch, eagerly (`tf.function` graph, Keras'
default on CPU) and with XLA (`jit_compile=True`), after warm-up steps that
absorb tracing and compilation. For `mae` it can also time the PyTorch
Hugging Face `ViTMAEForPreTraining` of the same configuration on the same CPU
(`--compare-torch`; PyTorch and transformers are bench-only extras) and print
our samples/s divided by its samples/s: the ratio, measured in one run, is the
number to compare, never absolute times on a shared machine.
"""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np

from official import registry


def _time_steps(step, steps, warmup):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def keras_train_throughput(name, preset, batch_size, steps, warmup,
                           jit_compile, seed=0):
    keras.utils.set_random_seed(seed)
    model = registry.build(name, preset=preset)
    x = registry.example_inputs(name, preset=preset, batch_size=batch_size,
                                seed=seed)
    y = registry.example_labels(name, preset=preset, batch_size=batch_size,
                                seed=seed)
    if isinstance(x, dict) and "mask_noise" in x:
        # Training draws its own masks; the fixed noise is for inference.
        x = {k: v for k, v in x.items() if k != "mask_noise"}
    model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                  jit_compile=jit_compile)

    def step():
        model.train_on_batch(x, y)

    seconds = _time_steps(step, steps, warmup)
    return batch_size * steps / seconds


def torch_vitmae_throughput(config, batch_size, steps, warmup):
    """Samples/s of HF ViTMAEForPreTraining, in a fresh TF-free process."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "bench_torch.py")
    proc = subprocess.run(
        [sys.executable, script, json.dumps(config), str(batch_size),
         str(steps), str(warmup)], capture_output=True, text=True)
    if proc.returncode != 0:
        if "No module named" in proc.stderr:
            raise RuntimeError(
                "The PyTorch comparison needs the bench extra: "
                "pip install -e '.[bench]'")
        raise RuntimeError(f"PyTorch bench failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["samples_per_s"], result["params"]


def run(name, preset="bench", batch_size=64, steps=10, warmup=3,
        compare_torch=False, modes=("graph", "xla")):
    """Returns a list of result rows and prints a table."""
    rows = []
    for mode in modes:
        sps = keras_train_throughput(name, preset, batch_size, steps, warmup,
                                     jit_compile=(mode == "xla"))
        rows.append({"impl": f"garden ({mode})", "samples_per_s": sps})
    if compare_torch:
        if name != "mae":
            raise ValueError("--compare-torch is only defined for 'mae'.")
        config = registry.preset_config(name, preset)
        sps, params = torch_vitmae_throughput(config, batch_size, steps,
                                              warmup)
        rows.append({"impl": f"pytorch HF ViTMAE ({params} params)",
                     "samples_per_s": sps})
        for row in rows[:-1]:
            row["ratio_vs_torch"] = row["samples_per_s"] / sps
    print(f"bench {name} preset={preset} batch={batch_size} steps={steps}",
          flush=True)
    print(f"{'implementation':40s} {'samples/s':>10s} {'vs torch':>9s}")
    for row in rows:
        ratio = row.get("ratio_vs_torch")
        shown = f"{ratio:8.2f}x" if ratio is not None else ""
        print(f"{row['impl']:40s} {row['samples_per_s']:10.1f} {shown:>9s}",
              flush=True)
    return rows


def parameter_count(name, preset):
    model = registry.build(name, preset=preset)
    x = registry.example_inputs(name, preset=preset, batch_size=1)
    model(x, training=False)
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))
