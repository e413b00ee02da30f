"""The FID Inception-v3: 2048-d pool_3 features of images, as FID and KID use them.

The network is the TensorFlow graph ``inception-2015-12-05`` that TTUR,
pytorch-fid and torch-fidelity all use, rebuilt as graph code with the
weights of pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``. It is
torchvision's Inception-v3 with pytorch-fid's FID variants of the blocks:

* every conv is pytorch-fid's BasicConv2d: a conv without bias, a batch norm
  in inference mode with epsilon 1e-3 and no scale (the TF graph has none;
  the file's ``bn.weight`` are all 1, which :func:`check_weights` insists on),
  and a ReLU;
* the average pools of the A, C and E blocks do not count the padding
  (PyTorch's count_include_pad=False, TensorFlow's SAME average pool), and
  the last block (Mixed_7c, pytorch-fid's FIDInceptionE_2) max-pools instead.

Variables are named after the file's keys, '.' -> '/', inside the network's
scope: ``Mixed_5b.branch5x5_2.conv.weight`` is ``FID_InceptionV3/Mixed_5b/
branch5x5_2/conv/weight`` (HWIO, the file's OIHW transposed), so loading is a
name map. They are not trainable: the network is only ever evaluated.

Images go in as values 0..255 (uint8 or float, any size, RGB or grayscale),
are converted to RGB, resized to 299x299 by ``tf.compat.v1.image.
resize_bilinear(align_corners=False)`` and mapped to (x - 128) / 128, as the
TF graph's own input ops did (:func:`preprocess`).

The weights are downloaded on first use into the cache folder
(:func:`cache_dir`) from pytorch-fid's release with download.download
(resumable, size-checked), and their sha256 checked before the file gets its
final name (:func:`default_weights`).

:class:`FeatureExtractor` holds the network in a graph and session of its
own, so that no training graph saves, trains or initializes its 24M weights.
"""

import concurrent.futures
import contextlib
import hashlib
import logging
import os
import shutil
import time

import numpy as np
import tensorflow as tf
import tqdm

from cyclegan_tf import modules
from cyclegan_tf.data import download, layouts
from cyclegan_tf.ops import scope

tf1 = tf.compat.v1
logger = logging.getLogger(__name__)

WEIGHTS_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
               'pt_inception-2015-12-05-6726825d.pth')
WEIGHTS_FILE = 'pt_inception-2015-12-05-6726825d.pth'
# pytorch-fid names the file after the first 8 digits of its sha256 (torch.hub's
# check_hash convention); the full digest, 95,628,359 bytes, as torch-fidelity
# and others pin it.
WEIGHTS_SHA256 = '6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2'

INPUT_SIZE = 299
FEATURES = 2048
BN_EPSILON = 1e-3
SCOPE = 'FID_InceptionV3'
# Keys of the file that the network does not use: the 1008-way classifier
# (NaN in some copies) and PyTorch's batch-norm step counters.
UNUSED_KEYS = ('fc.weight', 'fc.bias')
UNUSED_SUFFIX = '.num_batches_tracked'


class WeightsError(layouts.DatasetError):
    """The FID Inception weights are missing, unreadable or not the right ones.

    A DatasetError: the weights are data fetched like a dataset (by
    download.download, whose errors are DatasetErrors too), so every script
    that reports a bad dataset in one line reports bad weights the same way.
    """


# ---------------------------------------------------------------------------
# Ops.

def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _padding(kernel_size, stride, pad):
    """TensorFlow's padding for PyTorch's Conv2d(kernel_size, stride, padding=pad)."""
    if pad == (0, 0):
        return 'VALID'
    if stride == 1 and pad == tuple((k - 1) // 2 for k in kernel_size) and all(
            k % 2 for k in kernel_size):
        return 'SAME'  # odd kernel, stride 1: SAME pads (k - 1) / 2 on each side
    return [[0, 0], [pad[0], pad[0]], [pad[1], pad[1]], [0, 0]]


