"""--amp's dynamic loss scaling (replicas.py: ScaledOptimizers),
built here on a CPU, where the float16 rewrite does not run: the scaling
itself is the same graph on any device."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import tensorflow as tf
from test_train import ROOT, make_data_root, tiny_args

from cyclegan_tf import config, train
from cyclegan_tf.data import shapes
from cyclegan_tf.running import checkpoints, cluster, replicas, runs

tf1 = tf.compat.v1

TINY_MODEL = dict(crop_size=32, load_size=32, ngf=4, ndf=4, netG='resnet_6blocks', pool_size=0)


def _cyclegan(loss_scaling):
    """A tiny CycleGAN graph, finalized, in a session: its graph, net, saver,
    partial (restore), sess, overflow (an op setting the loss scales to 3e38)
    and scales (their variables)."""
    graph = tf.Graph()
    with graph.as_default():
        cfg = config.CycleGANConfig(amp=loss_scaling, **TINY_MODEL)
        net = replicas.create(cfg, cluster.Setup(gpu=loss_scaling))  # --amp on a GPU
        saver = tf1.train.Saver()
        partial = checkpoints.PartialRestore.of_graph()
        init = tf1.global_variables_initializer()
        scales = [v for v in tf1.get_collection(checkpoints.OPTIONAL_VARIABLES)
                  if 'current_loss_scale' in v.name]
        overflow = tf.group([tf1.assign(v, 3e38) for v in scales])  # any loss x it is inf
    graph.finalize()
    options = tf1.ConfigProto()  # Grappler's rewrites change no result and cost seconds
    options.graph_options.rewrite_options.disable_meta_optimizer = True
    sess = tf1.Session(graph=graph, config=options)
    sess.run(init)
    return types.SimpleNamespace(graph=graph, net=net, saver=saver, partial=partial, sess=sess,
                                 overflow=overflow, scales=scales)


def _values(built, exclude=()):
    """name -> value of the variables of ``built`` (_cyclegan) whose names
    contain none of the words ``exclude``."""
    variables = [v for v in built.graph.get_collection('variables')
                 if not any(word in v.name for word in exclude)]
    return dict(zip([v.op.name for v in variables], built.sess.run(variables)))


def test_loss_scaling_changes_no_update_where_nothing_overflows_and_skips_one_that_does(
        tmp_path):
    """--amp's loss scaling (built here on a CPU) multiplies the loss by 2^15
    and divides the gradients by it: where nothing overflows, the same
    updates as without it. A checkpoint without the loss scales restores
    into the graph with them, and the other way round. A step whose
    gradients overflow changes no weight and halves the scale."""
    plain, scaled = _cyclegan(False), _cyclegan(True)
    assert plain.partial is None
    assert scaled.partial.names == {'optimizers/loss_scale_G_A_G_B/current_loss_scale',
                                    'optimizers/loss_scale_G_A_G_B/good_steps',
                                    'optimizers/loss_scale_D_A_D_B/current_loss_scale',
                                    'optimizers/loss_scale_D_A_D_B/good_steps'}
    start = plain.saver.save(plain.sess, str(tmp_path / 'plain' / runs.PREFIX), global_step=0,
                             write_meta_graph=False)
    checkpoints.restore_checkpoint(scaled.sess, scaled.saver,
                                   scaled.graph.get_collection('variables'), start,
                                   partial=scaled.partial)
    rng = np.random.default_rng(0)
    for _ in range(3):
        batch = {key: rng.uniform(-1, 1, [1, 32, 32, 3]).astype(np.float32) for key in 'AB'}
        expected = plain.net.train_step(plain.sess, batch)['losses']
        got = scaled.net.train_step(scaled.sess, batch)['losses']
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, err_msg=name)
    weights = _values(plain)
    for name, value in _values(scaled, exclude=['loss_scale']).items():
        np.testing.assert_allclose(value, weights[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert scaled.sess.run(scaled.scales) == [2.0 ** 15] * 2
    back = scaled.saver.save(scaled.sess, str(tmp_path / 'scaled' / runs.PREFIX), global_step=3,
                             write_meta_graph=False)
    checkpoints.restore_checkpoint(plain.sess, plain.saver,
                                   plain.graph.get_collection('variables'), back)
    plain.sess.close()

    # A step whose gradients overflow is skipped and halves the scale.
    before = _values(scaled, exclude=['loss_scale', 'global_step'])
    scaled.sess.run(scaled.overflow)  # the scales at 3e38: any gradient x 3e38 is inf
    losses = scaled.net.train_step(scaled.sess, batch)['losses']
    assert all(np.isfinite(v) for v in losses.values())  # the losses shown are unscaled
    after = _values(scaled, exclude=['loss_scale', 'global_step'])
    for name, value in before.items():  # weights, Adam's moments and beta powers
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    assert scaled.sess.run(scaled.scales) == [np.float32(3e38) / 2] * 2
    assert scaled.sess.run(scaled.net.global_step) == 4  # the iteration counts: the loop moves on
    scaled.sess.close()


REPLICA_OVERFLOW = '''
import json, sys
import numpy as np
import tensorflow as tf
from cyclegan_tf import config
from cyclegan_tf.models import cycle_gan
from cyclegan_tf.running import cluster, replicas, session
cfg = config.CycleGANConfig(num_replicas=2, **json.loads(sys.argv[1]))
setup = cluster.configure(cfg)
tf1 = tf.compat.v1
with setup.strategy.scope():
    net = replicas.Replicated(cycle_gan.CycleGAN, cfg, setup.strategy, loss_scaling=True)
    init = tf1.global_variables_initializer()
mirrored = [v for v in tf1.global_variables()
            if 'loss_scale' not in v.name and 'global_step' not in v.name]
parts = [list(setup.strategy.experimental_local_results(v)) for v in mirrored]
def components():  # each variable's copies on the two devices
    return [[a.tolist() for a in copies] for copies in sess.run(parts)]
sess = tf1.Session(config=cluster.session_config(cfg, setup, base=session.session_config()))
devices = [d.name for d in sess.list_devices() if d.device_type == 'CPU']
sess.run(init)
batch = {k: np.full([2, 32, 32, 3], 0.5, np.float32) for k in 'AB'}
batch['A'][0] = np.nan  # replica 0's gradients are not finite, replica 1's are
start = components()
net.train_step(sess, batch)
skipped = components()
batch['A'][0] = -0.5
net.train_step(sess, batch)
print(json.dumps({'devices': len(devices), 'unchanged': skipped == start,
                  'in_step': all(a == b for a, b in components()),
                  'moved': components() != start}))
'''


def test_replicas_all_skip_a_step_whose_gradients_are_not_finite_on_one():
    """With 2 replicas (logical CPU devices, a subprocess), gradients that
    are not finite on one replica skip the step on both, so their weights
    stay equal; the next step updates both alike. The session train.py
    makes sees both devices."""
    result = subprocess.run([sys.executable, '-c', REPLICA_OVERFLOW, json.dumps(TINY_MODEL)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        'devices': 2, 'unchanged': True, 'in_step': True, 'moved': True}


def test_a_run_resumes_with_amp_on_a_gpu_from_a_checkpoint_without_it(tmp_path):
    """train.build with --amp on a GPU adds the loss scales; a checkpoint of
    the run saved without --amp restores into it, the scales fresh."""
    data_root = make_data_root(tmp_path / 'datasets')
    dataset_root = os.path.join(data_root, shapes.BUILTIN)

    def build(*flags, setup=None):
        cfg, _ = train.parse(tiny_args(tmp_path / 'runs', data_root, *flags))
        built = train.build(cfg, dataset_root, setup)
        return built, checkpoints.Checkpoints(cfg, built.saver, built.weights,
                                              partial=built.partial)

    plain, saving = build()
    assert plain.partial is None
    with tf1.Session(graph=plain.graph) as sess:
        sess.run(plain.init_op)
        assert saving.save(sess, plain.net, 1, 0).endswith('model.ckpt-1')
    built, restoring = build('--amp', setup=cluster.Setup(gpu=True))
    assert built.net.optimizers.loss_scaling and built.partial is not None  # no rewrite on a CPU
    with tf1.Session(graph=built.graph) as sess:
        path = restoring.restore(sess, built.net, built.init_op, 1)[3]
        scales = sess.run([v for v in built.graph.get_collection(checkpoints.OPTIONAL_VARIABLES)
                           if 'current_loss_scale' in v.name])
    assert path.endswith('model.ckpt-1') and scales == [2.0 ** 15] * 2
