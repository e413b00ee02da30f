"""Images, and the tf.data input pipeline of the image-to-image models.

Single images, for sample.py: :func:`load_image`, :func:`to_uint8`; CIE
Lab: :func:`rgb_to_lab`, :func:`lab_to_rgb` (numpy), :func:`tf_rgb_to_lab`,
:func:`tf_lab_to_rgb` (TensorFlow) and :func:`colorization_to_rgb`.

The input pipeline is built in the current default graph, before it is
finalized, and read with ``sess.run``::

    pipeline = pipeline.input_pipeline(cfg, 'train', root=folder, layout=UNALIGNED)
    batch = sess.run(pipeline.next_batch)  # {'A', 'B', 'A_paths', 'B_paths'}

It follows the official datasets (pytorch-CycleGAN-and-pix2pix, data/):

* unaligned (cycle_gan): an epoch is max(|A|, |B|) examples; A in a fresh
  random order each epoch (with wrap-around when B is larger), B drawn at
  random (serial_batches: both in order);
* aligned (pix2pix): each file is A|B side by side, split into halves that
  get the same crop and flip; an epoch is every file once, shuffled;
* colorization: RGB files -> A = L/50 - 1 [.., 1], B = ab/110 [.., 2].

After ``direction == 'BtoA'`` the swap is done: 'A' is always the model's
input, with ``input_nc`` channels, 'B' its target, with ``output_nc``.
(Deviation: the official unaligned and aligned datasets swap in the model's
set_input instead.) Preprocessing is the official get_transform (resize or
scale_width, random crop, random horizontal flip, normalization to [-1, 1]),
with PIL's bicubic filter reproduced by antialiased bicubic resizing.

Each epoch is batched on its own (its last batch may be smaller, as with the
official drop_last=False) and the epochs repeat forever (or ``epochs`` times).
Randomness is stateless, derived from cfg.seed, the epoch and the position in
the epoch, so a seed gives the same batches whatever the number of threads.

Decoding: TensorFlow's decoders for .jpg/.jpeg/.png (JPEG with the accurate
integer IDCT, which is what PIL uses), PIL through tf.numpy_function for
.bmp/.tif/.tiff (TensorFlow reads no TIFF and misreads palette BMPs). A file
that fails to decode is skipped: the example is dropped and a warning names
the file, once. A domain without a single readable image is a DatasetError
naming its folder, at build time.
"""

import dataclasses
import logging
import math
import os
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from cyclegan_tf.data.layouts import (
    ALIGNED,
    COLORIZATION,
    IMAGE_EXTENSIONS,
    UNALIGNED,
    DatasetError,
    has_images,
    list_images,
    no_images_message,
)

tf1 = tf.compat.v1
logger = logging.getLogger(__name__)
# The dataset functions are plain graph code: no AutoGraph rewriting.
_graph_function = tf.autograph.experimental.do_not_convert

PREPROCESS_MODES = ('resize_and_crop', 'crop', 'scale_width', 'scale_width_and_crop', 'none')

# Decoder ids, by file extension (see the module docstring).
TF_JPEG, TF_PNG, PIL_DECODER = 0, 1, 2
_DECODERS = {'.jpg': TF_JPEG, '.jpeg': TF_JPEG, '.png': TF_PNG}


# ---------------------------------------------------------------------------
# Single images (numpy).

def pil_uint8(img, channels):
    """uint8 [H, W, channels] (channels 1 or 3) of a PIL image of any mode."""
    if img.mode.startswith('I;16') or img.mode == 'I':
        # PIL's own conversion clips 16-bit values at 255; scale them instead.
        wide = np.asarray(img, dtype=np.float64) / 257.0
        img = Image.fromarray(np.clip(np.round(wide), 0, 255).astype(np.uint8), 'L')
    elif img.mode == 'F':
        img = Image.fromarray(np.clip(np.round(np.asarray(img)), 0, 255).astype(np.uint8), 'L')
    rgb = img.convert('RGB')  # drops alpha, like the official .convert('RGB')
    if channels == 1:
        return np.asarray(rgb.convert('L'))[..., None]  # ITU-R 601 luma, as Grayscale(1)
    return np.asarray(rgb)