@scope
def conv_bn_relu(x, filters, kernel_size, stride=1, *, pad=0):
    """pytorch-fid's BasicConv2d: Conv2d(kernel_size, stride, padding=pad,
    bias=False), BatchNorm2d(eps=1e-3) with its running statistics, ReLU.

    x: [N, H, W, C] -> [N, (H + 2 pad_h - k_h) // stride + 1, ..., filters].
    kernel_size and pad: an int or (height, width). Variables ``conv/weight``
    [kh, kw, C, filters], ``bn/bias``, ``bn/running_mean``, ``bn/running_var``
    [filters]: the file's names; no scale (the TF graph has none).
    """
    kernel_size, pad = _pair(kernel_size), _pair(pad)
    with tf1.variable_scope('conv'):
        weight = tf1.get_variable('weight', [*kernel_size, x.shape[-1], filters],
                                  trainable=False, initializer=tf1.zeros_initializer())
    with tf1.variable_scope('bn'):
        bias, mean, variance = (
            tf1.get_variable(name, [filters], trainable=False, initializer=init)
            for name, init in (('bias', tf1.zeros_initializer()),
                               ('running_mean', tf1.zeros_initializer()),
                               ('running_var', tf1.ones_initializer())))
    y = tf.nn.conv2d(x, weight, strides=stride, padding=_padding(kernel_size, stride, pad))
    y, _, _ = tf1.nn.fused_batch_norm(y, tf.ones([filters]), bias, mean, variance,
                                      epsilon=BN_EPSILON, is_training=False)
    return tf.nn.relu(y)


def avg_pool_3x3(x, name='avg_pool'):
    """PyTorch's avg_pool2d(3, stride=1, padding=1, count_include_pad=False):
    TensorFlow's SAME average pool leaves the padding out of each average.
    [N, H, W, C] -> [N, H, W, C]."""
    return tf.nn.avg_pool2d(x, 3, 1, 'SAME', name=name)


def max_pool_3x3(x, stride, name='max_pool'):
    """PyTorch's max_pool2d(3, stride) (no padding: VALID) for stride 2, and
    max_pool2d(3, stride=1, padding=1) (padding never wins: SAME) for stride 1.
    [N, H, W, C] -> [N, (H - 3) // 2 + 1, ...] or [N, H, W, C]."""
    return tf.nn.max_pool2d(x, 3, stride, 'VALID' if stride == 2 else 'SAME', name=name)


# ---------------------------------------------------------------------------
# Blocks (torchvision's Inception A-E, with pytorch-fid's FID patches).

@scope
def inception_a(x, pool_features):
    """FIDInceptionA: [N, H, W, C] -> [N, H, W, 224 + pool_features]."""
    b1 = conv_bn_relu(x, 64, 1, name='branch1x1')
    b5 = conv_bn_relu(x, 48, 1, name='branch5x5_1')
    b5 = conv_bn_relu(b5, 64, 5, pad=2, name='branch5x5_2')
    b3 = conv_bn_relu(x, 64, 1, name='branch3x3dbl_1')
    b3 = conv_bn_relu(b3, 96, 3, pad=1, name='branch3x3dbl_2')
    b3 = conv_bn_relu(b3, 96, 3, pad=1, name='branch3x3dbl_3')
    bp = conv_bn_relu(avg_pool_3x3(x), pool_features, 1, name='branch_pool')
    return tf.concat([b1, b5, b3, bp], -1)


@scope
def inception_b(x):
    """InceptionB (Mixed_6a), the grid reduction: [N, H, W, C] ->
    [N, (H - 3) // 2 + 1, ..., 480 + C]."""
    b3 = conv_bn_relu(x, 384, 3, 2, name='branch3x3')
    bd = conv_bn_relu(x, 64, 1, name='branch3x3dbl_1')
    bd = conv_bn_relu(bd, 96, 3, pad=1, name='branch3x3dbl_2')
    bd = conv_bn_relu(bd, 96, 3, 2, name='branch3x3dbl_3')
    return tf.concat([b3, bd, max_pool_3x3(x, 2)], -1)


