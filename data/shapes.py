"""The built-in dataset shapes2stripes, a tiny horse2zebra, generated on first use."""

import colorsys
import dataclasses
import logging
import math
import os
import shutil
import tempfile

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

BUILTIN = 'shapes2stripes'

# ---------------------------------------------------------------------------
# The built-in dataset shapes2stripes, a tiny horse2zebra.
#
# Domain A: one plain coloured shape (circle, square or triangle, random size,
# position, rotation and colour) on a plain light background. Domain B: the
# same kind of shape, its colour crossed by near-black zebra stripes (period
# STRIPE_PERIOD pixels, random angle within 30 degrees of vertical). 64x64 RGB
# PNGs. trainA and trainB are drawn independently (unpaired). testA/NNNN.png
# and testB/NNNN.png show the SAME shape, plain and striped: the ground truth
# of the translation A -> B (see ground_truth_pairs). The paired variant
# (shapes2stripes_paired, for pix2pix) has train/ and test/ files plain|striped
# side by side (128x64); its test files are the unpaired test pairs.

SHAPES_SEED = 20170330  # fixed, not cfg.seed: the data are the same on every machine
SHAPES_SIZE = 64
STRIPE_PERIOD = 8.0
SHAPES_TRAIN, SHAPES_TEST = 200, 50  # images per domain
_SUPERSAMPLE = 4
_SHAPE_KINDS = ('circle', 'square', 'triangle')
_STREAMS = {'trainA': 0, 'trainB': 1, 'test': 2, 'train_paired': 3}


@dataclasses.dataclass(frozen=True)
class Shape:
    """One drawing: geometry in pixels of a ``size`` image, colours in 0..255."""

    kind: str
    center: tuple
    radius: float
    rotation: float
    color: tuple
    background: tuple
    stripe_angle: float
    stripe_phase: float


def _hsv(h, s, v):
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h, s, v))


def random_shape(rng, size=SHAPES_SIZE):
    """Draws a Shape from ``rng`` (a numpy Generator), scaled to ``size``."""
    scale = size / SHAPES_SIZE
    kind = _SHAPE_KINDS[rng.integers(len(_SHAPE_KINDS))]
    radius = rng.uniform(11.0, 21.0) * scale
    margin = 1.25 * radius + 2 * scale
    center = tuple(rng.uniform(margin, size - margin, size=2))
    rotation = rng.uniform(0, 2 * math.pi)
    color = _hsv(rng.uniform(), rng.uniform(0.55, 1.0), rng.uniform(0.75, 1.0))
    background = _hsv(rng.uniform(), rng.uniform(0.0, 0.12), rng.uniform(0.86, 0.97))
    stripe_angle = rng.uniform(-math.pi / 6, math.pi / 6)
    stripe_phase = rng.uniform(0, STRIPE_PERIOD) * scale
    return Shape(kind, center, radius, rotation, color, background, stripe_angle, stripe_phase)


def _shape_mask(shape, size, ss):
    """bool [size*ss, size*ss]: the shape, drawn at ss times the resolution."""
    mask = Image.new('L', (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, r = shape.center[0] * ss, shape.center[1] * ss, shape.radius * ss
    if shape.kind == 'circle':
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        corners, reach = (4, 1.13) if shape.kind == 'square' else (3, 1.25)
        draw.polygon([(cx + reach * r * math.cos(shape.rotation + 2 * math.pi * k / corners),
                       cy + reach * r * math.sin(shape.rotation + 2 * math.pi * k / corners))
                      for k in range(corners)], fill=255)
    return np.asarray(mask) > 127


def render_shape(shape, size=SHAPES_SIZE, striped=False):
    """The PIL RGB image [size, size] of ``shape``, plain or striped; edges are
    antialiased by drawing at 4x and averaging 4x4 blocks."""
    ss = _SUPERSAMPLE
    mask = _shape_mask(shape, size, ss)
    fill = np.empty(mask.shape + (3,))
    fill[:] = shape.color
    if striped:
        y, x = (np.mgrid[0:size * ss, 0:size * ss] + 0.5) / ss
        across = x * math.cos(shape.stripe_angle) + y * math.sin(shape.stripe_angle)
        period = STRIPE_PERIOD * size / SHAPES_SIZE
        dark = np.floor((across + shape.stripe_phase) / (period / 2)) % 2 == 1
        fill[dark] = np.asarray(shape.color) * 0.12
    pixels = np.where(mask[..., None], fill, np.asarray(shape.background))
    return Image.fromarray(np.round(pixels).astype(np.uint8), 'RGB').reduce(ss)


def _shape_for(stream, index, size):
    return random_shape(np.random.default_rng([SHAPES_SEED, _STREAMS[stream], index]), size)


def _side_by_side(left, right):
    pair = Image.new('RGB', (left.width + right.width, left.height))
    pair.paste(left, (0, 0))
    pair.paste(right, (left.width, 0))
    return pair


def _write_shapes(folder, n_train, n_test, size, paired):
    """Writes the layout of generate_shapes2stripes into the existing ``folder``."""
    def save(image, sub, index):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        image.save(os.path.join(folder, sub, f'{index:04d}.png'), format='PNG')

    for i in range(n_test):
        shape = _shape_for('test', i, size)
        plain, striped = render_shape(shape, size), render_shape(shape, size, striped=True)
        if paired:
            save(_side_by_side(plain, striped), 'test', i)
        else:
            save(plain, 'testA', i)
            save(striped, 'testB', i)
    for i in range(n_train):
        if paired:
            shape = _shape_for('train_paired', i, size)
            save(_side_by_side(render_shape(shape, size), render_shape(shape, size, True)),
                 'train', i)
        else:
            save(render_shape(_shape_for('trainA', i, size), size), 'trainA', i)
            save(render_shape(_shape_for('trainB', i, size), size, True), 'trainB', i)


def generate_shapes2stripes(folder, *, n_train=None, n_test=None, size=SHAPES_SIZE,
                            paired=False):
    """Generates shapes2stripes into ``folder`` unless it exists; returns folder.

    Unpaired: trainA/, trainB/ (n_train each, default SHAPES_TRAIN), testA/,
    testB/ (n_test each, default SHAPES_TEST; pairs by file name). Paired:
    train/, test/ of plain|striped images [size, 2*size]. Deterministic: the
    same arguments give the same bytes. The files are written into a
    temporary sibling folder that is renamed into place when complete, so a
    killed run leaves no half-written dataset.
    """
    if os.path.isdir(folder):
        return folder
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f'.{os.path.basename(folder)}.tmp-', dir=parent)
    try:
        _write_shapes(scratch, SHAPES_TRAIN if n_train is None else n_train,
                      SHAPES_TEST if n_test is None else n_test, size, paired)
        os.chmod(scratch, 0o755)
        try:
            os.rename(scratch, folder)
        except OSError:
            if not os.path.isdir(folder):  # else another process finished first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def prepare_builtin(data_root, *, paired=False):
    """``<data_root>/shapes2stripes`` (or ``shapes2stripes_paired``), generated on first use."""
    folder = os.path.join(data_root, BUILTIN + ('_paired' if paired else ''))
    if not os.path.isdir(folder):
        logger.info('generating the built-in dataset %s', folder)
    return generate_shapes2stripes(folder, paired=paired)
