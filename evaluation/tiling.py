"""Translating an image tile by tile, in memory bounded by the tile size.

An image larger than the tile size is cut into tiles (``tile`` pixels
square, the last ones smaller), each translated inside a window that adds a
margin around it, and the tiles' centres are put together:

- a ResNet generator sees ``receptive_radius`` pixels around each output
  pixel (84 for CycleGAN's with 9 blocks, 93 for CUT's anti-aliased one, its
  blur layers included); with a margin that covers it, and windows that
  start at multiples of the network's stride (4: each stride-2 conv or blur
  then samples the whole image's grid, its padding falling in the margin),
  every output pixel of a tile is the one the whole image would give, so
  there is no seam;
- its instance norms are statistics of the whole image: a first pass over
  the image (or over a copy downscaled to ``stats_size`` pixels on its longer
  side, "thumbnail instance normalization", Chen et al. AAAI 2022) records
  each normalization layer's mean and variance (ops.Moments), and every tile
  is normalized with those (the generator built a second time, with reuse,
  its norms fed the recorded moments);
- a U-Net sees its whole input (``receptive_radius`` None): its windows
  overlap by the margin and are blended with weights that fall from 1 at a
  tile's edge to 0 at its window's edge (a raised cosine), which hides the
  seams; each window's output is what the U-Net gives for that window alone,
  so the result approximates the whole image's translation only as far as
  the U-Net's output depends on what lies farther away than the margin.

::

    tiled = TiledGenerator(G, training=False)       # graph building, once
    output = tiled.translate(sess, image, tile=512, stats_size=512)

Images here are float [H, W, C] with H and W multiples of the network's
``multiple`` (inference.Translator pads them).
"""

import numpy as np
import tensorflow as tf

from cyclegan_tf import ops

tf1 = tf.compat.v1


