"""Training logs: progress bar, CSV, TensorBoard scalars and a metrics JSON.

Layout under `out_dir` (written by the chief only):

    logs/steps.csv      one row every `log_every` steps (and at the last step)
    logs/epochs.csv     one row per epoch, with eval metrics when given
    tensorboard/        tf.summary scalars (`train/*`, `epoch/*`, `eval/*`)
    metrics.json        the final summary (`Trainer.fit`'s return value)

On resume the CSV rows after the restored step are dropped, so the files read
as one run with no repeated step.
"""

import csv
import json
import os
import sys
import time

import keras
import tensorflow as tf


class CsvLog:
    """Appends dict rows to a CSV file; the header grows with new keys."""

    def __init__(self, path):
        self.path = path
        self.fields = []
        if os.path.exists(path):
            with open(path, newline="") as f:
                self.fields = list(csv.DictReader(f).fieldnames or [])

    def rows(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows):
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def append(self, row):
        new = [k for k in row if k not in self.fields]
        if new or not os.path.exists(self.path):
            old_rows = self.rows()
            self.fields += new
            self._rewrite(old_rows)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, restval="").writerow(row)

    def truncate_after(self, key, value):
        """Drops rows whose `key` column is greater than `value`."""
        rows = self.rows()
        kept = [
            r for r in rows if r.get(key) in ("", None) or int(r[key]) <= value
        ]
        if len(kept) != len(rows):
            self._rewrite(kept)


def _scalar_rows(row):
    for key, value in row.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield key, value


class RunStats:
    """Host-side bookkeeping of one `fit`: loss means and throughput.

    `samples_per_sec` leaves out the first call of the train function (it
    includes tracing and XLA compilation) unless it is the only one.
    """

    def __init__(self, start_step):
        self.start_step = start_step
        self.step = start_step
        self.wall_start = time.perf_counter()
        self.window = [0.0, 0]  # loss sum, steps since the last step row
        self.epoch = [0.0, 0]
        self.first = None  # (seconds, samples) of the first call
        self.time = 0.0
        self.samples = 0.0
        self.last_loss = None
        self.last_rate = 0.0
        self.final_loss = None

    def start_epoch(self):
        self.epoch = [0.0, 0]

    def add(self, step, steps, loss_sum, samples, seconds):
        self.step = step
        self.last_loss = loss_sum / steps
        self.last_rate = samples / seconds if seconds else 0.0
        for acc in (self.window, self.epoch):
            acc[0] += loss_sum
            acc[1] += steps
        if self.first is None:
            self.first = (seconds, samples)
        else:
            self.time += seconds
            self.samples += samples

    def step_row(self, epoch, learning_rate):
        """The mean loss since the previous row, and starts a new window."""
        self.final_loss = self.window[0] / self.window[1]
        self.window = [0.0, 0]
        return {
            "step": self.step,
            "epoch": epoch,
            "loss": self.final_loss,
            "learning_rate": learning_rate,
            "samples_per_sec": self.last_rate,
            "wall_time_s": time.perf_counter() - self.wall_start,
        }

    def epoch_row(self, epoch):
        loss = self.epoch[0] / self.epoch[1] if self.epoch[1] else None
        return {"epoch": epoch, "step": self.step, "loss": loss}

    def summary(self):
        if self.window[1]:
            self.final_loss = self.window[0] / self.window[1]
        seconds, samples = self.time, self.samples
        if not seconds and self.first:
            seconds, samples = self.first
        return {
            "final_loss": self.final_loss,
            "steps": self.step,
            "steps_this_run": self.step - self.start_step,
            "samples_per_sec": samples / seconds if seconds else None,
            "first_call_s": self.first[0] if self.first else None,
            "wall_time_s": time.perf_counter() - self.wall_start,
        }


class TrainingLogger:
    """Progress bar, CSV, TensorBoard and metrics JSON for one `fit`.

    Args:
        out_dir: str or None. Where to write (nothing is written if None).
        chief: bool. Only the chief writes and shows progress.
        verbose: "auto" (progress bar when stdout is a TTY), 0, 1 or 2
            (`keras.utils.Progbar` verbosity).
    """

    def __init__(self, out_dir, chief=True, verbose="auto"):
        self.out_dir = out_dir
        self.chief = chief
        if verbose == "auto":
            verbose = 1 if sys.stdout.isatty() else 0
        self.verbose = verbose if chief else 0
        self.write = bool(out_dir) and chief
        self._progbar = None
        self._writer = None
        if self.write:
            logs = os.path.join(out_dir, "logs")
            os.makedirs(logs, exist_ok=True)
            self.steps_csv = CsvLog(os.path.join(logs, "steps.csv"))
            self.epochs_csv = CsvLog(os.path.join(logs, "epochs.csv"))
            self._writer = tf.summary.create_file_writer(
                os.path.join(out_dir, "tensorboard")
            )

    def resume(self, step):
        """Forgets rows logged after `step` by a run that was then killed."""
        if self.write:
            self.steps_csv.truncate_after("step", step)
            self.epochs_csv.truncate_after("step", step)

    def start_epoch(self, epoch, num_epochs, steps_per_epoch, done):
        if not self.verbose:
            return
        print(f"Epoch {epoch + 1}/{num_epochs}")
        self._progbar = keras.utils.Progbar(
            steps_per_epoch, verbose=self.verbose, stateful_metrics=["lr"]
        )
        if done:
            self._progbar.update(done)

    def progress(self, step_in_epoch, loss, learning_rate):
        if self._progbar is not None:
            self._progbar.update(
                step_in_epoch, values=[("loss", loss), ("lr", learning_rate)]
            )

    def _summaries(self, prefix, row, step):
        if self._writer is None:
            return
        with self._writer.as_default(step=step):
            for key, value in _scalar_rows(row):
                if key not in ("step", "epoch"):
                    tf.summary.scalar(f"{prefix}/{key}", value)
        self._writer.flush()

    def log_step(self, row):
        if self.write:
            self.steps_csv.append(row)
            self._summaries("train", row, row["step"])

    def log_epoch(self, row):
        if self.write:
            self.epochs_csv.append(row)
            self._summaries("epoch", row, row["step"])

    def log_eval(self, metrics, step):
        if self.write:
            self._summaries("eval", metrics, step)

    def read_metrics(self):
        path = os.path.join(self.out_dir or "", "metrics.json")
        if not (self.out_dir and os.path.exists(path)):
            return None
        with open(path) as f:
            return json.load(f)

    def write_metrics(self, metrics):
        if not self.write:
            return
        path = os.path.join(self.out_dir, "metrics.json")
        with open(path + ".tmp", "w") as f:
            json.dump(metrics, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)

    def close(self):
        if self._writer is not None:
            self._writer.close()
