"""Numerical parity between a Keras model and its exported artifact."""

import numpy as np

from official.export.signature import flatten_outputs


def check_parity(model, path, inputs, runner_outputs=None):
    """Max abs difference per output between `model(inputs)` and the file.

    Returns {output_name: max_abs_diff}. Raises ValueError if the output
    names or shapes differ.
    """
    from official.export.runners import run_exported

    expected = {
        k: np.asarray(v)
        for k, v in flatten_outputs(model(inputs, training=False)).items()
    }
    got = runner_outputs if runner_outputs is not None else run_exported(
        path, inputs
    )
    got = _match_names(expected, got)
    diffs = {}
    for key, want in expected.items():
        have = got[key]
        if tuple(have.shape) != tuple(want.shape):
            raise ValueError(
                f"Export parity: output '{key}' has shape {have.shape} in "
                f"{path}, {want.shape} in the model."
            )
        diffs[key] = float(np.max(np.abs(have.astype(np.float64)
                                         - want.astype(np.float64))))
    return diffs


def _match_names(expected, got):
    if set(got) == set(expected):
        return got
    # Some converters rename outputs (output_0, Identity, StatefulPartitioned
    # Call:0 ...). Fall back to matching by sorted order when counts agree.
    if len(got) != len(expected):
        raise ValueError(
            f"Export parity: outputs {sorted(got)} do not match the model's "
            f"{sorted(expected)}."
        )
    matched = {}
    for want_key, got_key in zip(sorted(expected), sorted(got)):
        matched[want_key] = got[got_key]
    return matched
