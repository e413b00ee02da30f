"""Layers as small functions of tensors, each in a scope of its own name.

Every op takes an NHWC tensor and explicit arguments and returns a tensor.
The ``@scope`` decorator opens a variable scope named after the op (``name=``
overrides it), so ``conv2d(x, 64, 7, name='conv_0')`` creates
``conv_0/weights`` and ``conv_0/biases``. Two ops of the same name in the
same scope raise (``Variable conv_0/weights already exists``): repeated
blocks need numbered names, and an accidental second build is never shared
silently. Reuse is opened by the network that owns the variables
(modules.Network), not here.

Initialization follows the official PyTorch implementation: conv weights
from N(0, init_gain) (or xavier / kaiming / orthogonal), biases zero,
batch-norm scale from N(1, init_gain).
"""

import dataclasses
import functools
import math

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

PADDINGS = ('zero', 'reflect', 'valid')
NORMS = ('instance', 'batch', 'none')


def scope(op):
    """Runs ``op`` inside a variable scope named after it, or ``name=``."""

    @functools.wraps(op)
    def wrapper(*args, name=None, **kwargs):
        with tf1.variable_scope(name or op.__name__):
            return op(*args, **kwargs)

    return wrapper


def initializer(init_type='normal', gain=0.02):
    """The weight initializer of the official ``init_weights``."""
    if init_type == 'normal':
        return tf1.random_normal_initializer(0.0, gain)
    if init_type == 'xavier':  # xavier_normal_(gain): std = gain * sqrt(2 / (fan_in + fan_out))
        return tf1.variance_scaling_initializer(gain ** 2, 'fan_avg', 'untruncated_normal')
    if init_type == 'kaiming':  # kaiming_normal_(a=0, mode='fan_in'): std = sqrt(2 / fan_in)
        return tf1.variance_scaling_initializer(2.0, 'fan_in', 'untruncated_normal')
    if init_type == 'orthogonal':
        return tf1.orthogonal_initializer(gain)
    raise ValueError(f'unknown init_type {init_type!r}')


@dataclasses.dataclass(frozen=True)
class Norm:
    """A normalization and the mode it runs in, passed as one object so that
    no block can drop either (vanhuyz's residual blocks ignored their norm
    flag because one call site did not pass it on).

    kind: 'instance' (no affine parameters, per-image statistics), 'batch'
    (scale and offset, batch statistics when training, moving averages
    otherwise) or 'none'. ``gamma_init`` initializes the batch-norm scale.
    ``moments``: None, or a :class:`Moments` that records or gives the
    statistics of the layers that compute them from the image (instance norm,
    batch norm when training), so that a tiled translation normalizes every
    tile with the statistics of the whole image.
    """

    kind: str = 'instance'
    training: bool = True
    gamma_init: object = None
    moments: object = None

    def __post_init__(self):
        if self.kind not in NORMS:
            raise ValueError(f'unknown norm {self.kind!r}; choose one of {NORMS}')

    @property
    def conv_bias(self):
        """Convs before a batch norm need no bias: its offset plays that role.

        The official code also drops the bias for norm='none', a side effect of
        how it detects the norm type; we keep it there, where nothing absorbs it.
        """
        return self.kind != 'batch'

    def __call__(self, x, name='norm'):
        if self.kind == 'instance':
            return instance_norm(x, moments=self.moments, name=name)
        if self.kind == 'batch':
            return batch_norm(x, training=self.training, gamma_init=self.gamma_init,
                              moments=self.moments, name=name)
        return x