@scope
def inception_c(x, channels_7x7):
    """FIDInceptionC, factorized 7x7 convs: [N, H, W, C] -> [N, H, W, 768]."""
    c7 = channels_7x7
    b1 = conv_bn_relu(x, 192, 1, name='branch1x1')
    b7 = conv_bn_relu(x, c7, 1, name='branch7x7_1')
    b7 = conv_bn_relu(b7, c7, (1, 7), pad=(0, 3), name='branch7x7_2')
    b7 = conv_bn_relu(b7, 192, (7, 1), pad=(3, 0), name='branch7x7_3')
    bd = conv_bn_relu(x, c7, 1, name='branch7x7dbl_1')
    bd = conv_bn_relu(bd, c7, (7, 1), pad=(3, 0), name='branch7x7dbl_2')
    bd = conv_bn_relu(bd, c7, (1, 7), pad=(0, 3), name='branch7x7dbl_3')
    bd = conv_bn_relu(bd, c7, (7, 1), pad=(3, 0), name='branch7x7dbl_4')
    bd = conv_bn_relu(bd, 192, (1, 7), pad=(0, 3), name='branch7x7dbl_5')
    bp = conv_bn_relu(avg_pool_3x3(x), 192, 1, name='branch_pool')
    return tf.concat([b1, b7, bd, bp], -1)


@scope
def inception_d(x):
    """InceptionD (Mixed_7a), the grid reduction: [N, H, W, C] ->
    [N, (H - 3) // 2 + 1, ..., 512 + C]."""
    b3 = conv_bn_relu(x, 192, 1, name='branch3x3_1')
    b3 = conv_bn_relu(b3, 320, 3, 2, name='branch3x3_2')
    b7 = conv_bn_relu(x, 192, 1, name='branch7x7x3_1')
    b7 = conv_bn_relu(b7, 192, (1, 7), pad=(0, 3), name='branch7x7x3_2')
    b7 = conv_bn_relu(b7, 192, (7, 1), pad=(3, 0), name='branch7x7x3_3')
    b7 = conv_bn_relu(b7, 192, 3, 2, name='branch7x7x3_4')
    return tf.concat([b3, b7, max_pool_3x3(x, 2)], -1)


@scope
def inception_e(x, *, pool):
    """FIDInceptionE_1 (pool='avg') or FIDInceptionE_2 (pool='max': the TF
    graph max-pools in its last block, where the paper averages):
    [N, H, W, C] -> [N, H, W, 2048]."""
    b1 = conv_bn_relu(x, 320, 1, name='branch1x1')
    b3 = conv_bn_relu(x, 384, 1, name='branch3x3_1')
    b3 = tf.concat([conv_bn_relu(b3, 384, (1, 3), pad=(0, 1), name='branch3x3_2a'),
                    conv_bn_relu(b3, 384, (3, 1), pad=(1, 0), name='branch3x3_2b')], -1)
    bd = conv_bn_relu(x, 448, 1, name='branch3x3dbl_1')
    bd = conv_bn_relu(bd, 384, 3, pad=1, name='branch3x3dbl_2')
    bd = tf.concat([conv_bn_relu(bd, 384, (1, 3), pad=(0, 1), name='branch3x3dbl_3a'),
                    conv_bn_relu(bd, 384, (3, 1), pad=(1, 0), name='branch3x3dbl_3b')], -1)
    pooled = avg_pool_3x3(x) if pool == 'avg' else max_pool_3x3(x, 1)
    bp = conv_bn_relu(pooled, 192, 1, name='branch_pool')
    return tf.concat([b1, b3, bd, bp], -1)


# ---------------------------------------------------------------------------
# The network.

