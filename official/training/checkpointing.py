"""Atomic training checkpoints: weights, optimizer state, step, data position.

A checkpoint is a directory `ckpt-<step>/` holding a `tf.train.Checkpoint`
(`ckpt.index`, `ckpt.data-*`: model weights, optimizer slots and iterations,
the step counter) and `state.json` (the step and the data position: epoch and
batches consumed in that epoch).

Writing is atomic: the TensorFlow checkpoint goes into a hidden `.tmp-*`
directory, is flushed to disk, and the directory is renamed to `ckpt-<step>`;
then `state.json` is written next to it as `state.json.tmp` and renamed. A
checkpoint counts only once its `state.json` exists (the last, atomic, rename:
this also holds on object stores, where renaming a directory copies object by
object). A process killed at any moment leaves either the complete new
checkpoint or an invisible leftover (a `.tmp-*` directory or a `ckpt-<step>`
without `state.json`) that the next run removes. The last `keep` are kept.

Multi-worker: every worker calls `save` (saving may run collective ops), but
only the chief's copy is renamed into place; the others write into their own
temporary directory and delete it, as the `tf.distribute` guide recommends.
"""

import json
import os
import re
import uuid

import tensorflow as tf

_NAME = re.compile(r"^ckpt-(\d+)$")
STATE_FILE = "state.json"
PREFIX = "ckpt"


def _is_local(path):
    return "://" not in path


def _fsync_tree(directory):
    """Flushes every file under a local `directory`, then the directory."""
    if not _is_local(directory):
        return
    for root, _, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def _fsync_dir(directory):
    if not _is_local(directory):
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointManager:
    """Saves and finds atomic checkpoints in `directory`.

    Args:
        directory: str. Where the `ckpt-<step>` directories live.
        checkpoint: a `tf.train.Checkpoint` holding the state to save.
        keep: int. How many of the newest checkpoints to keep.
        chief: bool. Whether this process owns the real checkpoints.
        worker: str. This process' name (temporary directory names).
    """

    def __init__(
        self, directory, checkpoint, keep=3, chief=True, worker="chief"
    ):
        if keep < 1:
            raise ValueError(
                f"CheckpointManager: keep must be >= 1; got {keep}."
            )
        self.directory = directory
        self.checkpoint = checkpoint
        self.keep = keep
        self.chief = chief
        self.worker = worker
        tf.io.gfile.makedirs(directory)
        self._remove_stale_temporaries()

    # ----------------------------------------------------------------- queries
    def checkpoints(self):
        """Complete checkpoints as a sorted list of (step, path)."""
        found = []
        for name in tf.io.gfile.listdir(self.directory):
            match = _NAME.match(name.rstrip("/"))
            path = os.path.join(self.directory, name.rstrip("/"))
            if match and tf.io.gfile.exists(os.path.join(path, STATE_FILE)):
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest(self):
        """The newest complete checkpoint's path, or None."""
        found = self.checkpoints()
        return found[-1][1] if found else None

    @staticmethod
    def read_state(path):
        with tf.io.gfile.GFile(os.path.join(path, STATE_FILE), "r") as f:
            return json.load(f)

    # ------------------------------------------------------------------- write
    def save(self, step, state):
        """Writes a checkpoint for `step` with the JSON-able `state`.

        Returns the final path (the chief's), even on non-chief workers.
        """
        final = os.path.join(self.directory, f"ckpt-{int(step)}")
        tmp = os.path.join(
            self.directory,
            f".tmp-ckpt-{int(step)}-{self.worker}-{uuid.uuid4().hex}",
        )
        tf.io.gfile.makedirs(tmp)
        self.checkpoint.write(os.path.join(tmp, PREFIX))
        if not self.chief:
            tf.io.gfile.rmtree(tmp)
            return final
        _fsync_tree(tmp)
        if tf.io.gfile.exists(final):  # the same step saved again: replace
            tf.io.gfile.rmtree(final)
        tf.io.gfile.rename(tmp, final)
        _fsync_dir(self.directory)
        # The completeness marker, written last with an atomic file rename.
        state_path = os.path.join(final, STATE_FILE)
        with tf.io.gfile.GFile(state_path + ".tmp", "w") as f:
            json.dump(dict(state, step=int(step)), f, indent=1, sort_keys=True)
        _fsync_tree(final)
        tf.io.gfile.rename(state_path + ".tmp", state_path)
        _fsync_dir(final)
        self._prune()
        return final

    def restore(self, path=None):
        """Restores `path` (default: the latest); returns its state or None."""
        path = path or self.latest()
        if path is None:
            return None
        status = self.checkpoint.read(os.path.join(path, PREFIX))
        status.assert_existing_objects_matched()
        return self.read_state(path)

    # --------------------------------------------------------------- cleaning
    def _prune(self):
        for _, path in self.checkpoints()[: -self.keep]:
            tf.io.gfile.rmtree(path)

    def _remove_stale_temporaries(self):
        """Removes leftovers of a run killed while saving.

        Each worker removes its own `.tmp-*` directories; the chief also
        removes `ckpt-<step>` directories that never got their `state.json`.
        """
        marker = f"-{self.worker}-"
        for name in tf.io.gfile.listdir(self.directory):
            name = name.rstrip("/")
            path = os.path.join(self.directory, name)
            if name.startswith(".tmp-ckpt-") and marker in name:
                tf.io.gfile.rmtree(path)
            elif (
                self.chief
                and _NAME.match(name)
                and not tf.io.gfile.exists(os.path.join(path, STATE_FILE))
            ):
                tf.io.gfile.rmtree(path)
