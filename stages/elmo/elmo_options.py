"""ELMo ``options.json``: read once, validated, as a frozen record.

The schema is bilm-tf's (also used by allennlp's published models)::

    {"lstm": {"dim", "projection_dim", "n_layers", "cell_clip", "proj_clip",
              "use_skip_connections"},
     "char_cnn": {"embedding": {"dim"}, "filters": [[width, count], ...],
                  "n_highway", "n_characters", "max_characters_per_token",
                  "activation"}}
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Tuple

from stages.elmo.charids import MAX_CHARS
from stages.common.errors import StageError

ACTIVATIONS = ("relu", "tanh")

# The published "Original" model (elmo_2x4096_512_2048cnn_2xhighway_options.json).
ORIGINAL_OPTIONS = {
    "lstm": {
        "use_skip_connections": True,
        "projection_dim": 512,
        "cell_clip": 3,
        "proj_clip": 3,
        "dim": 4096,
        "n_layers": 2,
    },
    "char_cnn": {
        "activation": "relu",
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
        "n_highway": 2,
        "embedding": {"dim": 16},
        "n_characters": 262,
        "max_characters_per_token": 50,
    },
}


@dataclass(frozen=True)
class ElmoOptions:
    char_embed_dim: int
    filters: Tuple[Tuple[int, int], ...]
    n_highway: int
    activation: str
    max_chars: int
    projection_dim: int
    cell_dim: int
    n_layers: int
    cell_clip: float
    proj_clip: float
    use_skip_connections: bool

    @property
    def n_filters(self) -> int:
        return sum(count for _, count in self.filters)

    @property
    def output_dim(self) -> int:
        return 2 * self.projection_dim

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "options") -> "ElmoOptions":
        try:
            lstm = raw["lstm"]
            cnn = raw["char_cnn"]
            options = cls(
                char_embed_dim=int(cnn["embedding"]["dim"]),
                filters=tuple((int(w), int(n)) for w, n in cnn["filters"]),
                n_highway=int(cnn["n_highway"]),
                activation=str(cnn.get("activation", "relu")),
                max_chars=int(cnn.get("max_characters_per_token", MAX_CHARS)),
                projection_dim=int(lstm["projection_dim"]),
                cell_dim=int(lstm["dim"]),
                n_layers=int(lstm["n_layers"]),
                cell_clip=float(lstm.get("cell_clip") or 0.0),
                proj_clip=float(lstm.get("proj_clip") or 0.0),
                use_skip_connections=bool(lstm.get("use_skip_connections", False)),
            )
        except KeyError as exc:
            raise StageError(f"{source}: missing key {exc.args[0]!r}; is this a bilm-tf/allennlp ELMo options.json?")
        except (TypeError, ValueError) as exc:
            raise StageError(f"{source}: malformed value ({exc}); compare with a published ELMo options.json")
        if options.activation not in ACTIVATIONS:
            raise StageError(
                f"{source}: char_cnn.activation {options.activation!r} is not one of {', '.join(ACTIVATIONS)}"
            )
        if options.max_chars != MAX_CHARS:
            raise StageError(f"{source}: max_characters_per_token is {options.max_chars}; ELMo ids use {MAX_CHARS}")
        if options.n_layers < 1 or not options.filters:
            raise StageError(f"{source}: needs at least one LSTM layer and one CNN filter")
        return options


def load_options(path) -> ElmoOptions:
    from stages.common.records import read_record

    raw = read_record(path, missing="pass --options or set ELMO_OPTIONS to a bilm-tf/allennlp options.json")
    return ElmoOptions.from_dict(raw, source=str(path))