class Moments:
    """The statistics of a network call's normalization layers, by layer.

    ``Moments()`` computes each layer's mean and variance from its input and
    records them; ``Moments(given=True)`` makes a placeholder pair per layer
    instead, to feed with the statistics another call recorded (a stats pass
    over a whole image, or a thumbnail of it, then every tile of the image).
    ``layers``: the scope of each layer ('G_A/res_block_0/norm_0') -> (mean,
    variance), each [N or 1, 1, 1, C]. One call per Moments: a layer seen
    twice raises.
    """

    def __init__(self, *, given=False):
        self.given = given
        self.layers = {}

    def __call__(self, x, axes):
        """(mean, variance) to normalize ``x`` with, over ``axes`` (kept as 1)."""
        layer = tf1.get_variable_scope().name
        if layer in self.layers:
            raise ValueError(f'{layer}: a Moments records one network call')
        if self.given:
            shape = [1 if a in axes else None for a in range(3)] + [x.shape[-1]]
            pair = (tf1.placeholder(tf.float32, shape, name='mean'),
                    tf1.placeholder(tf.float32, shape, name='variance'))
        else:
            pair = tf.nn.moments(x, axes, keepdims=True)
        self.layers[layer] = pair
        return pair


def _pad(x, pad, mode):
    if pad == 0:
        return x
    return tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]],
                  mode='REFLECT' if mode == 'reflect' else 'CONSTANT')


@scope
def reflect_pad(x, pad):
    """[N, H, W, C] -> [N, H + 2 pad, W + 2 pad, C], mirrored at the border."""
    return _pad(x, pad, 'reflect')


@scope
def conv2d(x, filters, kernel_size, stride=1, *, padding='zero', pad=None, bias=True,
           init=None):
    """Convolution as PyTorch's Conv2d(kernel_size, stride, padding=pad).

    x: [N, H, W, C] -> [N, (H + 2 pad - k) // stride + 1, ..., filters].
    padding: 'zero' or 'reflect' pads ``pad`` pixels on each side (default
    (k - 1) // 2, which keeps the size at stride 1 for odd k and gives PyTorch's
    padding=1 for k = 3 and 4); 'valid' pads nothing.
    """
    if padding not in PADDINGS:
        raise ValueError(f'unknown padding {padding!r}; choose one of {PADDINGS}')
    pad = 0 if padding == 'valid' else (kernel_size - 1) // 2 if pad is None else pad
    in_channels = x.shape[-1]
    weights = tf1.get_variable('weights', [kernel_size, kernel_size, in_channels, filters],
                               initializer=init or initializer())
    y = tf.nn.conv2d(_pad(x, pad, padding), weights, strides=stride, padding='VALID')
    if bias:
        y = tf.nn.bias_add(y, tf1.get_variable('biases', [filters],
                                               initializer=tf1.zeros_initializer()))
    return y


@scope
def deconv2d(x, filters, kernel_size=3, *, bias=True, init=None):
    """Transposed convolution as PyTorch's ConvTranspose2d(kernel_size, stride=2,
    padding=(k - 1) // 2, output_padding=k % 2): exactly doubles height and width.

    x: [N, H, W, C] -> [N, 2H, 2W, filters]; weights [k, k, filters, C] (the
    official [C, filters, k, k], transposed, no flip). Computed as the full
    (VALID) transposed convolution, [N, 2H - 2 + k, 2W - 2 + k, filters],
    then its rows and columns pad ... pad + 2H - 1, pad = (k - 1) // 2.
    TF's padding='SAME' would keep rows 0 ... 2H - 1 for k = 3 (padding (0, 1)
    where PyTorch's is (1, 0)): the same size, every output a pixel off.
    """
    in_channels = x.shape[-1]
    weights = tf1.get_variable('weights', [kernel_size, kernel_size, filters, in_channels],
                               initializer=init or initializer())
    shape = tf.shape(x)
    height, width = shape[1], shape[2]
    full = tf.stack([shape[0], 2 * height - 2 + kernel_size, 2 * width - 2 + kernel_size,
                     filters])
    y = tf.nn.conv2d_transpose(x, weights, full, strides=2, padding='VALID')
    pad = (kernel_size - 1) // 2
    if kernel_size == 1:  # output_padding 1 reaches a row and column past the full output
        y = tf.pad(y, [[0, 0], [0, 1], [0, 1], [0, 0]])
    # tf.slice, not y[...]: the gradient of Slice is a Pad, that of StridedSlice
    # a generic kernel that made a training step's deconvs 60% slower on the CPU.
    y = tf.slice(y, [0, pad, pad, 0], tf.stack([-1, 2 * height, 2 * width, -1]))
    static = x.shape
    y.set_shape([static[0], None if static[1] is None else 2 * static[1],
                 None if static[2] is None else 2 * static[2], filters])
    if bias:
        y = tf.nn.bias_add(y, tf1.get_variable('biases', [filters],
                                               initializer=tf1.zeros_initializer()))
    return y


