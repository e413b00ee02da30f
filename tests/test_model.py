"""CycleGAN and the Model base: losses, optimizers, pool, schedule, training."""

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import config, model, registry
from cyclegan_tf.models import cycle_gan

tf1 = tf.compat.v1

TINY = dict(crop_size=32, load_size=32, ngf=4, ndf=4, netG='resnet_6blocks', pool_size=3)


def tiny(**overrides):
    return config.CycleGANConfig(**{**TINY, **overrides})


def pair(size=32, seed=0):
    rng = np.random.default_rng(seed)
    return {key: rng.uniform(-1, 1, [1, size, size, 3]).astype(np.float32) for key in 'AB'}


def session(graph):
    init = tf1.global_variables_initializer()
    graph.finalize()  # nothing may add ops once training starts
    # Grappler's rewrites change no result and cost seconds on each new graph.
    options = tf1.ConfigProto()
    options.graph_options.rewrite_options.disable_meta_optimizer = True
    sess = tf1.Session(graph=graph, config=options)
    sess.run(init)
    return sess


@pytest.fixture(scope='module')
def built():
    """One tiny CycleGAN graph for the tests that only read its structure."""
    g = tf.Graph()
    with g.as_default():
        return g, registry.create(tiny())


# ------------------------------------------------------------- structure


def test_graph_reads_like_the_papers_diagram(built):
    graph, _ = built
    tops = {op.name.split('/')[0] for op in graph.get_operations()}
    assert tops == {'inputs', 'G_A', 'G_B', 'D_A', 'D_B', 'fake_B', 'rec_A', 'fake_A', 'rec_B',
                    'idt_A', 'idt_B', 'image_pool', 'losses', 'optimizers', 'summaries',
                    'global_step', 'epoch'}
    assert graph.get_tensor_by_name('inputs/real_A:0').shape.as_list() == [None, 32, 32, 3]
    assert graph.get_tensor_by_name('losses/G:0') is not None


def test_each_generator_runs_once_per_input(built):
    """fake_B, rec_B, idt_A for G_A; the D update reuses this iteration's
    fakes through the pool rather than a second generator pass."""
    graph, _ = built
    for name in ('G_A', 'G_B'):
        tanh = [op for op in graph.get_operations()
                if op.type == 'Tanh' and op.name.startswith(name + '/')]
        assert len(tanh) == 3
    without_identity = tf.Graph()
    with without_identity.as_default():
        registry.create(tiny(lambda_identity=0.0))
        assert len([op for op in without_identity.get_operations() if op.type == 'Tanh']) == 4


def test_losses_are_named_like_the_official_implementation(built):
    _, m = built
    assert list(m.losses) == ['G_A', 'G_B', 'cycle_A', 'cycle_B', 'idt_A', 'idt_B', 'D_A', 'D_B']
    assert m.visual_rows == [['real_A', 'fake_B', 'rec_A', 'idt_B'],
                             ['real_B', 'fake_A', 'rec_B', 'idt_A']]


def test_every_trainable_variable_belongs_to_exactly_one_optimizer(built):
    graph, m = built
    assert set(m.optimizers) == {'G_A', 'G_B', 'D_A', 'D_B'}
    owned = []
    for name, variables in m.var_lists.items():
        assert variables and variables == m.networks[name].variables
        assert all(v.name.startswith(name + '/') for v in variables)
        owned += variables
    trainable = graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)
    assert sorted(v.name for v in owned) == sorted(v.name for v in trainable)
    for name, optimizer in m.optimizers.items():
        assert optimizer.get_name() == f'Adam_{name}'
        for variable in trainable:
            has_slot = optimizer.get_slot(variable, 'm') is not None
            assert has_slot == variable.name.startswith(name + '/')


def test_building_the_model_twice_in_one_graph_raises(graph):
    registry.create(tiny())
    with pytest.raises(ValueError, match='already exists'):
        registry.create(tiny())


def test_identity_loss_needs_matching_channels(graph):
    with pytest.raises(ValueError, match='identity loss needs input_nc == output_nc'):
        registry.create(tiny(output_nc=1))
    with tf.Graph().as_default():
        m = registry.create(tiny(output_nc=1, lambda_identity=0.0))
        assert 'idt_A' not in m.losses


