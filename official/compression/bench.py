"""The measured size / speed / accuracy table of the compression tools.

`classifier_table` applies every tool to one image classifier (any Keras
model taking an image batch and returning logits; the runner
`tests/compression/compression_table.py` uses the garden's
`mae_classifier`) and returns one row per variant:

  fp32 | int8 Keras (dynamic) | int8 Keras (static calibration) |
  LiteRT fp32 | LiteRT full int8 | 50% magnitude pruning (+ fine-tune) |
  50% heads pruned (+ fine-tune) | 50% FFN units pruned (+ fine-tune) |
  small student (hard labels) | small student (distilled)

Size: exact bytes of the model's variables (`measure.weight_bytes`) or of
the `.tflite` file, and the zlib size of the variables (what unstructured
sparsity buys on disk). Latency: best-of-`rounds` ms of one forward pass
at batch 1 and at batch `latency_batch`, Keras through `predict_on_batch`
(every model recompiled alike: a traced graph without XLA, then again with
`jit_compile=True`) and LiteRT through `ai_edge_litert`'s interpreter, all
timed interleaved in one loop so that the load of a shared CPU hits every
row alike; compare ratios within one run only.

`kv_cache_rows` times greedy decoding of a causal LM with a float32 KV cache,
an int8 KV cache and without a cache (recomputing the prefix) and reports
the cache bytes and the logit error of the int8 cache.
"""

import os
import tempfile
import time

import keras
import numpy as np
from keras import ops

from official import export
from official.compression import calibration
from official.compression import distillation
from official.compression import ffn_pruning
from official.compression import head_pruning
from official.compression import kv_cache
from official.compression import magnitude_pruning
from official.compression import ptq
from official.compression.measure import compressed_bytes
from official.compression.measure import weight_bytes


def _compile(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True)


def _accuracy(model, x, y, batch=256):
    logits = np.concatenate([ops.convert_to_numpy(model(x[i:i + batch]))
                             for i in range(0, len(x), batch)])
    return float(np.mean(np.argmax(logits, -1) == y))


def _copy(build, weights):
    model = build()
    model.set_weights(weights)
    return model


