"""The offline SLAB proxy: a tiny SLAB-DeiT on scikit-learn's 8x8 digits.

Spec (`slab.md` 7.1 "Tiny CPU config", 7.4 "Offline proxy"): 8x8 images,
patch 2 (a 4x4 token grid), width 32, 2 heads, 2 blocks, DWC kernel 3,
PRepBN over 200 optimizer steps after a 20-step LN warm-up. The same
training recipe runs (a) the paper's model (PRepBN + SLA) and (b) a
LayerNorm + softmax baseline; (a) is then folded (`fold_batchnorm`) and must
give the same predictions.

    python -m garden.slab.slab_train            # prints the README numbers
"""

import numpy as np

PROXY_CONFIG = dict(
    image_size=8, patch_size=2, num_channels=1, num_classes=10,
    hidden_dim=32, num_layers=2, num_heads=2, mlp_ratio=4.0,
    dwc_kernel_size=3, total_steps=200, warm_steps=20, r0=1.0,
)


def load_digits_split(seed=0, test_fraction=0.25):
    """(x_train, y_train, x_test, y_test): (N, 8, 8, 1) in [0, 1], int32."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def train_digits(norm_type="prepbn", attention_kernel="linear_relu",
                 steps=300, batch_size=64, learning_rate=3e-3, seed=0,
                 data=None):
    """Trains one proxy model; returns (model, history dict).

    history: `loss` per epoch, `test_accuracy` (inference mode), `ln_weight`
    (PRepBN gamma at the end, or None).
    """
    import keras

    from garden.slab.slab_deit import SLABDeiT
    from garden.slab.slab_norms import prepbn_layers

    keras.utils.set_random_seed(seed)
    x_tr, y_tr, x_te, y_te = data or load_digits_split(seed)
    model = SLABDeiT(norm_type=norm_type, attention_kernel=attention_kernel,
                     **PROXY_CONFIG)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate,
                                         weight_decay=0.05),
        jit_compile=True)
    steps_per_epoch = len(x_tr) // batch_size
    # Whole batches only: one XLA program, and the PRepBN step = fit step.
    x_tr = x_tr[:steps_per_epoch * batch_size]
    y_tr = y_tr[:steps_per_epoch * batch_size]
    epochs = max(1, int(np.ceil(steps / steps_per_epoch)))
    hist = model.fit(x_tr, y_tr, batch_size=batch_size, epochs=epochs,
                     shuffle=True, verbose=0)
    logits = model.predict(x_te, batch_size=256, verbose=0)
    norms = prepbn_layers(model)
    return model, {
        "loss": [float(v) for v in hist.history["loss"]],
        "steps": epochs * steps_per_epoch,
        "test_accuracy": float(np.mean(np.argmax(logits, -1) == y_te)),
        "logits": logits,
        "ln_weight": float(norms[0].ln_weight()) if norms else None,
    }


def main():
    from garden.slab.slab_fold import fold_batchnorm

    data = load_digits_split(0)
    for seed in (0, 1, 2):
        model, slab = train_digits(seed=seed, data=data)
        folded = fold_batchnorm(model)
        logits = folded.predict(data[2], batch_size=256, verbose=0)
        _, base = train_digits("layernorm", "dense", seed=seed, data=data)
        same = np.mean(np.argmax(logits, -1) == np.argmax(slab["logits"], -1))
        print(f"seed {seed}: SLAB (PRepBN+SLA) {slab['test_accuracy']:.4f} "
              f"(final loss {slab['loss'][-1]:.3f}, gamma "
              f"{slab['ln_weight']}), folded agreement {same:.4f}, max "
              f"|logit diff| {np.max(np.abs(logits - slab['logits'])):.2e}; "
              f"LN+softmax {base['test_accuracy']:.4f}; steps "
              f"{slab['steps']}")


if __name__ == "__main__":
    main()
