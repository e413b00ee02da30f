"""Ops: shapes, padding, normalization, initialization, scoping."""

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import ops

tf1 = tf.compat.v1


def run(tensors, feed=None):
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        return sess.run(tensors, feed)


def test_scope_names_variables_after_the_op_or_name(graph):
    x = tf.zeros([1, 8, 8, 3])
    ops.conv2d(x, 4, 3)
    ops.conv2d(x, 4, 3, name='conv_1')
    names = sorted(v.op.name for v in tf1.global_variables())
    assert names == ['conv2d/biases', 'conv2d/weights', 'conv_1/biases', 'conv_1/weights']
    assert ops.conv2d.__name__ == 'conv2d' and 'Convolution' in ops.conv2d.__doc__


def test_a_second_op_of_the_same_name_raises(graph):
    x = tf.zeros([1, 8, 8, 3])
    ops.conv2d(x, 4, 3, name='conv')
    with pytest.raises(ValueError, match='already exists'):
        ops.conv2d(x, 4, 3, name='conv')


@pytest.mark.parametrize('padding, stride, size, expected', [
    ('zero', 1, (10, 14), (10, 14)),
    ('reflect', 1, (10, 14), (10, 14)),
    ('valid', 1, (10, 14), (8, 12)),
    ('zero', 2, (10, 14), (5, 7)),
])
def test_conv2d_shapes(graph, padding, stride, size, expected):
    y = ops.conv2d(tf1.placeholder(tf.float32, [None, *size, 3]), 5, 3, stride, padding=padding)
    assert y.shape.as_list() == [None, *expected, 5]
    value = run(y, {'Placeholder:0': np.zeros([2, *size, 3])})
    assert value.shape == (2, *expected, 5)


def test_conv2d_4x4_stride_2_halves_like_pytorch_padding_1(graph):
    y = ops.conv2d(tf.zeros([1, 256, 128, 3]), 8, 4, 2)
    assert y.shape.as_list() == [1, 128, 64, 8]


def test_reflect_padding_mirrors_the_border(graph):
    x = tf.constant(np.arange(16, dtype=np.float32).reshape([1, 4, 4, 1]))
    y = run(ops.reflect_pad(x, 2))
    assert y.shape == (1, 8, 8, 1)
    assert y[0, 2, :, 0].tolist() == [2, 1, 0, 1, 2, 3, 2, 1]  # row 0 of x
    assert y[0, :, 2, 0].tolist() == [8, 4, 0, 4, 8, 12, 8, 4]  # column 0 of x


def test_unknown_padding_is_rejected(graph):
    with pytest.raises(ValueError, match='unknown padding'):
        ops.conv2d(tf.zeros([1, 4, 4, 1]), 1, 3, padding='circular')


def test_deconv2d_exactly_doubles_static_and_dynamic_sizes(graph):
    x = tf1.placeholder(tf.float32, [None, 5, 7, 4])
    assert ops.deconv2d(x, 3, name='static').shape.as_list() == [None, 10, 14, 3]
    dynamic = tf1.placeholder(tf.float32, [None, None, None, 4])
    y = ops.deconv2d(dynamic, 3, 4, name='dynamic')
    assert run(y, {dynamic: np.zeros([2, 3, 5, 4])}).shape == (2, 6, 10, 3)


def conv_transpose_reference(x, weight, bias, k):
    """PyTorch's ConvTranspose2d(k, stride=2, padding=(k - 1) // 2,
    output_padding=k % 2) by its definition: each input pixel adds its
    weighted kernel at twice its position, then the padding is cut off each
    side and output_padding rows added at the end. NCHW, weight [in, out, k, k]."""
    n, _, h, w = x.shape
    pad, out_pad = (k - 1) // 2, k % 2
    out_h, out_w = 2 * (h - 1) - 2 * pad + k + out_pad, 2 * (w - 1) - 2 * pad + k + out_pad
    full = np.zeros([n, weight.shape[1], 2 * h + k + 1, 2 * w + k + 1])
    for i in range(h):
        for j in range(w):
            full[:, :, 2 * i:2 * i + k, 2 * j:2 * j + k] += np.einsum('nc,cokl->nokl',
                                                                      x[:, :, i, j], weight)
    return full[:, :, pad:pad + out_h, pad:pad + out_w] + bias[None, :, None, None]


