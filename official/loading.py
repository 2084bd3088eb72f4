"""`load_model` with one clear error for every way a `.keras` file can be bad.

Keras raises four different errors for corrupted files, one of them a
misleading "File not found" for a file that exists (../shared/STACK.md). This
wrapper checks the archive first and turns every failure into
`ModelLoadError`, which names the file and the cause.
"""

import os
import zipfile

import keras

REQUIRED_MEMBERS = ("config.json", "model.weights.h5")


class ModelLoadError(ValueError):
    """A `.keras` file could not be loaded; the message says why."""

    def __init__(self, path, cause):
        self.path = path
        self.cause = cause
        super().__init__(f"Cannot load model from '{path}': {cause}")


def check_archive(path):
    """Raises ModelLoadError unless `path` is a complete, intact .keras zip."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelLoadError(path, "the file does not exist.")
    if os.path.isdir(path):
        raise ModelLoadError(
            path, "it is a directory, not a .keras file (a SavedModel "
            "directory is loaded with tf.saved_model.load).")
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(
            path, "it is not a zip archive (truncated or not a .keras file).")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [m for m in REQUIRED_MEMBERS if m not in names]
            if missing:
                raise ModelLoadError(
                    path, f"the archive lacks {missing} (found "
                    f"{sorted(names)}).")
            bad = archive.testzip()
            if bad is not None:
                raise ModelLoadError(
                    path, f"member '{bad}' is corrupted (CRC mismatch).")
    except ModelLoadError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise ModelLoadError(path, f"the zip archive is damaged ({e}).") from e


def load_model(path, compile=True, safe_mode=True):
    """Loads a `.keras` file; every failure is a `ModelLoadError`."""
    check_archive(path)
    try:
        return keras.models.load_model(path, compile=compile,
                                       safe_mode=safe_mode)
    except ModelLoadError:
        raise
    except TypeError as e:
        if "Could not locate" in str(e):
            raise ModelLoadError(
                path, f"a class in the file is not registered ({e}). Import "
                "the package that defines it (e.g. `import garden`).") from e
        raise ModelLoadError(path, f"the model config is invalid ({e}).") \
            from e
    except ValueError as e:
        msg = str(e)
        if "could not be loaded" in msg or "weights" in msg.lower():
            cause = ("the stored weights do not match the model built from "
                     f"the stored config ({msg.splitlines()[0]})")
        else:
            cause = f"the model could not be rebuilt ({msg.splitlines()[0]})"
        raise ModelLoadError(path, cause) from e
    except (OSError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ModelLoadError(
            path, f"the stored weights are unreadable ({e}).") from e


_FRESH_SCRIPT = """
import sys, numpy as np, keras
import {package}
data = np.load(sys.argv[2])
x = data["__bare__"] if data.files == ["__bare__"] else {{k: data[k] for k in data.files}}
model = keras.models.load_model(sys.argv[1])
out = model(x, training=False)
def flat(t, p=""):
    if isinstance(t, dict):
        for k in sorted(t):
            yield from flat(t[k], p + k + "/")
    else:
        yield (p.rstrip("/") or "output"), keras.ops.convert_to_numpy(t)
np.savez(sys.argv[3], **dict(flat(out)))
print("CLASS", type(model).__name__)
"""


def outputs_in_fresh_process(path, inputs, workdir, package="garden",
                             timeout=300):
    """Loads `path` in a new interpreter that imports only `package`.

    Loading in the defining process hides the "Could not locate class"
    failure users hit; a fresh process does not. Returns (class name, dict of
    flattened output arrays, keys like "reconstruction" or "output").
    """
    import subprocess
    import sys

    import numpy as np

    inputs_path = os.path.join(workdir, "fresh_inputs.npz")
    out_path = os.path.join(workdir, "fresh_outputs.npz")
    if isinstance(inputs, dict):
        np.savez(inputs_path, **{k: np.asarray(v) for k, v in inputs.items()})
    else:
        np.savez(inputs_path, __bare__=np.asarray(inputs))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_SCRIPT.format(package=package),
         os.fspath(path), inputs_path, out_path],
        capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise ModelLoadError(path, "loading in a fresh process failed:\n"
                             + proc.stderr[-4000:])
    cls = [ln for ln in proc.stdout.splitlines() if ln.startswith("CLASS ")]
    data = np.load(out_path)
    return cls[-1].split(" ", 1)[1], {k: data[k] for k in data.files}
