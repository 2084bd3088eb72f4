"""Shared helpers of the point-cloud file readers (ModelNet40, ShapeNet-55)."""

import os

MAX_LISTED = 5
SAMPLINGS = ("first", "random")


def require_root(root, name, layout):
    """`root` as a str; a clear error if missing or not a directory."""
    if root is None:
        raise ValueError(f"{name} needs root=<path>, the folder with {layout}.")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"{name} root not found: {root!r} (expected {layout})."
        )
    return root


def require_file(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path!r}.")
    return path


def read_lines(path, what):
    """Non-empty, stripped lines of a text file that must exist."""
    with open(require_file(path, what)) as f:
        return [line.strip() for line in f if line.strip()]


def require_all_exist(paths, name):
    """Raises FileNotFoundError naming the first few missing `paths`."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:MAX_LISTED])
        more = len(missing) - MAX_LISTED
        raise FileNotFoundError(
            f"{name}: {len(missing)} listed file(s) not found: {shown}"
            + (f" and {more} more." if more > 0 else ".")
        )


def check_sampling(sampling, num_points):
    if sampling not in SAMPLINGS:
        raise ValueError(
            f"sampling must be one of {SAMPLINGS}, got {sampling!r}."
        )
    if int(num_points) < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}.")
