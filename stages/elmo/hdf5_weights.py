"""Published ELMo weights in the bilm-tf HDF5 layout: read with validation, and
write (for the deterministic synthetic stand-in of the Original model).

Layout (TensorFlow conventions; ``x @ W``)::

    char_embed                      [n_chars - 1, E]   row 0 (padding) is implicit
    CNN/W_cnn_{i}, CNN/b_cnn_{i}    [1, width, E, count], [count]
    CNN_high_{k}/W_carry, b_carry, W_transform, b_transform   [F, F], [F]
    CNN_proj/W_proj, b_proj         [F, P], [P]
    RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/W_0   [in + P, 4C]  (inputs rows, then hidden rows)
                                              /B     [4C]          gates i, j, f, o
                                              /W_P_0 [C, P]
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from stages.elmo.charids import PAD_CHAR, ID_OFFSET
from stages.elmo.elmo_options import ElmoOptions
from stages.common.errors import StageError

# ids run 1..PAD_CHAR+1; the file stores every row but the padding row 0.
CHAR_ROWS = PAD_CHAR + ID_OFFSET


def lstm_key(direction: int, layer: int, name: str) -> str:
    return f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell/{name}"


def expected_shapes(options: ElmoOptions) -> Dict[str, Tuple[int, ...]]:
    """Every dataset a weights file must hold for ``options``, with its shape."""
    e, f, p, c = options.char_embed_dim, options.n_filters, options.projection_dim, options.cell_dim
    shapes: Dict[str, Tuple[int, ...]] = {"char_embed": (CHAR_ROWS, e)}
    for i, (width, count) in enumerate(options.filters):
        shapes[f"CNN/W_cnn_{i}"] = (1, width, e, count)
        shapes[f"CNN/b_cnn_{i}"] = (count,)
    for k in range(options.n_highway):
        for part in ("carry", "transform"):
            shapes[f"CNN_high_{k}/W_{part}"] = (f, f)
            shapes[f"CNN_high_{k}/b_{part}"] = (f,)
    shapes["CNN_proj/W_proj"] = (f, p)
    shapes["CNN_proj/b_proj"] = (p,)
    for direction in (0, 1):
        for layer in range(options.n_layers):
            shapes[lstm_key(direction, layer, "W_0")] = (p + p, 4 * c)
            shapes[lstm_key(direction, layer, "B")] = (4 * c,)
            shapes[lstm_key(direction, layer, "W_P_0")] = (c, p)
    return shapes


def read_weights(path, options: ElmoOptions) -> Dict[str, np.ndarray]:
    """All datasets as float32 arrays, each checked against ``options``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: weights file not found; pass --weights or set ELMO_WEIGHTS (or WEIGHTS=synthetic)")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise StageError(f"{path}: not a readable HDF5 file ({exc}); it may be truncated, download it again")
    arrays: Dict[str, np.ndarray] = {}
    with handle:
        for key, shape in expected_shapes(options).items():
            if key not in handle:
                raise StageError(f"{path}: dataset {key!r} is missing; is this the weights file for these options?")
            dataset = handle[key]
            if tuple(dataset.shape) != shape:
                raise StageError(
                    f"{path}: dataset {key!r} has shape {tuple(dataset.shape)} but the options file implies {shape}; "
                    "the options and weights files do not belong together"
                )
            try:
                arrays[key] = np.asarray(dataset[...], dtype=np.float32)
            except OSError as exc:
                raise StageError(f"{path}: dataset {key!r} cannot be read ({exc}); the file is truncated, download it again")
    return arrays


def synthetic_weights(options: ElmoOptions, seed: int = 0) -> Dict[str, np.ndarray]:
    """Deterministic random weights in the official layout.

    Scaled like a trained model's (fan-in uniform) so activations stay in the
    range real ones occupy: saturated gates everywhere would make speed and
    quantization results meaningless.
    """
    rng = np.random.default_rng(seed)
    arrays: Dict[str, np.ndarray] = {}
    for key, shape in expected_shapes(options).items():
        fan_in = shape[0] if len(shape) == 2 else (int(np.prod(shape[:-1])) if len(shape) > 2 else shape[0])
        bound = 1.0 / np.sqrt(max(fan_in, 1))
        if key == "char_embed":
            bound = 1.0
        elif key.split("/")[-1].startswith("b") or key.endswith("/B"):
            bound = 0.1
        arrays[key] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return arrays


def write_weights(path, arrays: Dict[str, np.ndarray]) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value)