class _LiteRT:
    """A persistent interpreter for a dynamic-batch `.tflite` file."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = None

    def __call__(self, x):
        x = np.asarray(x, np.float32)
        if x.shape[0] != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"],
                                                 x.shape)
            self.interpreter.allocate_tensors()
            self.batch = x.shape[0]
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])


def _interleaved_ms(fns, inputs, rounds, warmup=3):
    """{name: best (minimum) ms of fn(inputs) over `rounds`}, the variants
    timed in turn. The minimum: on a shared CPU the other processes only
    ever add time, and the median of identical models differed by 3x in a
    loaded run."""
    for fn in fns.values():
        for _ in range(warmup):
            fn(inputs)
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(inputs)
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.min(t)) for name, t in times.items()}


def classifier_table(build_teacher, build_student, data, epochs=30,
                     student_epochs=None, finetune_epochs=5, batch_size=64,
                     learning_rate=3e-3, latency_batch=64, rounds=50,
                     representative=200, workdir=None, seed=0, log=print):
    """Trains the classifier and every compressed variant; returns rows.

    Args:
        build_teacher, build_student: callables returning a new built
            classifier (logits); the student is smaller.
        data: (x_train, y_train, x_test, y_test) NumPy arrays.
        epochs: training epochs of the teacher and the students.
        finetune_epochs: after pruning.
        representative: LiteRT calibration samples (training images).

    Returns:
        list of dict rows with keys variant, bytes, zlib_bytes, params,
        ms_b1, ms_bN, accuracy, note; and a dict of extra figures.
    """
    xtr, ytr, xte, yte = data
    student_epochs = student_epochs or epochs
    workdir = workdir or tempfile.mkdtemp(prefix="compression_table_")
    keras.utils.set_random_seed(seed)
    extra = {}
    models, rows = {}, []

    def add(name, model, note="", size=None, zlib=None, params=None):
        models[name] = model
        rows.append({
            "variant": name,
            "bytes": weight_bytes(model) if size is None else size,
            "zlib_bytes": compressed_bytes(model) if zlib is None else zlib,
            "params": model.count_params() if params is None else params,
            "accuracy": (_accuracy(model, xte, yte) if hasattr(model, "layers")
                         else _tflite_accuracy(model, xte, yte)),
            "note": note})
        log(f"{name}: {rows[-1]}")

    # fp32 teacher.
    start = time.time()
    teacher = build_teacher()
    _compile(teacher, learning_rate)
    teacher.fit(xtr, ytr, batch_size=batch_size, epochs=epochs, verbose=0)
    extra["teacher_train_s"] = time.time() - start
    weights = teacher.get_weights()
    add("fp32", teacher, f"trained {epochs} epochs")

    # int8 Keras, dynamic activations.
    model = _copy(build_teacher, weights)
    report = ptq.quantize_model(model, "int8")
    before, after = report.quantized_bytes()
    add("int8 Keras (dynamic act.)", model,
        f"{len(report.quantized)} layers int8, {len(report.skipped)} "
        f"skipped; quantized layers {after / before:.3f}x bytes")
    extra["ptq_report"] = report.to_markdown()

    # int8 Keras, static calibration.
    model = _copy(build_teacher, weights)
    cal = [xtr[i:i + batch_size] for i in range(0, 10 * batch_size,
                                                  batch_size)]
    calibration.quantize_int8_static(model, cal, method="percentile")
    add("int8 Keras (static, 99.99th pct)", model,
        "activation ranges from 10 training batches")

    # LiteRT fp32 and full int8 through official.export.
    float_path = os.path.join(workdir, "fp32.tflite")
    int8_path = os.path.join(workdir, "int8.tflite")
    example = xte[:1]
    export.export_model(teacher, float_path, example, format="tflite",
                        dynamic_batch=True)
    rep = [xtr[i:i + 1] for i in range(representative)]
    export.export_model(teacher, int8_path, example, format="tflite",
                        quantize="int8", representative_data=rep,
                        dynamic_batch=True)
    for name, path, note in (
            ("LiteRT fp32", float_path, "official.export"),
            ("LiteRT full int8", int8_path,
             f"official.export, {representative} representative images")):
        add(name, _LiteRT(path), note, size=os.path.getsize(path),
            zlib=_zlib_file(path), params=teacher.count_params())

    # 50% magnitude pruning with the polynomial schedule, then fine-tuning.
    model = _copy(build_teacher, weights)
    steps = finetune_epochs * (len(xtr) // batch_size)
    pruner = magnitude_pruning.MagnitudePruner(model)
    schedule = magnitude_pruning.PolynomialSparsity(
        0.0, 0.5, begin_step=0, end_step=steps // 2, frequency=max(
            1, steps // 20))
    _compile(model, learning_rate / 3)
    model.fit(xtr, ytr, batch_size=batch_size, epochs=finetune_epochs,
              verbose=0, callbacks=[magnitude_pruning.PruningCallback(
                  pruner, schedule)])
    add("50% magnitude pruning", model,
        f"sparsity {pruner.sparsity():.3f} of {len(pruner.kernels)} kernels, "
        f"{finetune_epochs} fine-tune epochs; dense storage")

    # 50% of the heads of every layer, then fine-tuning.
    model = _copy(build_teacher, weights)
    batches = [(xtr[i:i + batch_size], ytr[i:i + batch_size])
               for i in range(0, 8 * batch_size, batch_size)]
    keep = head_pruning.select_heads(
        model, head_pruning.head_importance(model, batches), 0.5)
    head_pruning.prune_heads(model, keep)
    acc0 = _accuracy(model, xte, yte)
    _compile(model, learning_rate / 3)
    model.fit(xtr, ytr, batch_size=batch_size, epochs=finetune_epochs,
              verbose=0)
    add("50% heads pruned", model,
        f"{acc0:.3f} before {finetune_epochs} fine-tune epochs")

    # 50% of the FFN units, then fine-tuning.
    model = _copy(build_teacher, weights)
    ffn_pruning.prune_neurons(model, ffn_pruning.select_neurons(model, 0.5))
    acc0 = _accuracy(model, xte, yte)
    _compile(model, learning_rate / 3)
    model.fit(xtr, ytr, batch_size=batch_size, epochs=finetune_epochs,
              verbose=0)
    add("50% FFN units pruned", model,
        f"{acc0:.3f} before {finetune_epochs} fine-tune epochs")

    # Student: hard labels vs distilled from the fp32 teacher.
    keras.utils.set_random_seed(seed + 1)
    plain = build_student()
    student_weights = plain.get_weights()
    _compile(plain, learning_rate)
    plain.fit(xtr, ytr, batch_size=batch_size, epochs=student_epochs,
              verbose=0)
    add("student, hard labels", plain, f"{student_epochs} epochs")
    student = _copy(build_student, student_weights)
    distiller = distillation.Distiller(student, teacher, temperature=4.0,
                                       alpha=0.1)
    distiller.compile(optimizer=keras.optimizers.AdamW(
        learning_rate, weight_decay=0.05), jit_compile=True)
    distiller.fit(xtr, ytr, batch_size=batch_size, epochs=student_epochs,
                  verbose=0)
    add("student, distilled (T=4, alpha=0.1)", student,
        "same init and epochs as the hard-label student")

    # Latency, all variants interleaved. Every Keras model is recompiled
    # the same way (training left some with XLA predict functions).
    keras_models = {n: m for n, m in models.items() if hasattr(m, "layers")}
    for m in keras_models.values():
        m.compile(jit_compile=False)
    fns = {name: (m.predict_on_batch if hasattr(m, "layers") else m)
           for name, m in models.items()}
    ms1 = _interleaved_ms(fns, xte[:1], rounds)
    msn = _interleaved_ms(fns, xte[:latency_batch], rounds)
    for m in keras_models.values():
        m.compile(jit_compile=True)
    xla = _interleaved_ms({n: m.predict_on_batch
                           for n, m in keras_models.items()},
                          xte[:latency_batch], rounds)
    for row in rows:
        row["ms_b1"] = ms1[row["variant"]]
        row["ms_bN"] = msn[row["variant"]]
        row["ms_bN_xla"] = xla.get(row["variant"])
    extra["latency_batch"] = latency_batch
    return rows, extra


def _tflite_accuracy(runner, x, y, batch=64):
    logits = np.concatenate([runner(x[i:i + batch])
                             for i in range(0, len(x), batch)])
    return float(np.mean(np.argmax(logits, -1) == y))


def _zlib_file(path):
    import zlib

    with open(path, "rb") as f:
        return len(zlib.compress(f.read(), 6))


def markdown(rows, latency_batch):
    """The table as Markdown, latency also relative to the first row."""
    base = rows[0]

    def ms(r, key):
        if r.get(key) is None:
            return "n/a"
        return f"{r[key]:.2f} ({r[key] / base[key]:.2f}x)"

    lines = [
        f"| variant | params | bytes | zlib bytes | ms, batch 1 | ms, batch "
        f"{latency_batch} | ms, batch {latency_batch}, XLA | test accuracy "
        "| notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['params']:,} | {r['bytes']:,} | "
            f"{r['zlib_bytes']:,} | {ms(r, 'ms_b1')} | {ms(r, 'ms_bN')} | "
            f"{ms(r, 'ms_bN_xla')} | {r['accuracy']:.3f} | {r['note']} |")
    return "\n".join(lines)


def kv_cache_rows(step_fn, full_fn, empty_cache, vocab_size, contexts,
                  new_tokens=24, int8_step_fn=None, seed=0, log=print):
    """Greedy decoding at several context lengths (batch 1).

    Args:
        step_fn: `step(token_ids, cache) -> (logits, cache)` (MHA cache
            convention), e.g. a compiled `forward_with_cache`.
        full_fn: `full(token_ids) -> logits`, the uncached forward.
        empty_cache: callable batch -> empty cache.
        contexts: prompt lengths.
        int8_step_fn: optional compiled `kv_cache.int8_step(step_fn)`.

    Returns:
        list of dict rows: context, best ms per generated token with the
        float32 cache, the int8 cache (prefill excluded) and recomputing
        the prefix, cache bytes (float32, int8 payload, int8 scales) after
        `new_tokens` steps, max |logit diff| int8 vs float32 and the
        fraction of steps choosing the same token (each path feeds back its
        own choices).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n in contexts:
        prompt = rng.integers(0, vocab_size, size=(1, n)).astype("int32")
        out = {}
        for name in ("float32", "int8"):
            # Warm-up (traces), then prefill, then timed single-token steps.
            kv_cache.decode_greedy(step_fn, prompt[:, :8], 2, empty_cache(1),
                                   kv_dtype=name, int8_step_fn=int8_step_fn)
            cache, step = kv_cache.make_cache(empty_cache(1), name, step_fn,
                                              int8_step_fn)
            logits = cache.advance(step, prompt)
            chosen, times = [], []
            for _ in range(new_tokens):
                last = ops.convert_to_numpy(logits[:, -1])
                chosen.append((last, np.argmax(last, -1)))
                start = time.perf_counter()
                logits = cache.advance(step, chosen[-1][1][:, None].astype(
                    "int32"))
                ops.convert_to_numpy(logits)
                times.append(time.perf_counter() - start)
            out[name] = (cache, chosen, times)
        ids = prompt
        full_fn(ids)
        times = []
        for _ in range(new_tokens):
            start = time.perf_counter()
            logits = ops.convert_to_numpy(full_fn(ids))[:, -1]
            times.append(time.perf_counter() - start)
            ids = np.concatenate([ids, np.argmax(logits, -1)[:, None]
                                  .astype("int32")], axis=1)
        f32, i8 = out["float32"], out["int8"]
        payload, scales = i8[0].nbytes()
        rows.append({
            "context": n,
            "ms_float_cache": 1e3 * float(np.min(f32[2])),
            "ms_int8_cache": 1e3 * float(np.min(i8[2])),
            "ms_recompute": 1e3 * float(np.min(times)),
            "bytes_float": kv_cache.kv_bytes(f32[0].as_float()),
            "bytes_int8": payload, "bytes_scales": scales,
            "max_logit_diff": float(max(np.max(np.abs(a[0] - b[0]))
                                        for a, b in zip(i8[1], f32[1]))),
            "top1_agreement": float(np.mean([np.all(a[1] == b[1])
                                             for a, b in zip(i8[1],
                                                             f32[1])])),
        })
        log(rows[-1])
    return rows


def kv_markdown(rows):
    lines = [
        "| context | ms/token, fp32 cache | ms/token, int8 cache | ms/token, "
        "no cache | KV bytes fp32 | KV bytes int8 (+ scales) | max logit "
        "diff int8 | token agreement |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['context']} | {r['ms_float_cache']:.1f} | "
            f"{r['ms_int8_cache']:.1f} | {r['ms_recompute']:.1f} | "
            f"{r['bytes_float']:,} | {r['bytes_int8']:,} "
            f"(+{r['bytes_scales']:,}) | {r['max_logit_diff']:.1e} | "
            f"{r['top1_agreement']:.3f} |")
    return "\n".join(lines)
