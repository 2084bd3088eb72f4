"""`garden bench NAME`: training throughput of a registered model.

Measures samples/s of full training steps (forward, loss, backward, AdamW
update) on a fixed synthetic batch, eagerly (`tf.function` graph, Keras'
default on CPU) and with XLA (`jit_compile=True`), after warm-up steps that
absorb tracing and compilation. For `mae` it can also time the PyTorch
Hugging Face `ViTMAEForPreTraining` of the same configuration on the same CPU
(`--compare-torch`; PyTorch and transformers are bench-only extras) and print
our samples/s divided by its samples/s: the ratio, measured in one run, is the
number to compare, never absolute times on a shared machine.

With `--compare-torch` every implementation runs in its own persistent worker
process and their timed rounds alternate (`official.paired_timing`): each
round's ratio is measured within seconds, under the same machine conditions,
and the median over `--rounds` rounds is reported with its range. (Timing the
implementations one after the other let the machine's drift into the ratio:
1.01x and 1.28x in two runs of the same code.)
"""

import json
import os
import statistics
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


def keras_train_step(name, preset, batch_size, jit_compile, seed=0):
    """One `train_on_batch` step on a fixed synthetic batch, as a closure."""
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

    return step


def keras_train_throughput(name, preset, batch_size, steps, warmup,
                           jit_compile, seed=0):
    step = keras_train_step(name, preset, batch_size, jit_compile, seed)
    seconds = _time_steps(step, steps, warmup)
    return batch_size * steps / seconds


_TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "bench_torch.py")


def torch_vitmae_worker(config, batch_size, warmup):
    """HF ViTMAEForPreTraining's training step as a paired-timing worker in
    a fresh TF-free process, started but not waited for (see `ready`)."""
    from official import paired_timing

    return paired_timing.Worker(
        "pytorch",
        [sys.executable, _TORCH_SCRIPT, json.dumps(config), str(batch_size),
         str(warmup)],
        wait=False)


def ready(worker):
    """`worker.wait_ready()`, saying how to install PyTorch if it is the
    bench extra that is missing."""
    try:
        return worker.wait_ready()
    except RuntimeError as err:
        if worker.name == "pytorch" and "No module named" in str(err):
            raise RuntimeError(
                "The PyTorch comparison needs the bench extra: "
                "pip install -e '.[bench]'") from err
        raise


def torch_vitmae_params(config):
    """Trainable parameter count of the HF ViTMAE built from `config`."""
    worker = torch_vitmae_worker(config, batch_size=2, warmup=1)
    try:
        return ready(worker)["params"]
    finally:
        worker.close()


def _serve_keras(spec):
    """Worker side of the paired comparison: one mode of our train step."""
    from official import paired_timing

    step = keras_train_step(spec["name"], spec["preset"], spec["batch_size"],
                            jit_compile=(spec["mode"] == "xla"))
    paired_timing.serve(step, warmup=spec["warmup"])


def paired_torch_comparison(name, preset, batch_size, warmup, rounds,
                            round_s, modes):
    """Our modes and HF ViTMAE in alternating rounds (one process each).

    Returns rows with median samples/s over rounds and, for our modes, the
    per-round ratio to PyTorch (median, min, max)."""
    from official import paired_timing

    config = registry.preset_config(name, preset)
    workers = []
    try:
        for mode in modes:
            spec = dict(name=name, preset=preset, batch_size=batch_size,
                        mode=mode, warmup=warmup)
            workers.append(paired_timing.Worker(
                f"garden ({mode})",
                paired_timing.python_argv("garden.bench", "--serve",
                                          json.dumps(spec)),
                env=paired_timing.quiet_env(), wait=False))
        torch_worker = torch_vitmae_worker(config, batch_size, warmup)
        workers.append(torch_worker)
        for w in workers:  # started together, warmed up concurrently
            ready(w)
        seconds = paired_timing.alternate(workers, rounds, round_s)
    finally:
        for w in workers:
            w.close()
    params = torch_worker.info["params"]
    torch_s = seconds["pytorch"]
    rows = []
    for w in workers[:-1]:
        ratio = paired_timing.ratio_summary(torch_s, seconds[w.name])
        rows.append({"impl": w.name,
                     "samples_per_s": batch_size / statistics.median(
                         seconds[w.name]),
                     "ratio_vs_torch": ratio["median"],
                     "ratio_range": (ratio["min"], ratio["max"]),
                     "ratio_rounds": ratio["rounds"]})
    rows.append({"impl": f"pytorch HF ViTMAE ({params} params)",
                 "samples_per_s": batch_size / statistics.median(torch_s)})
    return rows


def run(name, preset="bench", batch_size=64, steps=10, warmup=3,
        compare_torch=False, modes=("graph", "xla"), rounds=8,
        round_s=4.0):
    """Returns a list of result rows and prints a table.

    Without `compare_torch` each mode is timed in this process over `steps`
    steps; with it, all implementations alternate over `rounds` paired
    rounds of about `round_s` seconds each (see the module docstring)."""
    if compare_torch:
        if name != "mae":
            raise ValueError("--compare-torch is only defined for 'mae'.")
        rows = paired_torch_comparison(name, preset, batch_size, warmup,
                                       rounds, round_s, modes)
        how = f"{rounds} alternating rounds of ~{round_s:g} s"
    else:
        rows = []
        for mode in modes:
            sps = keras_train_throughput(name, preset, batch_size, steps,
                                         warmup, jit_compile=(mode == "xla"))
            rows.append({"impl": f"garden ({mode})", "samples_per_s": sps})
        how = f"steps={steps}"
    print(f"bench {name} preset={preset} batch={batch_size} {how}",
          flush=True)
    print(f"{'implementation':40s} {'samples/s':>10s} {'vs torch':>9s} "
          f"{'range over rounds':>18s}")
    for row in rows:
        ratio = row.get("ratio_vs_torch")
        shown = f"{ratio:8.2f}x" if ratio is not None else ""
        spread = (f"{row['ratio_range'][0]:.2f}-{row['ratio_range'][1]:.2f}x"
                  if "ratio_range" in row else "")
        print(f"{row['impl']:40s} {row['samples_per_s']:10.1f} {shown:>9s} "
              f"{spread:>18s}", flush=True)
    return rows


def parameter_count(name, preset):
    model = registry.build(name, preset=preset)
    x = registry.example_inputs(name, preset=preset, batch_size=1)
    model(x, training=False)
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        import garden  # noqa: F401  (registers the models)

        _serve_keras(json.loads(sys.argv[2]))
    else:
        sys.exit("usage: python -m garden.bench --serve SPEC_JSON "
                 "(a paired-timing worker; use `garden bench` instead)")
