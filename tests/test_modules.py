"""Networks: parameter counts, shapes, build-time errors, scoping and reuse."""

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import config, modules

tf1 = tf.compat.v1


def images(height, width, channels=3, batch=None):
    return tf1.placeholder(tf.float32, [batch, height, width, channels])


# Parameter counts of the official PyTorch networks with their default options.
@pytest.mark.parametrize('build, expected', [
    (lambda: modules.define_G(config.CycleGANConfig(), 'G'), 11378179),
    (lambda: modules.define_G(config.CycleGANConfig(netG='resnet_6blocks'), 'G'), 7837699),
    (lambda: modules.define_D(config.CycleGANConfig(), 'D'), 2764737),
    (lambda: modules.define_G(config.Pix2PixConfig(), 'G'), 54413955),
    (lambda: modules.define_D(config.Pix2PixConfig(), 'D', input_nc=6), 2768705),
    (lambda: modules.define_D(config.CycleGANConfig(netD='pixel'), 'D'), 8705),
])
def test_parameter_counts_equal_the_reference(graph, build, expected):
    network = build()
    network(images(256, 256, network.input_nc))
    assert network.num_params == expected


@pytest.mark.parametrize('height, width', [(32, 32), (32, 48), (20, 12)])
def test_resnet_generator_keeps_any_multiple_of_4(graph, height, width):
    G = modules.ResnetGenerator('G', ngf=4, n_blocks=2, output_nc=1)
    x = images(height, width)
    y = G(x)
    assert y.shape.as_list() == [None, height, width, 1]
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        value = sess.run(y, {x: np.zeros([2, height, width, 3])})
    assert value.shape == (2, height, width, 1) and np.abs(value).max() <= 1


def test_generators_accept_unknown_sizes(graph):
    G = modules.UnetGenerator('G', num_downs=5, ngf=4, norm='batch')
    x = tf1.placeholder(tf.float32, [None, None, None, 3])
    y = G(x)
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        assert sess.run(y, {x: np.zeros([1, 64, 96, 3])}).shape == (1, 64, 96, 3)
        with pytest.raises(tf.errors.InvalidArgumentError, match='multiples of 32'):
            sess.run(y, {x: np.zeros([1, 40, 96, 3])})


@pytest.mark.parametrize('network, height, width, message', [
    (lambda: modules.ResnetGenerator('G', ngf=4), 30, 32, 'height a multiple of 4'),
    (lambda: modules.ResnetGenerator('G', ngf=4), 32, 34, 'width a multiple of 4'),
    (lambda: modules.UnetGenerator('G', num_downs=8, ngf=4), 128, 256, 'multiple of 256'),
    (lambda: modules.UnetGenerator('G', num_downs=7, ngf=4), 128, 96, 'multiple of 128'),
    (lambda: modules.NLayerDiscriminator('D', ndf=4), 16, 16, 'too small'),
])
def test_sizes_that_do_not_fit_fail_at_graph_build_time(graph, network, height, width, message):
    with pytest.raises(ValueError, match=message):
        network()(images(height, width))


def test_wrong_channel_count_is_rejected(graph):
    with pytest.raises(ValueError, match=r'takes \[N, H, W, 3\]'):
        modules.ResnetGenerator('G', ngf=4)(images(32, 32, 1))


@pytest.mark.parametrize('height, width, expected', [(256, 256, (30, 30)), (64, 96, (6, 10)),
                                                     (32, 32, (2, 2))])
def test_patchgan_output_map(graph, height, width, expected):
    D = modules.NLayerDiscriminator('D', ndf=4)
    assert D(images(height, width)).shape.as_list() == [None, *expected, 1]
    assert D.output_size(height) == expected[0]


def test_unet_output_and_pixel_discriminator_shapes(graph):
    U = modules.UnetGenerator('G', num_downs=7, ngf=4, output_nc=2, norm='batch')
    assert U(images(128, 256)).shape.as_list() == [None, 128, 256, 2]
    P = modules.PixelDiscriminator('D', ndf=4)
    assert P(images(20, 12)).shape.as_list() == [None, 20, 12, 1]


def test_applying_twice_reuses_and_creating_twice_raises(graph):
    G = modules.ResnetGenerator('G_A', ngf=4, n_blocks=2)
    G(images(32, 32))
    count = len(tf1.global_variables())
    G(images(16, 24))
    assert len(tf1.global_variables()) == count
    with pytest.raises(ValueError, match="network named 'G_A' already exists"):
        modules.ResnetGenerator('G_A', ngf=4, n_blocks=2)
    # Every call's ops live in the network's one name scope: one box in TensorBoard.
    tops = {op.name.split('/')[0] for op in graph.get_operations() if op.type == 'Conv2D'}
    assert tops == {'G_A'}