@pytest.mark.parametrize('k', [1, 2, 3, 4, 5])
def test_deconv2d_is_pytorchs_conv_transpose(graph, k):
    """Equal to ConvTranspose2d(k, 2, (k - 1) // 2, k % 2) for every kernel
    size, on static and unknown shapes; with padding='SAME' k = 3 was a pixel off."""
    rng = np.random.default_rng(k)
    x = rng.normal(size=[2, 4, 3, 5]).astype(np.float32)  # NCHW, non-square
    weight = rng.normal(size=[4, 3, k, k]).astype(np.float32)  # PyTorch's [in, out, k, k]
    bias = rng.normal(size=[3]).astype(np.float32)
    expected = conv_transpose_reference(x, weight, bias, k).transpose(0, 2, 3, 1)
    assert expected.shape == (2, 6, 10, 3)
    static = ops.deconv2d(tf.constant(x.transpose(0, 2, 3, 1)), 3, k, name='static')
    dynamic_x = tf1.placeholder(tf.float32, [None, None, None, 4])
    dynamic = ops.deconv2d(dynamic_x, 3, k, name='dynamic')
    assert static.shape.as_list() == [2, 6, 10, 3]
    with tf1.Session() as sess:
        for scope in ('static', 'dynamic'):
            tf1.global_variables(f'{scope}/weights')[0].load(weight.transpose(2, 3, 1, 0), sess)
            tf1.global_variables(f'{scope}/biases')[0].load(bias, sess)
        results = sess.run([static, dynamic], {dynamic_x: x.transpose(0, 2, 3, 1)})
    for result in results:
        assert np.abs(result - expected).max() < 1e-5


def test_instance_norm_normalizes_each_image_and_channel(graph):
    x = np.random.default_rng(0).normal(3.0, 2.0, [2, 8, 6, 3]).astype(np.float32)
    y = run(ops.instance_norm(tf.constant(x)))
    assert np.allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
    assert np.allclose(y.var(axis=(1, 2)), 1, atol=1e-3)
    assert not tf1.global_variables()  # affine=False: no parameters


def test_batch_norm_training_and_inference(graph):
    x = np.random.default_rng(0).normal(3.0, 2.0, [4, 5, 5, 2]).astype(np.float32)
    train = ops.batch_norm(tf.constant(x), training=True, name='bn')
    with tf1.variable_scope('', reuse=True):
        infer = ops.batch_norm(tf.constant(x), training=False, name='bn')
    updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    assert len(updates) == 2
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        y = sess.run(train)
        assert np.allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-5)
        assert np.allclose(sess.run(infer), x / np.sqrt(1 + 1e-5), atol=1e-5)  # mean 0, var 1
        sess.run(updates)
        mean = sess.run(tf1.global_variables('bn/moving_mean')[0])
        assert np.allclose(mean, 0.1 * x.mean(axis=(0, 1, 2)), atol=1e-5)
    names = sorted(v.op.name for v in tf1.trainable_variables())
    assert names == ['bn/beta', 'bn/gamma']


def test_norm_object_carries_kind_and_mode(graph):
    x = tf.zeros([2, 4, 4, 3])
    assert ops.Norm('none')(x) is x
    assert ops.Norm('batch').conv_bias is False and ops.Norm('instance').conv_bias is True
    with pytest.raises(ValueError, match='unknown norm'):
        ops.Norm('layer')


@pytest.mark.parametrize('init_type, expected_std', [
    ('normal', 0.02), ('xavier', 0.02 * np.sqrt(2 / (9 * 64 + 9 * 64))),
    ('kaiming', np.sqrt(2 / (9 * 64))), ('orthogonal', None)])
def test_initializers_have_the_reference_scale(graph, init_type, expected_std):
    ops.conv2d(tf.zeros([1, 4, 4, 64]), 64, 3, init=ops.initializer(init_type, 0.02))
    weights, biases = run(tf1.global_variables())
    assert not biases.any()
    if expected_std is not None:
        assert weights.std() == pytest.approx(expected_std, rel=0.05)
    else:
        flat = weights.reshape(-1, 64)
        assert np.allclose(flat.T @ flat, 0.02 ** 2 * np.eye(64), atol=1e-6)


def test_dropout_only_when_training(graph):
    x = tf.ones([1000])
    assert ops.dropout(x, 0.5, training=False) is x
    y = run(ops.dropout(x, 0.5, training=True, seed=1))
    assert 0.4 < (y == 0).mean() < 0.6 and set(np.unique(y)) == {0.0, 2.0}


def test_res_block_keeps_shape_and_names_its_convs(graph):
    x = tf1.placeholder(tf.float32, [None, 6, 10, 8])
    y = ops.res_block(x, norm=ops.Norm('instance'), name='res_block_0')
    assert y.shape.as_list() == [None, 6, 10, 8]
    assert sorted(v.op.name for v in tf1.trainable_variables()) == [
        'res_block_0/conv_0/biases', 'res_block_0/conv_0/weights',
        'res_block_0/conv_1/biases', 'res_block_0/conv_1/weights']


def test_linear(graph):
    y = ops.linear(tf.ones([3, 2]), 5)
    assert y.shape.as_list() == [3, 5]
