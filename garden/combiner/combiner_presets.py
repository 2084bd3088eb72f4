"""Combiner presets as plain dicts: constructor kwargs plus the exact
trainable parameter count of the official implementation.

Official code: google-research/google-research `combiner/` (TF1 path
`combiner/tf/{models,attention,ops,approx_attention,configs}.py`; read at
the snapshot indexed for this project). The LM configs (`configs.py` class
`LM` and its subclasses) are the paper's Wiki-40B language models:
embed_size = model_size = D = 768, 12 heads, 12 layers, vocab_size 1024 (a
placeholder in the config; the tokenizer is not in the repository),
max_seq_len 2048, max_seg_len 128, dropout 0, `pos_sine_init=False`
(learned positions), `dense_use_bias=True`, `inner_prod=True` (tied
output embedding).

How `params` is derived: the `tf.get_variable` calls of one forward
(`models.transformer` + `models.lm_head`), all trainable:

    word_embeddings                       V x D
    pos_embeddings (learned)              Lmax x D
    per layer  attn/pre_norm (gamma, beta) 2D
               q, k, v (trail_dense to [H, D/H], bias [H, D/H]) 3(D^2 + D)
               output trail_dense (bias=True)                  D^2 + D
               ffn/pre_norm                                    2D
               ffn dense D -> 4D, 4D -> D (bias)                8D^2 + 5D
               = 12 D^2 + 13 D
    Combiner-Axial `row_summary='proj'` adds per layer
               (`rowmajor_param_post`) trail_dense [H, D/H] -> D + bias,
               pre_norm 2D, trail_dense D -> [H, D/H] + bias   2 D^2 + 4 D
    final_norm                            2D
    softmax_bias (embedding tied)         V

Combiner-Fixed (`sqrt_fixed_full`, 'identity-max' summary) and
Combiner-Mixture (`axial_mixture_unidir`) create no extra variables; the
official Combiner-Logsparse exists only in JAX (`_SelfAttLogn`, no extra
variables either), so its preset uses the same TF LM architecture.

The classifier (encoder) has no official configuration: the official TF
`transformer(..., causal=False)` stack (Fixed and Axial accept
`causal=False`, `axial_mixture_bidir` is the bidirectional Mixture), sized
like the Long Range Arena ListOps base config (google-research/
long-range-arena `lra_benchmarks/listops/configs/base_listops_config.py`:
emb 512, 8 heads, 6 layers, mlp 2048 = 4 x emb, max_length 2000), with a
garden head: mean pool over positions + Dense(num_classes) (D K + K).
`tests/garden/combiner/test_combiner_params.py` recomputes every count from
these formulas and checks the Keras models against them.
"""

PAPER = "https://arxiv.org/abs/2107.05768"
LICENSE = "Apache-2.0"  # official code; no weights are released
SOURCE = ("google-research/google-research combiner/combiner/tf: "
          "configs.py {cls}, models.transformer + lm_head variables "
          "(formula in combiner_presets.py)")

_WIKI40B = dict(vocab_size=1024, hidden_dim=768, num_layers=12, num_heads=12,
                max_seq_len=2048, segment_length=128, dropout=0.0)

combiner_lm_presets = {
    "tiny": {
        "description": "Tiny causal LM for tests: the official JAX toy "
        "(jax/main.py: vocab 10, width 16, 2 heads, 2 layers, max_len 12, "
        "max_seg_len 4) in the TF LM architecture, layer 0 Combiner-Axial, "
        "layer 1 Combiner-Mixture (the classifier's tiny preset has the "
        "other two kernels, so the sweep compiles and exports all four).",
        "config": dict(vocab_size=10, hidden_dim=16, num_layers=2,
                       num_heads=2, max_seq_len=12, segment_length=4,
                       variant=["axial", "mixture"]),
        # 160 + 192 + 2 x 3,280 + axial proj 576 + 32 + 10
        "params": 7_530,
        "source": "formula in combiner_presets.py (official TF LM "
        "architecture at the JAX toy sizes)",
    },
    "paper": {
        "description": "Combiner-Mixture LM on Wiki-40B (official TF "
        "`AxialMixtureLM`: D 768, 12 heads, 12 layers, L 2048, s 128).",
        "config": dict(**_WIKI40B, variant="mixture"),
        # 786,432 + 1,572,864 + 12 x 7,087,872 + 1,536 + 1,024
        "params": 87_416_320,
        "source": SOURCE.format(cls="AxialMixtureLM"),
    },
    "sqrt_fixed_full_lm": {
        "description": "Combiner-Fixed LM (official TF `SqrtFixedFullLM`, "
        "local_summary identity-max).",
        "config": dict(**_WIKI40B, variant="fixed"),
        "params": 87_416_320,
        "source": SOURCE.format(cls="SqrtFixedFullLM"),
    },
    "axial_rowmajor_lm": {
        "description": "Combiner-Axial LM (official TF `AxialRowMajorLM`, "
        "row_summary proj).",
        "config": dict(**_WIKI40B, variant="axial", row_summary="proj"),
        # 87,416,320 + 12 x (2 x 768^2 + 4 x 768)
        "params": 101_608_960,
        "source": SOURCE.format(cls="AxialRowMajorLM"),
    },
    "logsparse_lm": {
        "description": "Combiner-Logsparse in the TF LM architecture (the "
        "official Logsparse is JAX-only, `_SelfAttLogn`; no TF config).",
        "config": dict(**_WIKI40B, variant="logsparse"),
        "params": 87_416_320,
        "source": "official TF LM architecture (configs.LM) with the JAX "
        "_SelfAttLogn attention (no variables of its own); formula in "
        "combiner_presets.py",
    },
}
combiner_lm_presets["axial_mixture_lm"] = {
    **combiner_lm_presets["paper"],
    "description": "Alias of 'paper' (upstream config name).",
}

combiner_classifier_presets = {
    "tiny": {
        "description": "Tiny bidirectional classifier for tests: width 16, "
        "2 heads, 2 layers (Combiner-Fixed, Combiner-Logsparse), L 16, s 4, "
        "10 classes.",
        "config": dict(vocab_size=17, hidden_dim=16, num_layers=2,
                       num_heads=2, max_seq_len=16, segment_length=4,
                       num_classes=10, variant=["fixed", "logsparse"]),
        # 272 + 256 + 2 x 3,280 + 32 + 170
        "params": 7_290,
        "source": "formula in combiner_presets.py (TF transformer stack, "
        "garden head)",
    },
    "paper": {
        "description": "Bidirectional Combiner-Mixture encoder at the LRA "
        "ListOps base sizes (D 512, 8 heads, 6 layers, L 2000, s 50; the "
        "garden ListOps vocabulary of 17 tokens), 10 classes.",
        "config": dict(vocab_size=17, hidden_dim=512, num_layers=6,
                       num_heads=8, max_seq_len=2000, segment_length=50,
                       num_classes=10, variant="mixture"),
        # 8,704 + 1,024,000 + 6 x 3,152,384 + 1,024 + 5,130
        "params": 19_953_162,
        "source": "no official Combiner encoder config: TF "
        "models.transformer(causal=False) variables (formula in "
        "combiner_presets.py) at LRA base_listops_config sizes + garden "
        "head",
    },
}
