"""matplotlib, imported only when a figure is drawn (it is an optional extra).

Figures are made with ``matplotlib.figure.Figure`` on an Agg canvas, never
through pyplot, so drawing works without a display and leaves the user's
pyplot backend alone.
"""

from __future__ import annotations

INSTALL_HINT = ("kerasopt.viz needs matplotlib to draw figures; install it with "
                "pip install 'kerasopt[viz]' (or pip install matplotlib)")


def figure(figsize, **kwargs):
    """A new Figure on an Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    fig = Figure(figsize=figsize, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def save_png(fig, path, dpi: int = 80) -> str:
    """Writes a 256-colour PNG (figures have few colours; a third of the RGBA size)."""
    import io

    from PIL import Image  # a matplotlib dependency

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, format="PNG", optimize=True)
    return str(path)


def save_gif(fig, set_frame, frames, path, *, fps: int = 12, dpi: int = 60) -> str:
    """Calls ``set_frame(k)`` for each ``k`` in ``frames`` and writes an animated GIF."""
    from matplotlib.animation import PillowWriter

    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi):
        for k in frames:
            set_frame(k)
            writer.grab_frame()
    return str(path)


def frame_indices(steps: int, max_frames: int) -> list:
    """At most ``max_frames`` step indices from 0 to ``steps``, always including both ends."""
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2, got {max_frames!r}")
    if steps + 1 <= max_frames:
        return list(range(steps + 1))
    import numpy as np

    return sorted(set(np.linspace(0, steps, max_frames).round().astype(int).tolist()))
