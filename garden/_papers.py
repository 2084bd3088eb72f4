"""Imports every paper package so that each registers its models."""

import importlib

PAPERS = (
    "mae",
    "point_mae",
    "axial_transformer",
    "combiner",
    "ecoformer",
    "fit",
    "lean_attention",
    "slab",
)

for _slug in PAPERS:
    importlib.import_module(f"garden.{_slug}")