def test_variables_are_collected_by_exact_scope(graph):
    G_A = modules.ResnetGenerator('G_A', ngf=4, n_blocks=1)
    G_AB = modules.ResnetGenerator('G_AB', ngf=4, n_blocks=1)
    G_A(images(16, 16))
    G_AB(images(16, 16))
    assert G_A.variables and all(v.name.startswith('G_A/') for v in G_A.variables)
    assert len(G_A.variables) == len(G_AB.variables) == len(tf1.trainable_variables()) / 2
    with pytest.raises(RuntimeError, match='before its first call'):
        _ = modules.NLayerDiscriminator('D').variables


def test_batch_norm_networks_expose_their_update_ops(graph):
    G = modules.UnetGenerator('G', num_downs=5, ngf=4, norm='batch')
    D = modules.NLayerDiscriminator('D', ndf=4, norm='batch')
    D(G(images(32, 32)))
    assert len(G.update_ops) == 2 * 7  # mean and variance of 4 down + 3 up norms
    assert len(D.update_ops) == 2 * 3
    assert not set(G.update_ops) & set(D.update_ops)
    assert len(G.global_variables) == len(G.variables) + 14


def test_resnet_variable_names_are_stable(graph):
    G = modules.ResnetGenerator('G_A', ngf=4, n_blocks=2)
    G(images(16, 16))
    assert [v.op.name for v in G.variables] == [
        'G_A/input/conv/weights', 'G_A/input/conv/biases',
        'G_A/down_1/conv/weights', 'G_A/down_1/conv/biases',
        'G_A/down_2/conv/weights', 'G_A/down_2/conv/biases',
        'G_A/res_block_0/conv_0/weights', 'G_A/res_block_0/conv_0/biases',
        'G_A/res_block_0/conv_1/weights', 'G_A/res_block_0/conv_1/biases',
        'G_A/res_block_1/conv_0/weights', 'G_A/res_block_1/conv_0/biases',
        'G_A/res_block_1/conv_1/weights', 'G_A/res_block_1/conv_1/biases',
        'G_A/up_1/deconv/weights', 'G_A/up_1/deconv/biases',
        'G_A/up_2/deconv/weights', 'G_A/up_2/deconv/biases',
        'G_A/output/weights', 'G_A/output/biases']


def test_patchgan_and_unet_variable_names_are_stable(graph):
    D = modules.NLayerDiscriminator('D_A', ndf=4, norm='batch')
    D(images(32, 32))
    assert [v.op.name for v in D.global_variables] == [
        'D_A/layer_0/weights', 'D_A/layer_0/biases',
        'D_A/layer_1/conv/weights', 'D_A/layer_1/norm/gamma', 'D_A/layer_1/norm/beta',
        'D_A/layer_1/norm/moving_mean', 'D_A/layer_1/norm/moving_variance',
        'D_A/layer_2/conv/weights', 'D_A/layer_2/norm/gamma', 'D_A/layer_2/norm/beta',
        'D_A/layer_2/norm/moving_mean', 'D_A/layer_2/norm/moving_variance',
        'D_A/layer_3/conv/weights', 'D_A/layer_3/norm/gamma', 'D_A/layer_3/norm/beta',
        'D_A/layer_3/norm/moving_mean', 'D_A/layer_3/norm/moving_variance',
        'D_A/output/weights', 'D_A/output/biases']
    U = modules.UnetGenerator('G', num_downs=5, ngf=4, norm='batch')
    U(images(32, 32))
    names = [v.op.name for v in U.variables]
    assert names[:2] == ['G/down_1/weights', 'G/down_2/conv/weights']
    assert names[-4:] == ['G/up_2/norm/gamma', 'G/up_2/norm/beta',
                          'G/up_1/weights', 'G/up_1/biases']
    assert [n for n in names if n.endswith('deconv/weights')] == [
        f'G/up_{level}/deconv/weights' for level in (5, 4, 3, 2)]


def test_unet_dropout_on_the_three_innermost_decoder_levels(graph):
    U = modules.UnetGenerator('G', num_downs=8, ngf=2, use_dropout=True, norm='batch')
    U(images(256, 256))
    dropped = sorted({op.name.split('/')[1] for op in graph.get_operations()
                      if 'dropout' in op.name})
    assert dropped == ['up_5', 'up_6', 'up_7']
    eval_graph = tf.Graph()
    with eval_graph.as_default():
        modules.UnetGenerator('G', ngf=2, use_dropout=True, norm='batch')(
            images(256, 256), training=False)
        assert not [op for op in eval_graph.get_operations() if 'dropout' in op.name]
