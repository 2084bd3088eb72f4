"""A training run that can be killed and restarted with the same command.

Usage: run_resumable.py OUT_DIR WEIGHTS.npz [--sleep S] [--broken-resume]

Per-epoch datasets (`fn(epoch)`, each epoch its own shuffle seed), AdamW with
cosine warm-up, a checkpoint every 4 steps, 3 epochs of 10 steps. `--sleep`
slows each step down (host side) so the test can kill it mid-epoch.
`--broken-resume` restarts the data at the start of the epoch instead of
skipping the consumed batches: the test must detect it.
"""

import argparse
import os
import sys
import time

sys.path.insert(
    0,
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ),
)

import numpy as np  # noqa: E402

from official.training import Trainer  # noqa: E402
from official.training import data as data_lib  # noqa: E402
from official.training import steps as steps_lib  # noqa: E402
from tests.training import testlib  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out_dir")
parser.add_argument("weights")
parser.add_argument("--sleep", type=float, default=0.0)
parser.add_argument("--broken-resume", action="store_true")
args = parser.parse_args()

if args.sleep:
    make = steps_lib.make_train_function

    def slow_make(*a, **k):
        train = make(*a, **k)

        def slow(iterator, num_steps):
            out = train(iterator, num_steps)
            time.sleep(args.sleep * int(num_steps))
            return out

        return slow

    steps_lib.make_train_function = slow_make

if args.broken_resume:
    iterator = data_lib.DataSource.iterator

    def restart_epoch(self, epoch, step_in_epoch, global_step):
        return iterator(self, epoch, 0, global_step)

    data_lib.DataSource.iterator = restart_epoch

trainer = Trainer(
    testlib.TinyRegressor,
    testlib.adamw_config(total_steps=30, warmup_steps=5),
    out_dir=args.out_dir,
    checkpoint_every=4,
    log_every=1,
    seed=0,
    verbose=0,
)
metrics = trainer.fit(testlib.epoch_dataset_fn(), epochs=3)
np.savez(args.weights, *testlib.weights(trainer.model))
print("DONE", metrics["steps"], metrics["resumed_from_step"], flush=True)
