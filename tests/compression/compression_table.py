"""Writes the measured table of official/compression/README.md.

    .venv/bin/python tests/compression/compression_table.py \
        --out runs/compression_table.md

Classifier rows: the garden's `mae_classifier` (preset `tiny`: ViT on 16x16
images, patch 4, width 64, 2 blocks x 4 heads) on scikit-learn's digits
upsampled to 16x16x3 (`data_pipelines.digits`, stratified 80/20 split);
the student is the same model at width 32, 1 block x 2 heads. KV-cache rows:
the `lean_attention` decoder (preset `bench`: width 256, 4 blocks x 4
heads, random weights) decoding greedily with `official.compression`'s
float32 and int8 caches against recomputing the prefix.

Not a test (it takes minutes); `official.compression.bench` holds the
logic, this file only supplies garden models (official/ never imports
garden).
"""

import argparse
import os
import platform
import time

import keras
import tensorflow as tf

import data_pipelines
import garden
from garden.lean_attention.lean_attention_graph import compiled_forward
from garden.lean_attention.lean_attention_graph import \
    compiled_forward_with_cache
from official.compression import bench
from official.compression import kv_cache


def _compiled_int8_step(lm):
    """`kv_cache.int8_step` of the decoder as one graph for every cache
    length (as lean_attention_graph compiles the float step)."""
    heads, dim = lm.num_heads, lm.head_dim
    layer = (tf.TensorSpec((None, None, heads, dim), tf.int8),
             tf.TensorSpec((None, None, heads, 1), tf.float32),
             tf.TensorSpec((None, None, heads, dim), tf.int8),
             tf.TensorSpec((None, None, heads, 1), tf.float32))
    return tf.function(kv_cache.int8_step(lm.forward_with_cache),
                       input_signature=[tf.TensorSpec((None, None), tf.int32),
                                        [layer] * lm.num_layers],
                       autograph=False)


def _classifier(**overrides):
    def build():
        model = garden.build("mae_classifier", preset="tiny", **overrides)
        model(garden.example_inputs("mae_classifier", batch_size=1))
        return model
    return build


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/compression_table.md")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--contexts", type=int, nargs="*",
                        default=[128, 512, 2048])
    parser.add_argument("--skip-kv", action="store_true")
    args = parser.parse_args()
    start = time.time()
    data = []
    for split in ("train", "test"):
        data += list(data_pipelines.digits.load(split, seed=0, image_size=16,
                                                channels=3))
    rows, extra = bench.classifier_table(
        _classifier(), _classifier(hidden_dim=32, num_layers=1, num_heads=2),
        data, epochs=args.epochs, finetune_epochs=args.finetune_epochs)
    text = [f"# Compression table ({platform.processor() or 'cpu'}, "
            f"{os.cpu_count()} cores, keras {keras.__version__})", "",
            bench.markdown(rows, extra["latency_batch"]), "",
            f"teacher training: {extra['teacher_train_s']:.0f} s", "",
            "## int8 report (Keras dynamic)", "", extra["ptq_report"], ""]
    if not args.skip_kv:
        keras.utils.set_random_seed(0)
        lm = garden.build("lean_attention", preset="bench")
        lm(garden.example_inputs("lean_attention", preset="bench",
                                 batch_size=1))
        kv = bench.kv_cache_rows(compiled_forward_with_cache(lm),
                                 compiled_forward(lm), lm.empty_cache,
                                 lm.vocab_size, args.contexts,
                                 int8_step_fn=_compiled_int8_step(lm))
        text += ["## KV cache (lean_attention, preset bench)", "",
                 bench.kv_markdown(kv), ""]
    text.append(f"total {time.time() - start:.0f} s")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
