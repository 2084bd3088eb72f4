"""garden.load turns every corrupted-file mode into one ModelLoadError."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest

from official.loading import ModelLoadError
from official.loading import load_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("load")
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3, name="dense")(inp))
    path = str(tmp / "ok.keras")
    model.save(path)
    return path


def _rewrite(src, dst, transform):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = transform(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item, data)


def test_intact_file_loads(saved):
    model = load_model(saved)
    assert model(np.ones((1, 4), "float32")).shape == (1, 3)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.keras")
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        load_model(path)
    assert path in str(info.value)


def test_not_a_zip(tmp_path):
    path = tmp_path / "text.keras"
    path.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a zip"):
        load_model(str(path))


def test_truncated(saved, tmp_path):
    data = open(saved, "rb").read()
    path = tmp_path / "trunc.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="not a zip|damaged"):
        load_model(str(path))


def test_flipped_bytes_bad_crc(saved, tmp_path):
    data = bytearray(open(saved, "rb").read())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("model.weights.h5")
        # Local header (30 bytes + name + extra) precedes the member's data.
        start = info.header_offset + 30 + len(info.filename) + len(
            info.extra)
    for i in range(start + 100, start + 140):
        data[i] ^= 0xFF
    path = tmp_path / "crc.keras"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="corrupted|damaged"):
        load_model(str(path))


def test_missing_config(saved, tmp_path):
    path = str(tmp_path / "noconfig.keras")
    _rewrite(saved, path,
             lambda n, d: None if n == "config.json" else d)
    with pytest.raises(ModelLoadError, match="lacks"):
        load_model(path)


def test_mismatched_weights(saved, tmp_path):
    def change_units(name, data):
        if name != "config.json":
            return data
        config = json.loads(data)
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Dense":
                layer["config"]["units"] = 5
        return json.dumps(config)

    path = str(tmp_path / "mismatch.keras")
    _rewrite(saved, path, change_units)
    with pytest.raises(ModelLoadError, match="weights"):
        load_model(path)


def test_unregistered_class(saved, tmp_path):
    def rename(name, data):
        if name != "config.json":
            return data
        config = json.loads(data)
        config["config"]["layers"][1]["class_name"] = "NoSuchLayer"
        config["config"]["layers"][1]["module"] = None
        config["config"]["layers"][1]["registered_name"] = "garden>NoSuch"
        return json.dumps(config)

    path = str(tmp_path / "unknown.keras")
    _rewrite(saved, path, rename)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert os.path.basename(path) in str(info.value)