@scope
def linear(x, units, *, bias=True, init=None):
    """Fully connected layer: [N, C] -> [N, units]."""
    weights = tf1.get_variable('weights', [x.shape[-1], units],
                               initializer=init or initializer())
    y = tf.matmul(x, weights)
    if bias:
        y = tf.nn.bias_add(y, tf1.get_variable('biases', [units],
                                               initializer=tf1.zeros_initializer()))
    return y


@scope
def instance_norm(x, epsilon=1e-5, *, moments=None):
    """Normalizes each image and channel over its pixels; no parameters, as
    PyTorch's InstanceNorm2d(affine=False, track_running_stats=False).
    With ``moments`` (a :class:`Moments`), (x - mean) / sqrt(variance +
    epsilon) with the mean and variance it gives.

    Computed as a fused batch norm of the [1, H, W, N*C] view, where each
    (image, channel) is a channel of its own: one kernel and one gradient
    kernel instead of a dozen small ops, about twice as fast on the CPU.
    """
    if moments is not None:
        mean, variance = moments(x, (1, 2))
        return (x - mean) * tf.math.rsqrt(variance + epsilon)
    shape = tf.shape(x)
    n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
    channels = tf.reshape(n * c, [1])
    y = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), tf.stack([1, h, w, n * c]))
    y, _, _ = tf1.nn.fused_batch_norm(y, tf.ones(channels), tf.zeros(channels),
                                      epsilon=epsilon, is_training=True)
    y = tf.transpose(tf.reshape(y, tf.stack([h, w, n, c])), [2, 0, 1, 3])
    y.set_shape(x.shape)
    return y


@scope
def batch_norm(x, *, training, momentum=0.1, epsilon=1e-5, gamma_init=None, moments=None):
    """Batch normalization as PyTorch's BatchNorm2d (affine, running stats).

    training=True normalizes with the batch's statistics and adds the
    moving-average updates to UPDATE_OPS (run them with the train op);
    training=False uses the moving averages. momentum is PyTorch's: the
    weight of the new batch in the moving average, which keeps the unbiased
    batch variance, as the fused kernel returns it. With ``moments`` (a
    :class:`Moments`) and training=True, the batch statistics are those it
    gives, and no moving average is updated (an inference graph's).
    """
    channels = x.shape[-1]
    gamma = tf1.get_variable('gamma', [channels],
                             initializer=gamma_init or tf1.ones_initializer())
    beta = tf1.get_variable('beta', [channels], initializer=tf1.zeros_initializer())
    moving_mean = tf1.get_variable('moving_mean', [channels], trainable=False,
                                   initializer=tf1.zeros_initializer())
    moving_variance = tf1.get_variable('moving_variance', [channels], trainable=False,
                                       initializer=tf1.ones_initializer())
    if training and moments is not None:
        mean, variance = moments(x, (0, 1, 2))
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon)
    if not training:
        y, _, _ = tf1.nn.fused_batch_norm(x, gamma, beta, moving_mean, moving_variance,
                                          epsilon=epsilon, is_training=False)
        return y
    y, mean, variance = tf1.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon,
                                                is_training=True)
    for average, value in ((moving_mean, mean), (moving_variance, variance)):
        update = tf1.assign_sub(average, momentum * (average - value))
        tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, update)
    return y


def lrelu(x, alpha=0.2, name='lrelu'):
    """Leaky ReLU, max(x, alpha x)."""
    return tf.nn.leaky_relu(x, alpha, name=name)


def relu(x, name='relu'):
    return tf.nn.relu(x, name=name)