# ---------------------------------------------------------------- losses


def test_gan_losses(graph):
    logits = tf.constant([[-2.0, 0.0, 3.0]])
    huge = tf.constant([1e4, -1e4])
    with tf1.Session() as sess:
        values = sess.run({
            'ls_real': model.gan_loss(logits, True, 'lsgan'),
            'ls_fake': model.gan_loss(logits, False, 'lsgan'),
            'bce_real': model.gan_loss(logits, True, 'vanilla'),
            'w_real': model.gan_loss(logits, True, 'wgangp'),
            'w_fake': model.gan_loss(logits, False, 'wgangp'),
            'huge': model.gan_loss(huge, False, 'vanilla')})
    assert values['ls_real'] == pytest.approx((9 + 1 + 4) / 3)
    assert values['ls_fake'] == pytest.approx((4 + 0 + 9) / 3)
    expected = np.mean(np.log1p(np.exp([2.0, 0.0, -3.0])))
    assert values['bce_real'] == pytest.approx(expected, rel=1e-5)
    assert values['w_real'] == pytest.approx(-1 / 3) and values['w_fake'] == pytest.approx(1 / 3)
    assert values['huge'] == pytest.approx(5000.0)  # finite where log(sigmoid) would overflow
    with pytest.raises(ValueError, match='unknown gan_mode'):
        model.gan_loss(logits, True, 'hinge')


def test_gradient_penalty_of_a_linear_critic(graph):
    """D(x) = sum(w * x) has gradient w everywhere: the penalty is (|w| - 1)^2."""
    w = tf.constant(np.full([1, 4, 4, 1], 0.5, np.float32))  # |w| = 0.5 * 4 = 2

    def critic(x):
        return tf.reduce_sum(w * x, axis=[1, 2, 3])

    real, fake = tf.zeros([3, 4, 4, 1]), tf.ones([3, 4, 4, 1])
    with tf1.Session() as sess:
        assert sess.run(model.gradient_penalty(critic, real, fake, 10.0)) == pytest.approx(10.0)


def test_wgangp_applies_the_penalty_and_trains(graph):
    m = registry.create(tiny(gan_mode='wgangp'))
    assert [op for op in graph.get_operations() if op.name.startswith('losses/')
            and 'gradients' in op.name]
    sess = session(graph)
    losses = [m.train_step(sess, pair())['losses'] for _ in range(2)]
    assert all(np.isfinite(v) for step in losses for v in step.values())


# ---------------------------------------------------------- image pool


def test_pool_fills_first_then_swaps_half_the_time():
    pool = cycle_gan.ImagePool(3, seed=0)
    first = [np.full([1, 2, 2, 1], i, np.float32) for i in range(3)]
    for image in first:
        assert pool.query(image) is not image and np.array_equal(pool.query.__self__.images[-1],
                                                                 image[0])
    assert len(pool.images) == 3
    returned_old = 0
    for i in range(3, 403):
        image = np.full([1, 2, 2, 1], i, np.float32)
        out = pool.query(image)
        assert len(pool.images) == 3
        if out[0, 0, 0, 0] != i:  # an older image came back; the new one took its place
            returned_old += 1
            assert any(stored[0, 0, 0] == i for stored in pool.images)
    assert 160 < returned_old < 240  # p = 0.5 over 400 queries


