"""Figures of the toy GAN, rendered to PNG bytes.

Uses matplotlib's object API on an Agg canvas: no display, no pyplot and
none of its global state, so figures can be drawn from any thread or test.
"""

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_range(*points, margin=0.2, percentile=0.5):
    """((x0, x1), (y0, y1)): a square-ish window around arrays of points
    [N, 2], from the ``percentile`` to the 100 - ``percentile`` percentile
    of all of them (stray generated points do not shrink the picture),
    widened by ``margin`` of its size on each side."""
    stacked = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in points])
    low, high = np.percentile(stacked, [percentile, 100 - percentile], axis=0)
    half = 0.5 * max(float(np.max(high - low)), 1e-3) * (1 + 2 * margin)
    center = 0.5 * (low + high)
    return tuple((float(c - half), float(c + half)) for c in center)


def toy_gan_figure(real, fake, *, grid_x, grid_y, decision, title='', size=5.0, dpi=100):
    """PNG bytes: ``real`` and ``fake`` points ([N, 2] each) over the
    discriminator's decision surface.

    grid_x [W] and grid_y [H]: the grid's coordinates; decision [H, W]: D's
    probability that the point (grid_x[j], grid_y[i]) is real, drawn as
    filled contours with a line at 0.5, D's decision boundary.
    """
    figure = Figure(figsize=(size * 1.2, size), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    surface = axes.contourf(grid_x, grid_y, np.clip(decision, 0.0, 1.0),
                            levels=np.linspace(0.0, 1.0, 11), cmap='coolwarm', alpha=0.7)
    if np.min(decision) < 0.5 < np.max(decision):
        axes.contour(grid_x, grid_y, decision, levels=[0.5], colors='black', linewidths=1.0)
    figure.colorbar(surface, ax=axes, label='D(x): probability that x is real')
    real, fake = np.asarray(real), np.asarray(fake)
    axes.scatter(real[:, 0], real[:, 1], s=4, color='tab:green', alpha=0.6, label='real')
    axes.scatter(fake[:, 0], fake[:, 1], s=4, color='tab:purple', alpha=0.6, label='generated')
    axes.set_xlim(grid_x[0], grid_x[-1])
    axes.set_ylim(grid_y[0], grid_y[-1])
    axes.set_aspect('equal')
    axes.legend(loc='upper right', markerscale=3)
    if title:
        axes.set_title(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    return buffer.getvalue()
