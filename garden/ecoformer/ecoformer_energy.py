"""The paper's analytic operation counts and energy model (45 nm, FP32).

EcoFormer sec. 5 / official `pvt/get_energy.py` (ziplab/EcoFormer@a277f9e):
energy = 3.7 pJ x #mul + 0.9 pJ x #add (Horowitz 2014). `get_energy`
starts from mmcv's `get_model_complexity_info` count (MACs of Conv2d,
Linear and LayerNorm layers; every MAC is counted once as a mul and once
as an add) and adds, per block, the attention products the counter cannot
see:

* softmax MSA (`msa_flops`): muls 2 N^2 D + H N^2 (q k^T, attn v, scale);
  adds 2 N^2 D;
* EcoFormer (`fast_attn_ecoformer_flops`, C = D / H, b bits, m anchors):
  kernel muls 2 H N m, adds 2 H N m C; hashing H N m b muls and adds;
  sum_j H_j: H N b adds; denominator H N b + H N muls, H N b adds;
  sum_j H_j v_j^T and H_i^T (.): 2 H N b C + H N C adds only (binary
  codes); the final division H N C muls.

`model_ops(config)` applies this to an `EcoformerPVTClassifier` config
(image_size x image_size input, token grid 1/4, 1/8, 1/16, 1/32; the last
stage always softmax, as the official model); with the `paper` preset it
gives the README's 0.54 B mul, 0.56 B add, 2.5 B pJ.
"""

MUL_PJ = 3.7
ADD_PJ = 0.9


def msa_ops(tokens, dim, heads):
    """(muls, adds) of one softmax attention's products (official)."""
    n = tokens
    return 2 * n * n * dim + heads * n * n, 2 * n * n * dim


def ecoformer_ops(tokens, dim, heads, num_bits=16, num_anchors=25):
    """(muls, adds) of one EcoFormer attention's hashing + products."""
    h, n, c, b, m = heads, tokens, dim // heads, num_bits, num_anchors
    muls = 2 * h * n * m + h * n * m * b + (h * n * b + h * n) + h * n * c
    adds = (2 * h * n * m * c + h * n * m * b + h * n * b + h * n * b
            + h * n * b * c + (h * n * b * c + h * n * c))
    return muls, adds


def _attention_types(config):
    dims = config["embed_dims"]
    return config.get("attention_types") or (
        ["ecoformer"] * (len(dims) - 1) + ["msa"])


def layer_macs(config):
    """mmcv-style MACs of the Conv2d, Linear and LayerNorm layers."""
    side = config["image_size"]
    c_in = config.get("num_channels", 3)
    dims = config["embed_dims"]
    types = _attention_types(config)
    total = 0
    for i, d in enumerate(dims):
        k, stride = (7, 4) if i == 0 else (3, 2)
        side = (side + 2 * (k // 2) - k) // stride + 1
        n = side * side
        total += n * d * k * k * c_in + n * d + 2 * n * d  # conv, bias, LN
        h = int(d * config["mlp_ratios"][i])
        attn = 3 if types[i] == "ecoformer" else 4  # qk, v, proj | qkv, proj
        block = (2 * 2 * n * d + attn * n * d * d
                 + n * d * h + 9 * n * h + n * h + n * h * d)
        total += config["depths"][i] * block + 2 * n * d  # + stage norm
        c_in = d
    return total + dims[-1] * config.get("num_classes", 1000)


def model_ops(config):
    """dict(muls, adds, energy_pj, attention_muls, attention_adds)."""
    side = config["image_size"]
    dims = config["embed_dims"]
    types = _attention_types(config)
    att_mul = att_add = 0
    for i, d in enumerate(dims):
        k, stride = (7, 4) if i == 0 else (3, 2)
        side = (side + 2 * (k // 2) - k) // stride + 1
        n, heads = side * side, config["num_heads"][i]
        if types[i] == "ecoformer":
            mul, add = ecoformer_ops(n, d, heads,
                                     config.get("num_bits", 16),
                                     config.get("num_anchors", 25))
        else:
            mul, add = msa_ops(n, d, heads)
        att_mul += config["depths"][i] * mul
        att_add += config["depths"][i] * add
    macs = layer_macs(config)
    muls, adds = macs + att_mul, macs + att_add
    return dict(muls=muls, adds=adds, energy_pj=MUL_PJ * muls + ADD_PJ * adds,
                attention_muls=att_mul, attention_adds=att_add)