def test_pool_handles_batches_and_size_zero():
    batch = np.arange(4, dtype=np.float32).reshape([4, 1, 1, 1])
    assert cycle_gan.ImagePool(0).query(batch) is batch
    pool = cycle_gan.ImagePool(2, seed=1)
    out = pool.query(batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert out[:2].ravel().tolist() == [0, 1]  # the first two fill the pool


def test_pool_state_round_trip_continues_identically():
    a, b = cycle_gan.ImagePool(4, seed=3), cycle_gan.ImagePool(4, seed=99)
    rng = np.random.default_rng(0)
    for _ in range(6):
        a.query(rng.normal(size=[1, 2, 2, 3]).astype(np.float32))
    b.load_state(a.state())
    for _ in range(20):
        image = rng.normal(size=[1, 2, 2, 3]).astype(np.float32)
        assert np.array_equal(a.query(image), b.query(image))


def test_pool_inside_the_graph_keeps_history_across_steps(graph):
    m = registry.create(tiny(pool_size=2))
    sess = session(graph)
    for step in range(3):
        m.train_step(sess, pair(seed=step))
    assert len(m.pools['A'].images) == len(m.pools['B'].images) == 2
    state = m.host_state()
    assert set(state) == {'pool_A/images', 'pool_A/rng', 'pool_B/images', 'pool_B/rng'}
    assert state['pool_A/images'].shape == (2, 32, 32, 3)


# --------------------------------------------------------- learning rate


@pytest.mark.parametrize('epoch, expected', [
    (0, 1.0), (99, 1.0), (100, 1 - 1 / 101), (150, 1 - 51 / 101), (199, 1 / 101)])
def test_linear_schedule_corners(epoch, expected):
    assert model.lr_factor(epoch, config.CycleGANConfig()) == pytest.approx(expected)


def test_other_schedules():
    step = config.CycleGANConfig(lr_policy='step', lr_decay_iters=10)
    assert [model.lr_factor(e, step) for e in (0, 9, 10, 25)] == pytest.approx(
        [1, 1, 0.1, 0.01])
    cosine = config.CycleGANConfig(lr_policy='cosine', n_epochs=6, n_epochs_decay=4)
    assert [model.lr_factor(e, cosine) for e in (0, 5, 10)] == pytest.approx([1, 0.5, 0])


def test_learning_rate_tensor_follows_the_epoch_variable(graph):
    cfg = tiny(n_epochs=2, n_epochs_decay=3, lr=0.1)
    m = registry.create(cfg)
    sess = session(graph)
    rates = []
    for epoch in range(7):
        m.set_epoch(sess, epoch)
        rates.append(sess.run(m.learning_rate))
    assert rates == pytest.approx([0.1, 0.1, 0.075, 0.05, 0.025, 0.0, 0.0])


# -------------------------------------------------------------- training


def test_train_step_contract_and_one_global_step_per_iteration(graph):
    m = registry.create(tiny())
    sess = session(graph)
    result = m.train_step(sess, pair(), summaries=True, visuals=True)
    assert set(result['losses']) == set(m.losses)
    assert isinstance(result['summary'], bytes)
    summary = tf1.Summary.FromString(result['summary'])
    assert {v.tag for v in summary.value} == {f'loss/{k}' for k in m.losses} | {'lr'}
    assert set(result['visuals']) == {n for row in m.visual_rows for n in row}
    assert result['visuals']['fake_B'].shape == (1, 32, 32, 3)
    m.train_step(sess, pair())
    assert sess.run(m.global_step) == 2


def test_every_network_is_updated_by_a_step(graph):
    m = registry.create(tiny())
    sess = session(graph)
    before = sess.run({name: net.variables for name, net in m.networks.items()})
    m.train_step(sess, pair())
    after = sess.run({name: net.variables for name, net in m.networks.items()})
    for name in m.networks:
        assert any(not np.array_equal(b, a) for b, a in zip(before[name], after[name])), name


def test_updates_use_this_iterations_forward_pass_and_the_starting_weights(graph):
    """One step's update of every network equals Adam's first step on the
    gradients taken before any update: G was judged by the discriminators
    before their update, and D trained on this iteration's fakes (no second,
    post-update generator pass)."""
    cfg = tiny(pool_size=0)
    m = registry.create(cfg)
    variables = {name: net.variables for name, net in m.networks.items()}
    grads = {'G': tf.gradients(graph.get_tensor_by_name('losses/G:0'),
                               variables['G_A'] + variables['G_B']),
             'D': tf.gradients(graph.get_tensor_by_name('losses/D:0'),
                               variables['D_A'] + variables['D_B'])}
    sess = session(graph)
    batch = pair()
    start, g = sess.run([variables, grads], m.feed_dict(batch))
    m.train_step(sess, batch)
    end = sess.run(variables)
    # Adam's first step as torch.optim.Adam (model.TorchAdam): lr * g / (|g| + epsilon).
    for group, names in (('G', ('G_A', 'G_B')), ('D', ('D_A', 'D_B'))):
        before = [w for name in names for w in start[name]]
        after = [w for name in names for w in end[name]]
        for w0, w1, grad in zip(before, after, g[group]):
            expected = w0 - cfg.lr * grad / (np.abs(grad) + 1e-8)
            np.testing.assert_allclose(w1, expected, rtol=0, atol=cfg.lr * 1e-3)


def test_a_few_steps_on_a_fixed_pair_lower_the_cycle_loss(graph):
    m = registry.create(tiny(lr=0.001, ngf=8, ndf=8))
    sess = session(graph)
    batch = pair()
    cycle = [sum(m.train_step(sess, batch)['losses'][k] for k in ('cycle_A', 'cycle_B'))
             for _ in range(25)]
    assert np.mean(cycle[-5:]) < 0.7 * np.mean(cycle[:3])


def test_same_seed_same_losses():
    def first_losses():
        with tf.Graph().as_default() as g:
            m = registry.create(tiny(seed=7))
            sess = session(g)
            return [m.train_step(sess, pair())['losses'] for _ in range(2)]

    assert first_losses() == first_losses()


def test_batch_norm_variant_runs_its_update_ops(graph):
    m = registry.create(tiny(norm='batch', batch_size=2))
    sess = session(graph)
    mean = [v for v in tf1.global_variables() if v.op.name == 'G_A/input/norm/moving_mean'][0]
    before = sess.run(mean)
    rng = np.random.default_rng(0)
    batch = {k: rng.uniform(-1, 1, [2, 32, 32, 3]).astype(np.float32) for k in 'AB'}
    m.train_step(sess, batch)
    assert not np.array_equal(before, sess.run(mean))


def test_inference_graph_restores_from_a_training_checkpoint(tmp_path):
    cfg = tiny()
    with tf.Graph().as_default() as g:
        m = registry.create(cfg)
        saver = tf1.train.Saver()
        sess = session(g)
        m.train_step(sess, pair())
        path = saver.save(sess, str(tmp_path / 'model'), global_step=m.global_step)
        expected = sess.run(g.get_tensor_by_name('fake_B:0'), {m.inputs['A']: pair()['A']})
    with tf.Graph().as_default():
        inputs, outputs = cycle_gan.CycleGAN.build_inference(cfg)
        with tf1.Session() as sess:
            tf1.train.Saver().restore(sess, path)
            fake_B = sess.run(outputs['fake_B'], {inputs['A']: pair()['A']})
            bigger = sess.run(outputs['rec_A'], {inputs['A']: np.zeros([2, 48, 64, 3])})
    np.testing.assert_allclose(fake_B, expected, atol=1e-5)
    assert bigger.shape == (2, 48, 64, 3)


def test_adam_adds_epsilon_to_the_corrected_second_moment_as_torch(graph):
    """model.TorchAdam is torch.optim.Adam: w -= lr / (1 - b1^t) * m / (sqrt(v) /
    sqrt(1 - b2^t) + eps), over steps and for gradients near eps, where
    tf.train.AdamOptimizer's form (eps added before the correction) steps far less."""
    grads = np.array([1e-8, -3e-8, 1e-6, 0.5], np.float32)
    w = tf1.get_variable('w', initializer=np.zeros(4, np.float32))
    g = tf1.placeholder(tf.float32, [4])
    step = model.TorchAdam(0.1, 0.5).apply_gradients([(g, w)])
    sess = session(graph)
    m = v = np.zeros(4)
    expected = np.zeros(4)
    for t in range(1, 4):
        scale = grads * t  # a different gradient at each step
        sess.run(step, {g: scale})
        m, v = 0.5 * m + 0.5 * scale, 0.999 * v + 0.001 * scale ** 2
        expected -= 0.1 / (1 - 0.5 ** t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** t) + 1e-8)
        np.testing.assert_allclose(sess.run(w), expected, rtol=1e-5)
    assert abs(expected[0]) > 0.3 * 3 * 0.1  # half a step or more: eps matters there