def dropout(x, rate, *, training, seed=None, name='dropout'):
    """Zeroes a fraction ``rate`` of activations when training (scaling the
    rest by 1 / (1 - rate)); the identity otherwise."""
    if not training or rate == 0:
        return x
    return tf.nn.dropout(x, rate=rate, seed=seed, name=name)


@scope
def conv_norm_act(x, filters, kernel_size, stride=1, *, norm, activation=relu, padding='zero',
                  init=None):
    """conv2d, then ``norm``, then ``activation`` (the conv has no bias before
    a batch norm). Shapes as conv2d."""
    y = conv2d(x, filters, kernel_size, stride, padding=padding, bias=norm.conv_bias, init=init,
               name='conv')
    return activation(norm(y))


@scope
def deconv_norm_act(x, filters, kernel_size=3, *, norm, activation=relu, init=None):
    """deconv2d (doubling height and width), then ``norm``, then ``activation``."""
    y = deconv2d(x, filters, kernel_size, bias=norm.conv_bias, init=init, name='deconv')
    return activation(norm(y))


@scope
def res_block(x, *, norm, dropout_rate=0.0, padding='reflect', init=None):
    """The ResNet generator's block: x + (pad, conv3, norm, relu, [dropout],
    pad, conv3, norm)(x). Shape preserved: [N, H, W, C] -> [N, H, W, C]."""
    channels = x.shape[-1]
    y = conv2d(x, channels, 3, padding=padding, bias=norm.conv_bias, init=init, name='conv_0')
    y = relu(norm(y, name='norm_0'))
    y = dropout(y, dropout_rate, training=norm.training)
    y = conv2d(y, channels, 3, padding=padding, bias=norm.conv_bias, init=init, name='conv_1')
    y = norm(y, name='norm_1')
    return x + y


# ------------------------------------------------------------------ CUT
# The fixed anti-aliasing filters of CUT / FastCUT (Park et al. 2020,
# taesungp/contrastive-unpaired-translation, models/networks.py), after
# Zhang's "Making convolutional networks shift-invariant again" (2019).


def binomial_filter(size):
    """The official ``get_filter(size)``: the outer product of row ``size`` of
    Pascal's triangle with itself, normalized to sum 1. [size, size] float32."""
    row = np.array([math.comb(size - 1, k) for k in range(size)], np.float64)
    square = np.outer(row, row)
    return (square / square.sum()).astype(np.float32)


# [1 2 1] x [1 2 1] / 16 of the official Downsample, and [1 3 3 1] x [1 3 3 1] / 64
# times stride**2 = 4 of its Upsample (a transposed convolution spreads each pixel
# over 4 outputs, so its taps sum to 4: a constant image stays constant).
DOWNSAMPLE_FILTER = binomial_filter(3)
UPSAMPLE_FILTER = binomial_filter(4) * 4


def _depthwise_kernel(square, channels):
    """The fixed ``square`` filter for each of ``channels``, as tf.nn.depthwise_conv2d
    takes it: [k, k, channels, 1], a constant (never a variable: nothing trains it)."""
    if channels is None:
        raise ValueError('a fixed blur filter needs a known channel count')
    return tf.constant(np.tile(square[:, :, None, None], [1, 1, channels, 1]), name='filter')


@scope
def blur_downsample(x):
    """Anti-aliased downsampling, the official ``Downsample(channels)``
    (pad_type 'reflect', filt_size 3, stride 2): reflect-pad 1, then the fixed
    [1 2 1] x [1 2 1] / 16 filter on each channel alone, stride 2.

    x: [N, H, W, C] -> [N, ceil(H / 2), ceil(W / 2), C]; H and W at least 2
    (a reflection of 1 pixel). C must be known at graph-build time.
    """
    kernel = _depthwise_kernel(DOWNSAMPLE_FILTER, x.shape[-1])
    return tf.nn.depthwise_conv2d(_pad(x, 1, 'reflect'), kernel, [1, 2, 2, 1], 'VALID')


