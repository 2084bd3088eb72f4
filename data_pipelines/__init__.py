"""Deterministic, shardable `tf.data` pipelines; offline sources and readers.

Pipelines know nothing about models: they take plain values (image size,
number of points, a root folder) and yield dicts with the garden's standard
keys ("images" or "points", and "labels"). See data_pipelines/README.md.

Example:

```python
import data_pipelines

ds = data_pipelines.get_dataset("shapes3d", batch_size=8, num_points=128)
batch = next(iter(ds))  # {"points": (8, 128, 3), "labels": (8,)}
points, labels = data_pipelines.shapes3d.generate(100, 128, seed=0)
```
"""

from data_pipelines import digits
from data_pipelines import image_folder
from data_pipelines import modelnet40
from data_pipelines import multichannel
from data_pipelines import pipeline
from data_pipelines import shapenet55
from data_pipelines import shapes3d
from data_pipelines.datasets import get_dataset
from data_pipelines.datasets import list_datasets
from data_pipelines.pointcloud import pc_norm

__all__ = [
    "digits",
    "get_dataset",
    "image_folder",
    "list_datasets",
    "modelnet40",
    "multichannel",
    "pc_norm",
    "pipeline",
    "shapenet55",
    "shapes3d",
]
