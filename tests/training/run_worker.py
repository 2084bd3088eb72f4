"""One worker of a two-process MultiWorkerMirroredStrategy run.

Usage: run_worker.py INDEX PORT0,PORT1 OUT_DIR WEIGHTS.npz

TF_CONFIG is set here, before TensorFlow starts. Both workers train the tiny
model on the same global batches (each reads its half of every batch), save
checkpoints (the chief's is kept), evaluate, and write their final weights.
"""

import json
import os
import sys

index, ports, out_dir, weights_path = sys.argv[1:5]
os.environ["TF_CONFIG"] = json.dumps(
    {
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports.split(",")]},
        "task": {"type": "worker", "index": int(index)},
    }
)
sys.path.insert(
    0,
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ),
)

import numpy as np  # noqa: E402

from official.training import Trainer  # noqa: E402
from official.training import make_strategy  # noqa: E402
from tests.training import testlib  # noqa: E402

strategy = make_strategy("multi_worker")
trainer = Trainer(
    testlib.TinyRegressor,
    testlib.sgd_config(learning_rate=0.1, momentum=0.9),
    strategy=strategy,
    out_dir=out_dir,
    checkpoint_every=4,
    log_every=2,
    seed=0,
    verbose=0,
)
metrics = trainer.fit(
    testlib.dataset(),
    steps=8,
    eval_data=testlib.dataset(n=40, shuffle_seed=None),
)
np.savez(weights_path, *testlib.weights(trainer.model))
print(
    "RESULT",
    json.dumps(
        {
            "chief": trainer.chief,
            "replicas": strategy.num_replicas_in_sync,
            "eval": metrics["eval"],
            "final_loss": metrics["final_loss"],
        }
    ),
    flush=True,
)
