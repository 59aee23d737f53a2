"""Figures of optimizers on a surface: 3-D view, contour view, loss vs step.

:func:`trajectory_figure` draws all three panels for a list of trajectories
and returns a ``set_frame(k)`` that shows every trajectory up to step ``k``;
:func:`save_surface_png` and :func:`save_surface_gif` write the still and the
animation. The legend gives each optimizer's loss at the frame shown (the
final loss in the still).
"""

from __future__ import annotations

import numpy as np

from kerasopt.viz import _mpl

SURFACE_STRIDE = 4  # draw every 4th grid point in 3-D (50 × 50 facets): small files, same shape


def _display_range(Z, trajectories):
    """z-limits that show the surface's body and the starts (not divergent runs)."""
    finite = Z[np.isfinite(Z)]
    low, high = float(finite.min()), float(np.quantile(finite, 0.98))
    starts = [t.losses[0] for t in trajectories if np.isfinite(t.losses[0])]
    if starts:
        high = max(high, max(starts))
    pad = 0.05 * (high - low or 1.0)
    return low - pad, high + pad


def _inside(points, bounds):
    """Points outside the drawn square become NaN (matplotlib does not clip 3-D lines)."""
    lo, hi = bounds
    shown = points.astype(np.float64).copy()
    shown[~np.all((points >= lo) & (points <= hi), axis=1)] = np.nan
    return shown


def trajectory_figure(landscape, trajectories, title: str | None = None, *, figsize=(14, 4.6),
                      view=(35, -60)):
    """``(figure, set_frame, steps)`` for trajectories over one landscape."""
    if not trajectories:
        raise ValueError("trajectories must not be empty")
    steps = max(len(t.points) for t in trajectories) - 1
    fig = _mpl.figure(figsize)
    ax3d = fig.add_subplot(1, 3, 1, projection="3d")
    ax_contour = fig.add_subplot(1, 3, 2)
    ax_loss = fig.add_subplot(1, 3, 3)
    X, Y, Z = landscape.grid_values()
    zlim = _display_range(Z, trajectories)
    Zc = np.clip(Z, *zlim)
    s = SURFACE_STRIDE
    ax3d.plot_surface(X[::s, ::s], Y[::s, ::s], Zc[::s, ::s], cmap="viridis", alpha=0.55,
                      linewidth=0, edgecolor="none", antialiased=False, rasterized=True)
    ax3d.set(xlim=landscape.bounds, ylim=landscape.bounds, zlim=zlim, xlabel="x", ylabel="y")
    ax3d.view_init(*view)
    levels = np.unique(np.quantile(Zc, np.linspace(0, 1, 16)))
    ax_contour.contourf(X, Y, Zc, levels=levels, cmap="viridis", alpha=0.8)
    ax_contour.set(xlim=landscape.bounds, ylim=landscape.bounds, xlabel="x", ylabel="y", aspect="equal")
    ax_loss.set(xlabel="step", ylabel="loss", xlim=(0, max(steps, 1)))
    ax_loss.grid(linestyle="--", alpha=0.5)

    width = max(len(t.label) for t in trajectories)
    artists = []
    for t, color in zip(trajectories, _mpl.colors(len(trajectories))):
        shown = _inside(t.points, landscape.bounds)
        z = np.clip(t.losses, *zlim)
        line3d, = ax3d.plot([], [], [], color=color, linewidth=1.5)
        head3d, = ax3d.plot([], [], [], "o", color=color, markersize=5)
        line2d, = ax_contour.plot([], [], color=color, linewidth=1.2)
        head2d, = ax_contour.plot([], [], "o", color=color, markersize=4)
        loss_line, = ax_loss.plot([], [], color=color, linewidth=1.2)
        artists.append((t, shown, z, line3d, head3d, line2d, head2d, loss_line))
    legend = ax_loss.legend(handles=[a[-1] for a in artists], labels=[t.label for t in trajectories],
                            loc="upper right", prop={"family": "monospace", "size": 7},
                            title="optimizer, loss", title_fontsize=7, framealpha=0.8)
    # Loss axis: from the lowest loss seen inside the square (or the surface's
    # lowest point) to the highest start; runs that leave or diverge run off it.
    inside = [t.losses[np.isfinite(a[1][:, 0]) & np.isfinite(t.losses)] for t, a in zip(trajectories, artists)]
    bottom = min([float(Z.min())] + [float(v.min()) for v in inside if v.size])
    top = max([float(v[0]) for v in inside if v.size] or [float(np.quantile(Z, 0.98))])
    pad = 0.05 * ((top - bottom) or 1.0)
    ax_loss.set_ylim(bottom - pad, top + pad)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.12, top=0.9, wspace=0.25)

    def set_frame(k: int):
        for (t, shown, z, line3d, head3d, line2d, head2d, loss_line), text in zip(artists, legend.get_texts()):
            j = min(k, len(t.points) - 1)
            line3d.set_data_3d(shown[: j + 1, 0], shown[: j + 1, 1], z[: j + 1])
            head3d.set_data_3d(shown[j: j + 1, 0], shown[j: j + 1, 1], z[j: j + 1])
            line2d.set_data(shown[: j + 1, 0], shown[: j + 1, 1])
            head2d.set_data(shown[j: j + 1, 0], shown[j: j + 1, 1])
            loss_line.set_data(np.arange(j + 1), t.losses[: j + 1])
            text.set_text(f"{t.label.ljust(width)} {t.losses[j]:10.4g}")

    set_frame(steps)
    return fig, set_frame, steps


def save_surface_png(landscape, trajectories, path, *, title=None, dpi: int = 70) -> str:
    fig, _, _ = trajectory_figure(landscape, trajectories, title)
    return _mpl.save_png(fig, path, dpi)


def save_surface_gif(landscape, trajectories, path, *, title=None, dpi: int = 50,
                     max_frames: int = 60, fps: int = 12) -> str:
    """An animation of the trajectories (at most ``max_frames`` frames, both ends included)."""
    fig, set_frame, steps = trajectory_figure(landscape, trajectories, title)
    return _mpl.save_gif(fig, set_frame, _mpl.frame_indices(steps, max_frames), path, fps=fps, dpi=dpi)
