"""
Title: Point-MAE: masked autoencoding of point clouds, offline
Author: garden
Date created: 2026-11-25
Last modified: 2026-11-25
Description: Pre-train the tiny Point-MAE on procedural 3-D shapes, inspect
    its reconstructions, probe its features and export it to LiteRT and ONNX.
Accelerator: None
"""

"""
## Introduction

[Point-MAE](https://arxiv.org/abs/2203.06604) splits a point cloud into
patches (farthest point sampling + k nearest neighbours), masks 60% of them,
encodes the visible ones with a transformer and predicts the masked patches'
points from their centres. This tutorial runs the whole loop on procedural
shapes on a CPU. Set `GARDEN_FAST=1` for a smoke run (the tests do).
"""

import os

import numpy as np

import garden
from data_pipelines import shapes3d
from garden.point_mae import point_mae_train
from official import export

FAST = os.environ.get("GARDEN_FAST") == "1"
STEPS = 20 if FAST else 1000
NUM_TRAIN = 128 if FAST else 2000
NUM_TEST = 64 if FAST else 500
SEED = 0
OUT = os.environ.get("GARDEN_OUT", "runs/colab_point_mae")
os.makedirs(OUT, exist_ok=True)

"""
## Data: procedural shapes

Seven surfaces (sphere, cube, cylinder, cone, torus, capsule, pyramid) with
random anisotropic scale, SO(3) rotation and jitter, normalised to the unit
ball, as Point-MAE's `pc_norm`.
"""

train_x, train_y = shapes3d.generate(NUM_TRAIN, 256, SEED, rotation="so3")
test_x, test_y = shapes3d.generate(NUM_TEST, 256, SEED + 1000,
                                   rotation="so3")
print("train", train_x.shape, "classes", np.unique(train_y))

"""
## The model

`garden.build` gives a Keras model from a preset; the `paper` preset is the
ShapeNet-55 configuration with the official parameter count.
"""

print("paper params:", garden.preset_info("point_mae", "paper")["params"])
model, history = point_mae_train.pretrain(STEPS, SEED, points=train_x)
print("loss", history["loss"][0], "->", history["loss"][-1])

"""
## Reconstruction and a linear probe
"""

rec = point_mae_train.reconstruction_eval(model, test_x, train_points=train_x)
print({k: round(float(v), 4) for k, v in rec.items()})
acc = point_mae_train.linear_probe(model, train_x, train_y, test_x, test_y)
print("linear probe accuracy", acc)
point_mae_train.plot_reconstruction(model, test_x,
                                    os.path.join(OUT, "reconstruction.png"))

"""
## Export to LiteRT and ONNX, with parity
"""

x = garden.example_inputs("point_mae", batch_size=2)
for fmt, suffix in (("tflite", ".tflite"), ("onnx", ".onnx")):
    path = os.path.join(OUT, "point_mae" + suffix)
    export.export_model(model, path, x, format=fmt)
    print(fmt, export.check_parity(model, path, x))

"""
## Conclusion

The decoder reconstructs masked patches from their centres better than any
constant patch, and the pre-trained encoder's features separate the shapes
better than a random encoder's. See garden/point_mae/README.md for the
calibrated numbers.
"""
