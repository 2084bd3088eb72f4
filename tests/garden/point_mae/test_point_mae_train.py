"""point_mae_train: the functions the demo calls, on a few steps of data."""

import numpy as np

from data_pipelines import shapes3d
from garden.point_mae import point_mae_train
from official.ops import point_cloud


def test_pretrain_eval_probe_and_plot(tmp_path):
    train, labels = shapes3d.generate(48, 256, 0, rotation="so3")
    model, history = point_mae_train.pretrain(
        4, seed=0, points=train, batch_size=8, log_every=2)
    assert history["step"] == [2, 4] and len(history["loss"]) == 2
    assert all(np.isfinite(history["loss"]))

    res = point_mae_train.reconstruction_eval(model, train[:16])
    for key in ("chamfer", "baseline_origin", "baseline_mean", "baseline",
                "ratio", "chamfer_no_decoder_pos"):
        assert np.isfinite(res[key]) and res[key] > 0, (key, res)
    assert res["baseline"] == min(res["baseline_origin"],
                                  res["baseline_mean"])
    assert res["baseline_spec"] == min(res["baseline_origin"],
                                       res["baseline_sorted_mean"])
    assert res["ratio_spec"] == res["chamfer"] / res["baseline_spec"]

    acc = point_mae_train.linear_probe(model, train[:32], labels[:32],
                                       train[32:], labels[32:])
    assert 0.0 <= acc <= 1.0

    path = point_mae_train.plot_reconstruction(
        model, train, str(tmp_path / "rec.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_best_constant_patch_beats_the_origin_and_random_patches():
    train, _ = shapes3d.generate(64, 256, 1, rotation="so3")
    neighborhood, _ = point_cloud.group_points(train, 16, 16)
    patches = np.asarray(neighborhood).reshape(-1, 16, 3)
    best = point_mae_train.best_constant_patch(patches)
    score = point_mae_train._chamfer(best[None], patches)
    origin = point_mae_train._chamfer(np.zeros((1, 16, 3), "float32"),
                                      patches)
    assert score < 0.7 * origin, (score, origin)
    # No actual patch used as a constant does better.
    for i in range(0, len(patches), 97):
        assert score <= point_mae_train._chamfer(patches[i][None], patches)


def test_sampling_floor_is_between_zero_and_the_origin_baseline():
    res = point_mae_train.sampling_floor(num_clouds=20)
    assert 0.0 < res["floor"] < 0.5 * res["baseline_origin"], res


def test_sorted_mean_patch_is_the_index_wise_mean_of_sorted_patches():
    rng = np.random.RandomState(0)
    patches = rng.standard_normal((5, 4, 3)).astype("float32")
    expected = np.mean(
        [p[np.lexsort((p[:, 2], p[:, 1], p[:, 0]))] for p in patches], 0)
    got = point_mae_train.sorted_mean_patch(patches)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # Sorting matters: shuffling points inside a patch changes nothing.
    shuffled = np.stack([p[rng.permutation(4)] for p in patches])
    np.testing.assert_allclose(
        point_mae_train.sorted_mean_patch(shuffled), expected, atol=1e-6)
