"""Blocks, kernels, training and export shared by the garden's papers.

`official` never imports `garden`: the arrows run garden -> official -> keras/tf.

Importing `official` (and so `garden`) makes TensorFlow's CPU allocator the
BFC pool (`TF_CPU_ALLOCATOR_USE_BFC=true`) unless the variable is already set.
XLA:CPU allocates a step's temporaries on every execution; through glibc's
malloc the large ones are fresh `mmap`s, so every training step page-faults
them in again (24 % of the MAE bench step's CPU samples in `perf`, kernel
page-fault handling). The pool keeps the pages. It only takes effect if set
before TensorFlow's first allocation, which is why it lives here; export
`TF_CPU_ALLOCATOR_USE_BFC=false` to keep glibc's allocator.
"""

import os as _os

_os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
