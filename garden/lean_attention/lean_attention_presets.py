"""Lean Attention presets: constructor kwargs plus trainable parameter counts.

Lean Attention (arXiv 2405.10480) is an attention *kernel* for the decode
phase; the paper has no model and no standalone official repository (its
CUDA implementation lives in ONNX Runtime, PR #22352, as an attention
operator). Its experiments time attention alone on A100s with head sizes 64
and 128 at contexts up to 512k (spec `lean_attention.md` Sec. 4.1; the exact
grid of heads/batch sizes is unverified). So there is no official model
whose parameters we could count. The `paper` preset is the garden's choice
of host model for the kernel: GPT-2 small (head size 64, one of the paper's
two head sizes), whose trainable parameter count is public and checkable
(Hugging Face `GPT2LMHeadModel.from_pretrained("gpt2")`: 124,439,808, tied
`lm_head`). Counted per parameter (V vocab, P positions, D width, n layers):

    wte   V*D          (tied with the output projection: counted once)
    wpe   P*D
    block 12*D^2 + 13*D   = ln_1 2D | c_attn 3D^2+3D | c_proj D^2+D |
                             ln_2 2D | c_fc 4D^2+4D | c_proj 4D^2+D
    ln_f  2D

Ours: `ReversibleEmbedding(V, D, tie_weights=True)` (V*D), position
`Embedding(P, D)`, n `CachedDecoderBlock`s (= `official.layers.
TransformerBlock`: norm1, q/k/v/o `EinsumDense` with biases, norm2, MLP),
`final_norm`; the same formula, so the same count.
"""

PAPER = "https://arxiv.org/abs/2405.10480"


def decoder_params(vocab_size, max_length, hidden_dim, num_layers,
                   mlp_ratio=4):
    """Trainable parameters of the decoder (formula in module docstring)."""
    d, h = hidden_dim, int(hidden_dim * mlp_ratio)
    block = 4 * d * d + 4 * d + 2 * d * h + h + d + 4 * d
    return vocab_size * d + max_length * d + num_layers * block + 2 * d


lean_attention_presets = {
    "tiny": {
        "description": "Tiny decoder for tests: vocab 64, 64 positions, "
        "width 32, 2 layers x 4 heads (head size 8), split_k with 4 pieces.",
        "config": dict(
            vocab_size=64, max_length=64, hidden_dim=32, num_layers=2,
            num_heads=4, num_splits=4,
        ),
        # 64*32 + 64*32 + 2*(12*32^2 + 13*32) + 2*32
        "params": 29_568,
        "source": "formula in this module's docstring",
    },
    "paper": {
        "description": "GPT-2 small as the host decoder of the split_k "
        "(Lean Attention) kernel: vocab 50257, 1024 learned positions, "
        "768 wide, 12 layers x 12 heads (head size 64, a head size of the "
        "paper's experiments), tied embeddings, 8 context pieces.",
        "config": dict(
            vocab_size=50257, max_length=1024, hidden_dim=768, num_layers=12,
            num_heads=12, num_splits=8,
        ),
        # 38,597,376 + 786,432 + 12*7,087,872 + 1,536
        "params": 124_439_808,
        "source": "No official Lean Attention model exists (the paper "
        "benchmarks an attention kernel; code only as an ONNX Runtime CUDA "
        "operator, PR #22352). Count = GPT-2 small (HF GPT2LMHeadModel "
        "'gpt2', tied lm_head), the garden's chosen host model; formula in "
        "lean_attention_presets.py.",
    },
    "bench": {
        "description": "Decode benchmark model: vocab 256, 8192 positions, "
        "width 256, 4 layers x 4 heads (head size 64), 8 context pieces.",
        "config": dict(
            vocab_size=256, max_length=8192, hidden_dim=256, num_layers=4,
            num_heads=4, num_splits=8,
        ),
        # 256*256 + 8192*256 + 4*(12*256^2 + 13*256) + 2*256
        "params": 5_322_240,
        "source": "formula in this module's docstring",
    },
}
lean_attention_presets["gpt2"] = {
    **lean_attention_presets["paper"],
    "description": "Alias of 'paper' (the host model's upstream name).",
}