def preprocess(images, size=INPUT_SIZE):
    """The TF graph's input ops: [N, H, W, 1 or 3] of values 0..255 (any
    dtype) -> float32 [N, size, size, 3] in [-1, 1): grayscale repeated to
    RGB, tf.compat.v1.image.resize_bilinear(align_corners=False), then
    (x - 128) / 128."""
    with tf.name_scope('preprocess'):
        x = tf.cast(images, tf.float32)
        if x.shape.rank != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(f'the FID Inception takes [N, H, W, 1 or 3] images, got shape '
                             f'{x.shape}')
        if x.shape[-1] == 1:
            x = tf.tile(x, [1, 1, 1, 3])
        x = tf1.image.resize_bilinear(x, [size, size], align_corners=False)
        return (x - 128.0) / 128.0


class InceptionV3(modules.Network):
    """The FID Inception-v3 up to pool_3: [N, H, W, 3] -> [N, 2048].

    Input: :func:`preprocess`'s output, [N, 299, 299, 3] for FID (the network
    is convolutional: any size from 75 on runs, but only 299 gives the
    features FID is defined on). ``training`` is ignored: the batch norms
    always use the loaded statistics, nothing here is ever trained.
    """

    min_size = 75  # below it a reduction leaves an empty grid

    def __init__(self, name=SCOPE):
        super().__init__(name)

    def _check_input(self, x):
        if x.shape.rank != 4 or x.shape[-1] != 3:
            raise ValueError(f'{self.name} takes [N, H, W, 3] images, got shape {x.shape}')
        for axis, size in (('height', x.shape[1]), ('width', x.shape[2])):
            if size is not None and size < self.min_size:
                raise ValueError(f'{self.name} needs an image {axis} of at least '
                                 f'{self.min_size}, got {size}')

    def _build(self, x, training):
        del training  # inference only
        x = conv_bn_relu(x, 32, 3, 2, name='Conv2d_1a_3x3')
        x = conv_bn_relu(x, 32, 3, name='Conv2d_2a_3x3')
        x = conv_bn_relu(x, 64, 3, pad=1, name='Conv2d_2b_3x3')
        x = max_pool_3x3(x, 2, name='max_pool_1')
        x = conv_bn_relu(x, 80, 1, name='Conv2d_3b_1x1')
        x = conv_bn_relu(x, 192, 3, name='Conv2d_4a_3x3')
        x = max_pool_3x3(x, 2, name='max_pool_2')
        for name, pool_features in (('Mixed_5b', 32), ('Mixed_5c', 64), ('Mixed_5d', 64)):
            x = inception_a(x, pool_features, name=name)
        x = inception_b(x, name='Mixed_6a')
        for name, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160),
                         ('Mixed_6e', 192)):
            x = inception_c(x, c7, name=name)
        x = inception_d(x, name='Mixed_7a')
        x = inception_e(x, pool='avg', name='Mixed_7b')
        x = inception_e(x, pool='max', name='Mixed_7c')
        return tf.reduce_mean(x, [1, 2], name='pool_3')

    def key_of(self, variable):
        """The file's key of one of this network's variables."""
        return variable.op.name[len(self.scope_name) + 1:].replace('/', '.')


# ---------------------------------------------------------------------------
# Weights.

cache_dir = download.cache_dir  # the project's cache folder, which import_torch.py uses too


