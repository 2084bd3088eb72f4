"""Built-in kernels; importing a module registers its kernels."""

from official.attention.kernels import dense  # noqa: F401
