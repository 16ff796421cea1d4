"""Report figures: matplotlib without a display, saved atomically."""
from __future__ import annotations

from stages.common.atomic import atomic_path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # reports are made on headless hosts and in containers
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, dest) -> None:
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(str(tmp), format="png", dpi=90)
    pyplot().close(fig)