def sha256_of(path):
    """The hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def default_weights(folder=None, *, url=None, sha256=None):
    """The path of pytorch-fid's weights in ``folder`` (default
    :func:`cache_dir`), downloaded first from ``url`` (default WEIGHTS_URL)
    if missing.

    The download (download.download: resumable, size-checked against the
    server's announcement) lands in the hidden folder ``.unverified`` and is
    moved to ``path`` only once its sha256 equals ``sha256`` (default
    WEIGHTS_SHA256); otherwise it is deleted and WeightsError raised. One
    process at a time downloads (download.download_lock).
    """
    folder = cache_dir() if folder is None else folder
    url = WEIGHTS_URL if url is None else url
    sha256 = WEIGHTS_SHA256 if sha256 is None else sha256
    path = os.path.join(folder, WEIGHTS_FILE)
    if os.path.isfile(path):
        return path
    with download.download_lock(folder, WEIGHTS_FILE):
        if os.path.isfile(path):  # another process fetched it while we waited
            return path
        # Under its own name (the progress bar's) in a hidden folder until checked.
        staging = os.path.join(folder, '.unverified')
        unverified = os.path.join(staging, WEIGHTS_FILE)
        os.makedirs(staging, exist_ok=True)
        logger.info('downloading the FID Inception weights %s to %s', url, path)
        hint = ' (or give a local copy with --fid_weights)'
        try:
            download.download(url, unverified, hint=hint)
        except layouts.DatasetError:
            with contextlib.suppress(OSError):  # kept when it holds a part to resume
                os.rmdir(staging)
            raise
        digest = sha256_of(unverified)
        if digest != sha256:
            shutil.rmtree(staging)
            raise WeightsError(f'the file downloaded from {url} has sha256 {digest}, expected '
                               f'{sha256}: deleted it{hint}')
        os.replace(unverified, path)
        shutil.rmtree(staging)
    return path


def _read(path):
    from cyclegan_tf.interop import pth

    try:
        return pth.load(path)
    except FileNotFoundError:
        raise WeightsError(f'no weights file {path}') from None
    except (pth.PthError, OSError) as e:
        raise WeightsError(f'cannot read the FID Inception weights {path} '
                           f'({" ".join(str(e).split())})') from None


def expected_shapes(net=None):
    """Key -> shape (PyTorch's layout) of every tensor the network ``net``
    (built; default: one built here) reads, with the batch norms' ``bn.weight``
    (the scale, which must be 1)."""
    if net is None:
        with tf.Graph().as_default():
            net = InceptionV3()
            net(tf1.placeholder(tf.float32, [None, INPUT_SIZE, INPUT_SIZE, 3]))
            return expected_shapes(net)
    shapes = {}
    for v in net.global_variables:
        key, shape = net.key_of(v), v.shape.as_list()
        shapes[key] = [shape[3], shape[2], shape[0], shape[1]] if len(shape) == 4 else shape
        if key.endswith('.bn.bias'):
            shapes[key[:-len('bias')] + 'weight'] = shape
    return shapes


def check_weights(state, source, expected=None):
    """Raises WeightsError unless ``state`` (key -> array) has pytorch-fid's
    key layout: exactly the keys and shapes the network reads (``expected``,
    default :func:`expected_shapes`), plus the unused fc and
    num_batches_tracked; batch-norm scales all 1. ``source`` names it."""
    expected = expected_shapes() if expected is None else expected
    missing = [k for k in expected if k not in state]
    unknown = [k for k in state if k not in expected and k not in UNUSED_KEYS
               and not k.endswith(UNUSED_SUFFIX)]
    if missing or unknown:
        what = (f'{len(missing)} keys missing (first: {missing[0]})' if missing else
                f'{len(unknown)} unexpected keys (first: {unknown[0]})')
        raise WeightsError(f'{source} does not have the key layout of pytorch-fid\'s '
                           f'{WEIGHTS_FILE}: {what}')
    for key, shape in expected.items():
        if list(np.shape(state[key])) != shape:
            raise WeightsError(f'{source}: {key} has shape {list(np.shape(state[key]))}, '
                               f'the FID Inception needs {shape}')
        if key.endswith('.bn.weight') and not np.all(np.asarray(state[key]) == 1):
            raise WeightsError(f'{source}: {key} is not all 1: not the FID Inception weights '
                               f'(its batch norms have no scale)')


def load_weights(path, expected=None):
    """key -> array of the weights file at ``path``, checked against
    ``expected`` (see :func:`check_weights`; WeightsError)."""
    state = _read(path)
    check_weights(state, path, expected)
    return state


def random_weights(seed=0):
    """Weights of the right layout drawn at random: for timing and shape
    tests, never for scores."""
    rng = np.random.RandomState(seed)
    state = {}
    for key, shape in expected_shapes().items():
        if key.endswith('conv.weight'):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        elif key.endswith(('running_var', 'bn.weight')):
            state[key] = np.ones(shape, np.float32)
        else:
            state[key] = np.zeros(shape, np.float32)
    return state


def state_sha256(state):
    """A sha256 identifying the values of ``state`` (key -> array)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        array = np.ascontiguousarray(state[key])
        digest.update(f'{key}:{array.dtype.str}:{array.shape};'.encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Feature extraction.

def as_rgb_uint8_range(image):
    """An image array [H, W], [H, W, 1] or [H, W, 3] of values 0..255 ->
    float32 [H, W, 3] (grayscale repeated)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f'an image must be [H, W], [H, W, 1] or [H, W, 3], got shape '
                         f'{image.shape}')
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image.astype(np.float32, copy=False)


def _session_config():
    proto = tf1.ConfigProto(allow_soft_placement=True)
    proto.gpu_options.allow_growth = True
    return proto


class FeatureExtractor:
    """The FID Inception in a graph and session of its own, weights loaded.

    Args:
      weights: the path of a weights file in pytorch-fid's layout, or a dict
        key -> array (e.g. :func:`random_weights`); None downloads pytorch-fid's
        file into :func:`cache_dir` on first use (:func:`default_weights`).
      batch_size: images per session run.
      progress: show a tqdm bar (on stderr) while extracting.

    Attributes:
      weights_id: a sha256 of the weights (of the file, or of the arrays),
        part of the feature cache's key.
      weights_record: what scores record of the weights: weights_sha256
        (weights_id) and fid_weights_standard (whether they are pytorch-fid's
        file, WEIGHTS_SHA256: FIDs of other weights are not comparable to
        published ones).

    The graph is built and the weights loaded (and checked: WeightsError) on
    the first images, so that features read from the cache cost nothing.
    Use as a context manager, or call close().
    """

    def __init__(self, weights=None, *, batch_size=50, progress=True):
        if batch_size < 1:
            raise ValueError(f'batch_size must be at least 1, got {batch_size}')
        self.batch_size = batch_size
        self.progress = progress
        if isinstance(weights, dict):
            self._weights = weights
            self.weights_id = state_sha256(weights)
        else:
            self._weights = default_weights() if weights is None else weights
            if not os.path.isfile(self._weights):
                raise WeightsError(f'no weights file {self._weights}')
            self.weights_id = sha256_of(self._weights)
        self.sess = None  # the network is built on first use: cached features need none

    @property
    def weights_record(self):
        return {'weights_sha256': self.weights_id,
                'fid_weights_standard': self.weights_id == WEIGHTS_SHA256}

    def _build(self):
        if self.sess is not None:
            return
        state = self._weights if isinstance(self._weights, dict) else _read(self._weights)
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf1.placeholder(tf.float32, [None, None, None, 3], name='images')
            self.resized = preprocess(self.images)
            self.net = InceptionV3()
            self.features_op = self.net(self.resized)
            variables = self.net.global_variables
            values = [tf1.placeholder(v.dtype.base_dtype, v.shape) for v in variables]
            assign = tf.group(*[tf1.assign(v, p) for v, p in zip(variables, values)])
        self.graph.finalize()
        source = 'the weights given' if state is self._weights else self._weights
        check_weights(state, source, expected_shapes(self.net))
        sess = tf1.Session(graph=self.graph, config=_session_config())
        feed = {}
        for variable, placeholder in zip(variables, values):
            value = np.asarray(state[self.net.key_of(variable)], np.float32)
            feed[placeholder] = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
        sess.run(assign, feed)
        self.sess = sess

    def close(self):
        if self.sess is not None:
            self.sess.close()
            self.sess = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _batch_features(self, images):
        """float32 [n, 2048] of a list of float32 [H, W, 3] arrays."""
        self._build()
        if len({image.shape for image in images}) == 1:
            return self.sess.run(self.features_op, {self.images: np.stack(images)})
        # Mixed sizes: each image is resized on its own, then the batch runs.
        resized = np.concatenate([self.sess.run(self.resized, {self.images: image[None]})
                                  for image in images])
        return self.sess.run(self.features_op, {self.resized: resized})

    def features(self, images, *, desc='features'):
        """float32 [N, 2048] pool_3 features of ``images``: an array [N, H, W, C]
        or a sequence (or iterable, read lazily) of arrays [H, W, C] or [H, W],
        C 1 or 3, values 0..255 (uint8 or float), of any sizes."""
        self._build()  # before the progress bar: a bad weights file is the only line
        total = len(images) if hasattr(images, '__len__') else None
        rows, batch = [], []
        with tqdm.tqdm(total=total, desc=desc, unit='img', disable=not self.progress,
                       leave=False, mininterval=0.5) as bar:
            for image in images:
                batch.append(as_rgb_uint8_range(image))
                if len(batch) == self.batch_size:
                    rows.append(self._batch_features(batch))
                    bar.update(len(batch))
                    batch = []
            if batch:
                rows.append(self._batch_features(batch))
                bar.update(len(batch))
        if not rows:
            return np.zeros([0, FEATURES], np.float32)
        return np.concatenate(rows).astype(np.float32, copy=False)

    def file_features(self, paths, *, desc='features'):
        """(features float32 [n, 2048], the paths read) of image files, read
        with PIL as RGB (pipeline.read_uint8) in a background thread while the
        network runs. An unreadable file is skipped with a warning."""
        from cyclegan_tf.data import pipeline

        def read(path):
            try:
                return pipeline.read_uint8(path, 3)
            except Exception as e:  # PIL raises many kinds
                logger.warning('skipping unreadable image %s (%s)', path,
                               ' '.join(str(e).split()) or type(e).__name__)
                return None

        kept = []

        def ready(item):
            path, future = item
            image = future.result()
            if image is not None:
                kept.append(path)
                yield image

        def readable():
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = []  # at most two batches read ahead of the network
                for path in paths:
                    pending.append((path, pool.submit(read, path)))
                    if len(pending) > 2 * self.batch_size:
                        yield from ready(pending.pop(0))
                for item in pending:
                    yield from ready(item)

        features = self.features(_Sized(readable(), len(paths)), desc=desc)
        return features, kept


class _Sized:
    """An iterable with a length for tqdm's total (an upper bound: unreadable
    files are skipped)."""

    def __init__(self, iterable, length):
        self.iterable, self.length = iterable, length

    def __iter__(self):
        return iter(self.iterable)

    def __len__(self):
        return self.length


def throughput(extractor, *, num_images=100, image_size=256, warmup=1):
    """Times feature extraction: ``num_images`` random uint8 images of
    ``image_size`` (resized to 299 as any), in batches of the extractor's
    batch_size, after ``warmup`` untimed batches. For bench.py.

    Returns dict: 'images_per_s', 's_per_1000_images', 'seconds', 'images',
    'batch_size'.
    """
    rng = np.random.RandomState(0)
    batch = rng.randint(0, 256, [extractor.batch_size, image_size, image_size, 3], np.uint8)
    for _ in range(warmup):
        extractor._batch_features(list(batch.astype(np.float32)))
    images = np.resize(batch, [num_images, image_size, image_size, 3])
    progress, extractor.progress = extractor.progress, False
    try:
        start = time.perf_counter()
        extractor.features(images)
        seconds = time.perf_counter() - start
    finally:
        extractor.progress = progress
    return {'images_per_s': num_images / seconds, 's_per_1000_images': 1000 * seconds /
            num_images, 'seconds': seconds, 'images': num_images,
            'batch_size': extractor.batch_size}
