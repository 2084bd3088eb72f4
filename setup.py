"""garden: a Keras 3 / TensorFlow model garden of transformer and autoencoder papers.

This file is the one place where versions are pinned (see ../shared/STACK.md for
why each pin is the one it is).
"""

from setuptools import find_packages
from setuptools import setup

CORE = [
    "tensorflow==2.21.0",
    "keras==3.15.1",
    "tf-keras==2.21.0",
    "tensorflow-probability==0.25.0",
    "tensorflow-datasets==4.9.10",
    "importlib_resources==7.1.0",
    "tf2onnx==1.17.0",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
    "ai-edge-litert==2.3.0",
    "tensorboard==2.21.0",
    "scikit-learn==1.9.1",
    "matplotlib==3.11.2",
]

EXTRAS = {
    "test": ["pytest==9.2.0", "pytest-xdist==3.8.0"],
    # Bench-only: the PyTorch/Hugging Face baselines `garden bench` compares to.
    "bench": ["torch==2.14.1", "transformers==5.24.0"],
}

setup(
    name="garden",
    version="0.1.0",
    description="Transformer and autoencoder papers as verified Keras 3 models.",
    packages=find_packages(include=["garden*", "official*", "data_pipelines*"]),
    python_requires=">=3.10,<3.13",
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["garden=garden.cli:main"]},
)