def read_uint8(path, channels=3):
    """uint8 [H, W, channels] of the image file at ``path`` (PIL, any mode)."""
    with Image.open(path) as img:
        return pil_uint8(img, channels)


def load_image(path, channels=3):
    """float32 [H, W, channels] in [-1, 1] of the image file at ``path``.

    Grayscale, palette, RGBA (alpha dropped), CMYK and 16-bit files become RGB,
    or L (ITU-R 601 luma) when channels == 1. No resizing.
    """
    return read_uint8(path, channels).astype(np.float32) / 127.5 - 1.0


def to_uint8(image):
    """uint8 of an array in [-1, 1], rounded and clipped. (The official
    tensor2im truncates instead of rounding.)"""
    return np.clip(np.round((np.asarray(image, np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8)


# ---------------------------------------------------------------------------
# CIE Lab (D65), the formulas of skimage.color.rgb2lab / lab2rgb, which the
# official colorization dataset uses.

_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_WHITE = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb):
    """Lab [..., 3] (L in 0..100) of sRGB ``rgb`` [..., 3] in [0, 1] (numpy)."""
    rgb = np.asarray(rgb, np.float64)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ _XYZ_FROM_RGB.T / _WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
    """sRGB [..., 3] in [0, 1] (clipped) of ``lab`` [..., 3] (numpy)."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, np.maximum(fy - lab[..., 2] / 200.0, 0.0)], -1)
    xyz = np.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / 7.787) * _WHITE
    linear = xyz @ _RGB_FROM_XYZ.T
    rgb = np.where(linear > 0.0031308,
                   1.055 * np.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return np.clip(rgb, 0.0, 1.0)


def tf_rgb_to_lab(rgb):
    """:func:`rgb_to_lab` in TensorFlow: float32 [..., 3] in [0, 1] -> Lab [..., 3]."""
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    linear = tf.where(rgb > 0.04045, tf.pow((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4),
                      rgb / 12.92)
    xyz = tf.tensordot(linear, tf.constant(_XYZ_FROM_RGB.T, tf.float32), 1) / _WHITE.astype(
        np.float32)
    f = tf.where(xyz > 0.008856, tf.pow(tf.maximum(xyz, 0.008856), 1.0 / 3.0),
                 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def tf_lab_to_rgb(lab):
    """:func:`lab_to_rgb` in TensorFlow: float32 Lab [..., 3] -> [..., 3] in [0, 1]."""
    lab = tf.convert_to_tensor(lab, tf.float32)
    lightness, a, b = tf.unstack(lab, axis=-1)
    fy = (lightness + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, tf.maximum(fy - b / 200.0, 0.0)], axis=-1)
    xyz = tf.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / 7.787) * _WHITE.astype(np.float32)
    linear = tf.tensordot(xyz, tf.constant(_RGB_FROM_XYZ.T, tf.float32), 1)
    rgb = tf.where(linear > 0.0031308,
                   1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1 / 2.4) - 0.055, 12.92 * linear)
    return tf.clip_by_value(rgb, 0.0, 1.0)


def colorization_to_rgb(lightness, ab):
    """RGB [..., 3] in [-1, 1] from the colorization model's normalized
    ``lightness`` (L/50 - 1, [..., 1]) and ``ab`` (ab/110, [..., 2]) (numpy)."""
    lab = np.concatenate([(np.asarray(lightness) + 1.0) * 50.0, np.asarray(ab) * 110.0], -1)
    return (lab_to_rgb(lab) * 2.0 - 1.0).astype(np.float32)


# ---------------------------------------------------------------------------
# Preprocessing (TensorFlow), the official base_dataset.get_transform.

@dataclasses.dataclass(frozen=True)
class Transform:
    """The preprocessing settings: ``preprocess`` mode, sizes, random flip.

    Where the mode does not crop ('none', 'scale_width'), the loaded image is
    resized to heights and widths that are multiples of ``multiple`` and at
    least ``min_size`` (the networks' needs: Model.training_sizes)."""

    preprocess: str
    load_size: int
    crop_size: int
    flip: bool
    multiple: int = 4
    min_size: int = 4

    @classmethod
    def from_config(cls, cfg, sizes=(4, 4)):
        """The transform of ``cfg``; ``sizes``: (multiple, min_size)."""
        if cfg.preprocess not in PREPROCESS_MODES:
            raise DatasetError(f'unknown preprocess mode {cfg.preprocess!r}')
        if cfg.load_size < 1 or cfg.crop_size < 1:
            raise DatasetError(f'load_size and crop_size must be positive, got '
                               f'{cfg.load_size} and {cfg.crop_size}')
        return cls(cfg.preprocess, cfg.load_size, cfg.crop_size, not cfg.no_flip, *sizes)

    @property
    def static_size(self):
        """(height, width) of every output image, None where it depends on the file."""
        if 'crop' in self.preprocess:
            return self.crop_size, self.crop_size
        if self.preprocess == 'scale_width':  # the load size rounded as _network_size does
            rounded = round(self.load_size / self.multiple) * self.multiple
            return None, max(rounded, -(-self.min_size // self.multiple) * self.multiple)
        return None, None


def _resize(image, height, width):
    """Bicubic resize of float32 [H, W, C] to [height, width, C], as PIL's:
    antialiased when shrinking (a plain bicubic is the same when enlarging, and
    four times cheaper). A no-op when the size is already right (the official
    code returns the image unchanged). Not clipped: apply_transform clips once."""
    shape = tf.shape(image)
    size = tf.stack([height, width])

    def resize(antialias):
        return lambda: tf.image.resize(image, size, method='bicubic', antialias=antialias)

    shrink = tf.logical_or(tf.less(height, shape[0]), tf.less(width, shape[1]))
    same = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
    return tf.cond(same, lambda: image, lambda: tf.cond(shrink, resize(True), resize(False)))


def _network_size(size, multiple, minimum):
    """The official __make_power_2: ``size`` rounded to a multiple of
    ``multiple`` (4 there; Python's round() rounds half to even, as tf.round
    does). Deviation: at least ``minimum`` rounded up to the multiple (the
    official makes 1 px into 0, and images too small for the networks crash)."""
    rounded = tf.cast(tf.round(tf.cast(size, tf.float64) / multiple), tf.int32) * multiple
    return tf.maximum(rounded, -(-minimum // multiple) * multiple)


def _loaded_size(height, width, t):
    """(height, width), int32 scalars: the size after the resize step of ``t``."""
    if t.preprocess == 'resize_and_crop':
        return tf.constant(t.load_size), tf.constant(t.load_size)
    if t.preprocess.startswith('scale_width'):
        # Official __scale_width: width to load_size, height int(max(load_size
        # * h / w, crop_size)).
        scaled = t.load_size * tf.cast(height, tf.float64) / tf.cast(width, tf.float64)
        height = tf.cast(tf.maximum(scaled, float(t.crop_size)), tf.int32)
        if t.preprocess == 'scale_width':
            # Deviation: rounded as 'none' is (the official does not round,
            # and a height that is not a multiple of 4 fails at the first step).
            return (_network_size(height, t.multiple, t.min_size),
                    _network_size(t.load_size, t.multiple, t.min_size))
        return height, tf.constant(t.load_size)
    if t.preprocess == 'none':
        return (_network_size(height, t.multiple, t.min_size),
                _network_size(width, t.multiple, t.min_size))
    return height, width  # crop; native (NATIVE, for sampling)


def _random_crop(image, size, seed):
    """A random [size, size, C] crop of float32 [H, W, C], at a position drawn
    from ``seed``. Deviation: an image smaller than the crop is first enlarged
    (bicubic, keeping its aspect ratio) to cover it; the official RandomCrop
    raises and its __crop pads with black."""
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.maximum(1.0, tf.maximum(size / height, size / width))
    new_height = tf.maximum(size, tf.cast(tf.round(height * scale), tf.int32))
    new_width = tf.maximum(size, tf.cast(tf.round(width * scale), tf.int32))
    image = _resize(image, new_height, new_width)
    seed_y, seed_x = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    y = tf.random.stateless_uniform([], seed_y, 0, new_height - size + 1, dtype=tf.int32)
    x = tf.random.stateless_uniform([], seed_x, 0, new_width - size + 1, dtype=tf.int32)
    return image[y:y + size, x:x + size]


def _random_flip(image, seed):
    """float32 [H, W, C] mirrored left-right with probability 1/2."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)


def apply_transform(images, t, seed):
    """One random draw of the transform ``t``, shared by all ``images``.

    Args:
      images: list of float32 [H, W, C_i], values 0..255, all of one size
        (the halves of an aligned pair, or one image).
      t: a Transform.
      seed: int64 [2], the stateless seed of this draw.
    Returns:
      the list transformed, float32 [h, w, C_i], values 0..255, with h and w
      static where t.static_size knows them.
    """
    channels = [im.shape[-1] for im in images]
    stacked = tf.concat(images, axis=-1) if len(images) > 1 else images[0]
    shape = tf.shape(stacked)
    stacked = _resize(stacked, *_loaded_size(shape[0], shape[1], t))
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if 'crop' in t.preprocess:
        stacked = _random_crop(stacked, t.crop_size, crop_seed)
    if t.flip:
        stacked = _random_flip(stacked, flip_seed)
    stacked = tf.clip_by_value(stacked, 0.0, 255.0)  # bicubic overshoots; PIL clips
    stacked.set_shape(list(t.static_size) + [sum(channels)])
    return tf.split(stacked, channels, axis=-1) if len(images) > 1 else [stacked]


def _normalize(image):
    """0..255 -> [-1, 1]."""
    return image / 127.5 - 1.0


def _to_channels(image, channels):
    """float32 [H, W, 3] -> [H, W, channels]; 1 is PIL's 'L' (ITU-R 601 luma,
    rounded), as the official transforms.Grayscale(1)."""
    if channels == 3:
        return image
    luma = tf.tensordot(image, tf.constant([0.299, 0.587, 0.114]), 1)
    return tf.round(luma)[..., None]


# ---------------------------------------------------------------------------
# Decoding.

def decoder_of(path):
    """The decoder id of an image file: TF_JPEG, TF_PNG or PIL_DECODER."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in IMAGE_EXTENSIONS:
        raise ValueError(f'not an image file name: {path}')
    return _DECODERS.get(extension, PIL_DECODER)


def _pil_rgb(path):
    return read_uint8(path.decode() if isinstance(path, bytes) else path, 3)


def decode(path, decoder):
    """uint8 [H, W, 3] of the file ``path`` (string scalar). ``decoder`` is a
    decoder id, or an int32 scalar tensor of one when a folder mixes formats."""
    def jpeg():
        return tf.io.decode_jpeg(tf.io.read_file(path), channels=3,
                                 dct_method='INTEGER_ACCURATE')

    def png():
        return tf.io.decode_png(tf.io.read_file(path), channels=3)  # 16 bit -> 8

    def pil():
        image = tf.numpy_function(_pil_rgb, [path], tf.uint8, stateful=False)
        image.set_shape([None, None, 3])
        return image

    branches = [jpeg, png, pil]
    if isinstance(decoder, int):
        return branches[decoder]()
    return tf.switch_case(decoder, branches)


def unreadable_reason(path):
    """Why PIL cannot read the image file ``path`` (one line), or None."""
    try:
        with Image.open(path) as img:
            img.load()
        return None
    except Exception as e:  # PIL raises many kinds
        return ' '.join(str(e).split()) or type(e).__name__


class SkipLog:
    """Warns (logging), once per file and naming it, about skipped images."""

    def __init__(self):
        self.warned = set()

    def warn(self, path, reason):
        if path not in self.warned:
            self.warned.add(path)
            logger.warning('skipping unreadable image %s (%s)', path, reason)

    def __call__(self, all_lost, *columns):
        """Called from the graph with the files of the dropped examples, one
        column per key (row i of every column: the files of one example)."""
        rows = [[p.decode() if isinstance(p, bytes) else str(p) for p in row]
                for row in zip(*columns)]
        for row in rows:
            bad = False
            for path in dict.fromkeys(row):
                reason = None if path in self.warned else unreadable_reason(path)
                if reason:
                    self.warn(path, reason)
                bad = bad or bool(reason) or path in self.warned
            if not bad:  # PIL reads them all: one of them is beyond TensorFlow
                for path in row:
                    self.warn(path, 'TensorFlow could not decode this example')
        if all_lost:
            raise DatasetError(f'no image of a whole epoch could be read (last: {rows[-1]})')
        return np.int64(len(rows))


def skip_unreadable(examples, paths, size, skip_log):
    """Drops the examples that failed (a decoding error) and reports their
    files to ``skip_log``.

    Args:
      examples: dataset of dicts with 'pos', int64 0..size-1 in order.
      paths: dict name -> string [size], the files read at each position.
      size: number of examples; skip_log: a SkipLog.
    Returns:
      the dataset of the examples that decoded, in order.
    """
    # A gap in 'pos' after ignore_errors names the lost examples; an end marker
    # at pos == size catches a gap at the very end.
    end = {key: tf.fill([d or 0 for d in spec.shape], tf.constant('', spec.dtype)
                        if spec.dtype == tf.string else tf.constant(0, spec.dtype))
           for key, spec in examples.element_spec.items()}
    end['pos'] = tf.constant(size, tf.int64)
    examples = examples.ignore_errors().concatenate(tf.data.Dataset.from_tensors(end))

    @_graph_function
    def check(expected, example):
        pos = example['pos']

        def report():
            lost = [column[expected:pos] for column in paths.values()]
            all_lost = tf.equal(expected, 0) & tf.equal(pos, size)
            return tf.numpy_function(skip_log, [all_lost] + lost, tf.int64)

        reported = tf.cond(pos > expected, report, lambda: tf.constant(0, tf.int64))
        with tf.control_dependencies([reported]):
            example = dict(example, pos=tf.identity(pos))
        return pos + 1, example

    examples = examples.scan(tf.constant(0, tf.int64), check)
    return examples.filter(_graph_function(lambda example: example['pos'] < size))


# ---------------------------------------------------------------------------
# The input pipeline.

@dataclasses.dataclass(frozen=True)
class Column:
    """The files of one key of the examples: their folder, paths and decoders."""

    folder: str
    paths: tuple
    decoders: tuple

    @property
    def decoder(self):
        """The decoder id when every file has the same, else None."""
        return self.decoders[0] if len(set(self.decoders)) == 1 else None


def _column(folders, max_dataset_size, skip_log):
    """The Column of the images under ``folders`` (a list, read together);
    raises DatasetError naming the folder when none is readable."""
    paths = [p for folder in folders for p in list_images(folder, max_dataset_size)]
    name = folders[0] if len(folders) == 1 else ' and '.join(folders)
    if not paths:
        raise DatasetError(no_images_message(folders[0]))
    for path in paths:  # usually the first one: a cheap check that the domain is usable
        reason = unreadable_reason(path)
        if reason is None:
            break
        skip_log.warn(path, reason)
    else:
        raise DatasetError(f'no readable image in {name} ({len(paths)} files)')
    return Column(name, tuple(paths), tuple(decoder_of(p) for p in paths))


def _columns(root, split, layout, cfg, skip_log):
    """dict 'A', 'B' (unaligned, after the direction swap) or 'AB' -> Column."""
    n = cfg.max_dataset_size
    if layout == UNALIGNED:
        a, b = (split + 'B', split + 'A') if cfg.direction == 'BtoA' else (
            split + 'A', split + 'B')
        return {'A': _column([os.path.join(root, a)], n, skip_log),
                'B': _column([os.path.join(root, b)], n, skip_log)}
    folders = [os.path.join(root, split)]
    if layout == COLORIZATION and not has_images(folders[0]):
        # Deviation: an unaligned folder serves colorization too (both domains).
        domains = [os.path.join(root, split + d) for d in 'AB']
        folders = [f for f in domains if has_images(f)] or folders
    return {'AB': _column(folders, n, skip_log)}


def _channels(cfg, layout):
    """(channels of A, channels of B) of the examples; checks the config."""
    if layout == COLORIZATION:
        if (cfg.input_nc, cfg.output_nc, cfg.direction) != (1, 2, 'AtoB'):
            raise DatasetError(f'colorization translates L to ab: it needs input_nc=1, '
                               f'output_nc=2, direction AtoB; got {cfg.input_nc}, '
                               f'{cfg.output_nc}, {cfg.direction}')
        return 1, 2
    for name in ('input_nc', 'output_nc'):
        if getattr(cfg, name) not in (1, 3):
            raise DatasetError(f'{name} must be 1 or 3 for images, got {getattr(cfg, name)}')
    return cfg.input_nc, cfg.output_nc


def _epoch_size(columns):
    return max(len(c.paths) for c in columns.values())


def _seed(seed, salt):
    return tf.constant([seed, salt], tf.int64)


def _epoch_examples(epoch, columns, *, serial, seed):
    """The examples of one epoch, in order: dict of 1-D tensors [size].

    'pos' (0..size-1), 'seed' (int64 [size, 2], this epoch's base seed), and
    per key of ``columns`` the file paths (and decoder ids if mixed).
    Unaligned (keys 'A', 'B'): A in a random order of range(size) modulo |A|,
    B drawn at random (or both in order when ``serial``), as the official.
    """
    size = _epoch_size(columns)
    fold = tf.random.experimental.stateless_fold_in
    if serial:
        order = tf.range(size, dtype=tf.int64)
    else:
        noise = tf.random.stateless_uniform([size], fold(_seed(seed, 1), epoch))
        order = tf.cast(tf.argsort(noise), tf.int64)
    indices = {key: order % len(column.paths) for key, column in columns.items()}
    if 'B' in columns and not serial:
        indices['B'] = tf.random.stateless_uniform(
            [size], fold(_seed(seed, 2), epoch), 0, len(columns['B'].paths), dtype=tf.int64)
    examples = {'pos': tf.range(size, dtype=tf.int64),
                'seed': tf.tile(fold(_seed(seed, 3), epoch)[None], [size, 1])}
    for key, column in columns.items():
        examples[key] = tf.gather(tf.constant(column.paths), indices[key])
        if column.decoder is None:
            examples[key + '_decoder'] = tf.gather(tf.constant(column.decoders), indices[key])
    return examples


def _decoded(example, key, columns):
    """float32 [H, W, 3] of the file of ``key`` in ``example``."""
    decoder = columns[key].decoder
    decoder = example[key + '_decoder'] if decoder is None else decoder
    return tf.cast(decode(example[key], decoder), tf.float32)


def _unaligned_example(example, columns, t, channels):
    seeds = tf.unstack(tf.random.experimental.stateless_split(example['seed'], 2))
    out = {'pos': example['pos'], 'A_paths': example['A'], 'B_paths': example['B']}
    for key, seed, nc in zip('AB', seeds, channels):
        image = _to_channels(_decoded(example, key, columns), nc)
        out[key] = _normalize(apply_transform([image], t, seed)[0])
    return out


def model_input(rgb, layout, channels):
    """The model's input [H, W, channels] in [-1, 1] of an RGB image, float32
    [H, W, 3] of values 0..255, with training's conversions: ``channels`` 1
    is the rounded luma; the COLORIZATION layout gives L / 50 - 1. For images
    that come from memory rather than files (inference.Translator)."""
    if layout == COLORIZATION:
        return tf_rgb_to_lab(tf.round(rgb) / 255.0)[..., :1] / 50.0 - 1.0
    return _normalize(_to_channels(rgb, channels))


def _single_example(example, columns, t, channels):
    (key,) = columns
    image = _to_channels(_decoded(example, key, columns), channels[0])
    return {'pos': example['pos'], key: _normalize(apply_transform([image], t,
                                                                   example['seed'])[0]),
            key + '_paths': example[key]}


def _aligned_example(example, columns, t, channels, swap):
    pair = _decoded(example, 'AB', columns)
    half = tf.shape(pair)[1] // 2
    # A 1 px wide file has no halves: an error, so skip_unreadable drops it.
    with tf.control_dependencies([tf.debugging.assert_positive(
            half, message='an A|B pair needs a width of at least 2 px')]):
        pair = tf.identity(pair)
    # Deviation: of an odd width, B drops its last column, so the halves
    # match in size (the official B is one pixel wider, then resized).
    a, b = pair[:, :half], pair[:, half:2 * half]
    if swap:
        a, b = b, a
    a, b = apply_transform([_to_channels(a, channels[0]), _to_channels(b, channels[1])], t,
                           example['seed'])
    return {'pos': example['pos'], 'A': _normalize(a), 'B': _normalize(b),
            'A_paths': example['AB'], 'B_paths': example['AB']}


def _colorization_example(example, columns, t):
    rgb = apply_transform([_decoded(example, 'AB', columns)], t, example['seed'])[0]
    lab = tf_rgb_to_lab(tf.round(rgb) / 255.0)  # the official converts a uint8 image
    return {'pos': example['pos'], 'A': lab[..., :1] / 50.0 - 1.0, 'B': lab[..., 1:] / 110.0,
            'A_paths': example['AB'], 'B_paths': example['AB']}


def _example_fn(layout, columns, t, channels, swap):
    """The map function: an example of _epoch_examples -> decoded images."""
    @_graph_function
    def example_fn(example):
        example = dict(example, seed=tf.random.experimental.stateless_fold_in(
            example['seed'], example['pos']))
        if layout == SINGLE:
            return _single_example(example, columns, t, channels)
        if layout == UNALIGNED:
            return _unaligned_example(example, columns, t, channels)
        if layout == ALIGNED:
            return _aligned_example(example, columns, t, channels, swap)
        return _colorization_example(example, columns, t)
    return example_fn


SINGLE = 'single'  # the official 'single' dataset mode: images of one domain, no target


class InputPipeline:
    """Batches of examples read from image files, built in the current default graph.

    Made by :func:`input_pipeline` (training: a split of a dataset, random
    crops and flips, epochs without end) and :func:`test_pipeline` (sample.py
    and the tools: given files in order, once, as they are): one data path.

    Attributes:
      next_batch: dict of tensors, a new batch at each sess.run:
        'A': float32 [N, H, W, input_nc] in [-1, 1], the model's input domain;
        'B': float32 [N, H, W, output_nc] in [-1, 1], the target domain
          (absent for single images);
        'A_paths', 'B_paths': string [N], their files (aligned: the same file).
        N is batch_size except in the last batch of an epoch; H = W = crop_size,
        static, when the preprocess mode crops.
      steps_per_epoch: ceil(epoch_size / batch_size).
      epoch_size: max(|A|, |B|) (unaligned) or the number of files.
      columns: dict 'A', 'B' (unaligned, single) or 'AB' -> Column (folder, paths).
      dataset: the tf.data.Dataset of the batches.
      skip_log: the SkipLog naming skipped files.
    """

    def __init__(self, cfg, layout, columns, transform, *, channels, skip_log, batch_size,
                 serial, epochs=None):
        self.layout, self.columns, self.transform = layout, columns, transform
        self.channels, self.skip_log = channels, skip_log
        self.epoch_size = _epoch_size(columns)
        self.steps_per_epoch = math.ceil(self.epoch_size / batch_size)
        self.dataset = self._batches(cfg, batch_size, serial, epochs)
        batch = tf1.data.make_one_shot_iterator(self.dataset).get_next()
        self.next_batch = {key: batch[key] for key in ('A', 'B', 'A_paths', 'B_paths')
                           if key in batch}

    def _batches(self, cfg, batch_size, serial, epochs):
        threads = cfg.num_threads if cfg.num_threads > 0 else tf.data.AUTOTUNE
        example_fn = _example_fn(self.layout, self.columns, self.transform, self.channels,
                                 cfg.direction == 'BtoA')

        @_graph_function
        def epoch_batches(epoch):
            examples = _epoch_examples(epoch, self.columns, serial=serial, seed=cfg.seed)
            decoded = tf.data.Dataset.from_tensor_slices(examples).map(
                example_fn, num_parallel_calls=threads, deterministic=True)
            paths = {key: examples[key] for key in self.columns}
            decoded = skip_unreadable(decoded, paths, self.epoch_size, self.skip_log)
            return decoded.batch(batch_size)

        epoch_ids = tf.data.Dataset.counter() if epochs is None else tf.data.Dataset.range(
            epochs)
        return epoch_ids.flat_map(epoch_batches).prefetch(tf.data.AUTOTUNE)


def input_pipeline(cfg, split='train', *, root, layout, epochs=None, sizes=(4, 4)):
    """The training InputPipeline of ``split`` of the dataset folder
    ``root``: the official preprocessing (cfg.preprocess, random crop and
    flip), batches of cfg.batch_size, the unaligned B drawn at random unless
    serial_batches.

    Args:
      cfg: an ImageConfig.
      split: 'train', 'test', 'val', ...
      root: the dataset folder (datasets.prepare finds, downloads or
        generates it).
      layout: its layout, the model's (UNALIGNED, ALIGNED, COLORIZATION:
        the ``data`` of its entry in registry.py).
      epochs: None repeats forever; else the iterator ends (OutOfRangeError)
        after that many epochs.
      sizes: (multiple, minimum) of the images where the mode does not crop
        (Transform); Model.training_sizes gives the networks'.
    """
    skip_log = SkipLog()
    return InputPipeline(cfg, layout, _columns(root, split, layout, cfg, skip_log),
                         Transform.from_config(cfg, sizes), channels=_channels(cfg, layout),
                         skip_log=skip_log, batch_size=cfg.batch_size,
                         serial=cfg.serial_batches, epochs=epochs)


# sample.py's transform: images as they are (the translator pads them to the
# networks' multiple), no flip.
NATIVE = Transform('native', 0, 0, False)


def test_transform(load_size=0):
    """The transform of translating: NATIVE, or with ``load_size`` the
    official test's resize to load_size x load_size (its load_size = crop_size)."""
    return NATIVE if not load_size else Transform('resize_and_crop', load_size, load_size,
                                                  False)


def test_pipeline(cfg, files, *, layout, transform=NATIVE):
    """Given image files, in order, once, one example per batch (sizes may
    differ): the data path of sample.py and the tools. Decoding, channels,
    the colorization conversion and the normalization are training's.

    Args:
      cfg: the run's ImageConfig.
      files: dict key -> list of paths:
        {'A': [...]} or {'B': [...]}: single images of that domain (A has
          input_nc channels, B output_nc), the official 'single' mode;
          the batches hold that key and its paths only;
        {'A': [...], 'B': [...]}: pairs by position, an input and its ground
          truth (an unaligned split whose domains pair up by file name);
        {'AB': [...]}: files of the model's own ``layout`` (pix2pix A|B
          pairs, colorization photos), split as in training.
      transform: NATIVE, or :func:`test_transform`'s.
    Returns:
      an InputPipeline whose iterator ends after the last file. A file that
      cannot be decoded is skipped with a warning naming it.
    """
    skip_log = SkipLog()
    keys = tuple(sorted(files))
    layout = {('A',): SINGLE, ('B',): SINGLE, ('A', 'B'): UNALIGNED}.get(keys) or layout
    if any(not paths for paths in files.values()):
        raise DatasetError('no images to read')
    if keys == ('A', 'B') and len(files['A']) != len(files['B']):
        raise ValueError('pairs need as many A files as B files')
    columns = {key: Column(os.path.dirname(paths[0]), tuple(paths),
                           tuple(decoder_of(p) for p in paths))
               for key, paths in files.items()}
    if layout == SINGLE:
        channels = (cfg.input_nc if keys == ('A',) else cfg.output_nc,)
    else:
        channels = _channels(cfg, layout)
    # cfg.direction only swaps the halves of aligned pairs here: the files
    # of the other layouts are given in the model's order.
    return InputPipeline(cfg, layout, columns, transform, channels=channels,
                         skip_log=skip_log, batch_size=1, serial=True, epochs=1)


# ---------------------------------------------------------------------------
# Measuring the pipeline.

def pipeline_throughput(cfg, split='train', *, root, layout, num_batches=100, warmup=10):
    """Times the input pipeline alone, in a graph of its own.

    Returns dict: 'examples_per_second' (an example is an A and a B image, or
    one pair file), 'files_per_second' (files decoded), 'cpu_ms_per_example'
    (CPU time of the whole process, all threads: what the pipeline takes from
    a training run on the same CPU), 'seconds', 'batches'.
    """
    with tf.Graph().as_default():
        pipeline = input_pipeline(cfg, split, root=root, layout=layout)
        with tf1.Session() as sess:
            for _ in range(warmup):
                sess.run(pipeline.next_batch)
            start, cpu_start, examples = time.perf_counter(), time.process_time(), 0
            for _ in range(num_batches):
                examples += len(sess.run(pipeline.next_batch)['A'])
            seconds = time.perf_counter() - start
            cpu_seconds = time.process_time() - cpu_start
    files = examples * len(pipeline.columns)
    return {'examples_per_second': examples / seconds, 'files_per_second': files / seconds,
            'cpu_ms_per_example': 1000 * cpu_seconds / examples, 'seconds': seconds,
            'batches': num_batches}