def spans(size, tile, margin, multiple):
    """[(window, core)] along one axis of ``size`` pixels (a multiple of
    ``multiple``): cores of ``tile`` pixels cover 0 ... size, each window its
    core and ``margin`` more pixels each side, within 0 ... size, widened to
    multiples of ``multiple``. Each a (start, stop) pair."""
    result = []
    for start in range(0, size, tile):
        stop = min(size, start + tile)
        low = max(0, (start - margin) // multiple * multiple)
        high = min(size, -(-(stop + margin) // multiple) * multiple)
        result.append(((low, high), (start, stop)))
    return result


def ramp(window, core):
    """float32 weights of the pixels of ``window`` (start, stop) along one
    axis: 1 in ``core``, falling as a raised cosine to 0 at the window's
    edges beyond it."""
    (low, high), (start, stop) = window, core
    index = np.arange(low, high, dtype=np.float64)
    weight = np.ones_like(index)
    for edge, end in ((start, low), (stop - 1, high - 1)):
        if edge != end:
            distance = np.clip((index - edge) / (end - edge), 0.0, 1.0)
            weight = weight * 0.5 * (1.0 + np.cos(np.pi * distance))
    return weight.astype(np.float32)


def stats_shape(height, width, stats_size, multiple, minimum):
    """(height, width) of the image the statistics are taken from: the image's
    own when it fits in ``stats_size`` pixels (or stats_size is 0), else the
    image downscaled to ``stats_size`` on its longer side, rounded to
    multiples of ``multiple`` and at least ``minimum``."""
    if stats_size == 0 or max(height, width) <= stats_size:
        return height, width
    scale = stats_size / max(height, width)

    def side(size):
        rounded = max(1, round(size * scale / multiple)) * multiple
        return max(rounded, minimum + -minimum % multiple)

    return side(height), side(width)


class TiledGenerator:
    """A generator run tile by tile with the statistics of the whole image.

    Built once into the default graph (under a reusing variable scope: the
    generator's variables are those of the inference graph): a stats pass,
    the network on the image downscaled to a fed size, recording its norms'
    moments; and a tile pass, the network on one window with those moments
    fed. ``post(x, y)`` makes the translation shown of a window ``x`` and the
    network's output ``y`` (Model.translation_of).
    """

    def __init__(self, network, *, training, post=None):
        self.network = network
        self.multiple, self.min_size = network.multiple, network.min_size
        channels = network.input_nc
        with tf.name_scope('stats'):
            self.image = tf1.placeholder(tf.float32, [1, None, None, channels], name='image')
            self.size = tf1.placeholder(tf.int32, [2], name='size')
            # Area averaging, as a thumbnail; a whole image is fed to ``small``.
            self.small = tf.image.resize(self.image, self.size, method='area')
            recorded = ops.Moments()
            network(self.small, training=training, moments=recorded)
        with tf.name_scope('tile'):
            self.window = tf1.placeholder(tf.float32, [1, None, None, channels], name='window')
            given = ops.Moments(given=True)
            y = network(self.window, training=training, moments=given)
            self.output = y if post is None else post(self.window, y)
        if recorded.layers.keys() != given.layers.keys():  # a bug of the network
            raise AssertionError(f'{network.name}: the stats and tile passes normalize '
                                 f'different layers')
        self.moments = {name: (recorded.layers[name], given.layers[name])
                        for name in recorded.layers}

    @property
    def margin(self):
        """Pixels of input around each tile: the receptive field, or a
        quarter of a U-Net's multiple (at least 32) for blending."""
        radius = self.network.receptive_radius
        if radius is None:
            radius = max(32, self.multiple // 4)
        return -(-radius // self.multiple) * self.multiple

    def record(self, sess, image, stats_size):
        """{layer: (mean, variance)}: float32 arrays [1, 1, 1, C], the moments
        of ``image`` [H, W, C] at each normalization layer, taken from it
        whole or from a thumbnail (stats_shape); {} where no norm takes its
        statistics from the image."""
        if not self.moments:
            return {}
        height, width = image.shape[:2]
        shape = stats_shape(height, width, stats_size, self.multiple, self.min_size)
        feed = ({self.small: image[None]} if shape == (height, width)
                else {self.image: image[None], self.size: shape})
        return sess.run({name: recorded for name, (recorded, _) in self.moments.items()}, feed)

    def feed(self, statistics):
        """{placeholder: value} of the tile pass for ``statistics`` (of :meth:`record`)."""
        if statistics.keys() != self.moments.keys():
            raise ValueError(f'{self.network.name}: statistics of the layers '
                             f'{sorted(statistics)}, not of {sorted(self.moments)}')
        return {placeholder: value for name, (_, given) in self.moments.items()
                for placeholder, value in zip(given, statistics[name])}

    def translate(self, sess, image, *, tile, stats_size, statistics=None, on_tile=None):
        """The translation [H, W, C_out] of ``image`` [H, W, C] (H and W
        multiples of ``multiple``) in tiles of ``tile`` pixels (rounded up to
        a multiple), its norms' statistics from ``stats_size`` (see
        :func:`stats_shape`), or ``statistics`` where given (of
        :meth:`record`: another image's, a video's first frame's). A tile as
        large as the image translates it whole. ``on_tile(done, total)``, if
        given, is called after each tile (a progress bar); where it returns
        True the translation stops there, the tiles not done left 0."""
        if statistics is None:
            statistics = self.record(sess, image, stats_size)
        feed = self.feed(statistics)
        tile = max(self.multiple, -(-tile // self.multiple) * self.multiple)
        height, width = image.shape[:2]
        blend = self.network.receptive_radius is None
        output = weights = None
        grid = [(rows, cols) for rows in spans(height, tile, self.margin, self.multiple)
                for cols in spans(width, tile, self.margin, self.multiple)]
        for done, ((rows, cores_r), (cols, cores_c)) in enumerate(grid, 1):
            feed[self.window] = image[None, rows[0]:rows[1], cols[0]:cols[1]]
            y = sess.run(self.output, feed)[0]
            if output is None:
                output = np.zeros([height, width, y.shape[-1]], np.float32)
                weights = np.zeros([height, width, 1], np.float32) if blend else None
            if blend:
                w = ramp(rows, cores_r)[:, None, None] * ramp(cols, cores_c)[None, :, None]
                output[rows[0]:rows[1], cols[0]:cols[1]] += w * y
                weights[rows[0]:rows[1], cols[0]:cols[1]] += w
            else:
                output[cores_r[0]:cores_r[1], cores_c[0]:cores_c[1]] = y[
                    cores_r[0] - rows[0]:cores_r[1] - rows[0],
                    cores_c[0] - cols[0]:cores_c[1] - cols[0]]
            if on_tile is not None and on_tile(done, len(grid)):
                break
        return np.divide(output, weights, out=output, where=weights > 0) if blend else output