@scope
def blur_upsample(x):
    """Anti-aliased upsampling, the official ``Upsample(channels)`` (pad_type
    'repl', filt_size 4, stride 2): replicate-pad 1, a transposed convolution of
    each channel alone with the fixed [1 3 3 1] x [1 3 3 1] / 16 filter, stride
    2, cropped to exactly twice the size.

    x: [N, H, W, C] -> [N, 2H, 2W, C]; C must be known at graph-build time.
    The padded input is [N, H + 2, W + 2, C], its full (VALID) transposed
    convolution [N, 2H + 6, 2W + 6, C]; the official ``padding=1 + pad_size``
    (2) drops 2 rows and columns on each side, its ``[:, :, 1:, 1:]`` one more
    at the start and its ``[:, :, :-1, :-1]`` (an even filter) one more at the
    end: rows and columns 3 ... 2H + 2 of the full output remain.
    """
    channels = x.shape[-1]
    kernel = _depthwise_kernel(UPSAMPLE_FILTER, channels)
    # SYMMETRIC mirrors including the edge pixel: for a pad of 1 that is the
    # edge pixel repeated, PyTorch's ReplicationPad2d(1).
    y = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode='SYMMETRIC')
    shape = tf.shape(x)
    height, width = shape[1], shape[2]
    full = tf.stack([shape[0], 2 * height + 6, 2 * width + 6, channels])
    # The input gradient of a stride-2 VALID depthwise convolution is the
    # depthwise transposed convolution (PyTorch's conv_transpose2d, groups=C).
    y = tf.nn.depthwise_conv2d_backprop_input(full, kernel, y, [1, 2, 2, 1], 'VALID')
    y = tf.slice(y, [0, 3, 3, 0], tf.stack([-1, 2 * height, 2 * width, -1]))  # see deconv2d
    static = x.shape
    y.set_shape([static[0], None if static[1] is None else 2 * static[1],
                 None if static[2] is None else 2 * static[2], channels])
    return y


def l2_normalize(x, *, axis=-1, epsilon=1e-7):
    """x / (|x|_2 + epsilon) along ``axis``, as the official CUT ``Normalize``
    (tf.math.l2_normalize instead divides by sqrt(max(|x|^2, epsilon)))."""
    norm = tf.sqrt(tf.reduce_sum(tf.square(x), axis=axis, keepdims=True))
    return x / (norm + epsilon)


def patch_nce_loss(feat_q, feat_k, *, batch_size, nce_T=0.07,
                   nce_includes_all_negatives_from_minibatch=False):
    """The PatchNCE loss of each query patch, the official ``PatchNCELoss``
    (models/patchnce.py); CUT averages it over patches, then over layers.

    feat_q, feat_k: [B * P, D] matching rows (the patch sampler's outputs for
    the same patch ids, image-major); feat_k is a constant here (detached).
    Row i's positive is key i; its negatives are the other keys of the same
    image (``batch_size`` groups of P rows), or of the whole minibatch with
    ``nce_includes_all_negatives_from_minibatch`` (single-image translation).
    Logits [pos, neg...] / nce_T, with each patch's own key among the negatives
    masked to -10 (exp(-10), about zero); the loss is the cross entropy with
    target 0. Returns [B * P] losses (the official reduction='none').
    """
    feat_k = tf.stop_gradient(feat_k)
    rows, dim = feat_q.shape[0], feat_q.shape[-1]
    groups = 1 if nce_includes_all_negatives_from_minibatch else batch_size
    if rows is not None and rows % groups:
        raise ValueError(f'{rows} patches do not split into {groups} images')
    l_pos = tf.reduce_sum(feat_q * feat_k, axis=1, keepdims=True)  # [B * P, 1]
    queries = tf.reshape(feat_q, [groups, -1, dim])
    keys = tf.reshape(feat_k, [groups, -1, dim])
    l_neg = tf.matmul(queries, keys, transpose_b=True)  # [groups, n, n]
    shape = tf.shape(l_neg)
    l_neg = tf.linalg.set_diag(l_neg, tf.fill(shape[:2], -10.0))
    logits = tf.concat([l_pos, tf.reshape(l_neg, tf.stack([-1, shape[2]]))], axis=1) / nce_T
    labels = tf.zeros(tf.shape(logits)[:1], tf.int32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
