"""Fault injection: what happens to a run's saved work, and to the user,
when files are missing, half-written, corrupt, too small or unreadable, when
the disk fills up, when two processes train one folder, when training
diverges (the items of issue 14 but 8-10 and 15-17).

Every failure is one line on stderr and a documented exit status; nothing
saved is lost (checkpoints compared byte for byte before and after). Two
tiny runs (module fixtures) are copied for each test that needs one: the
toy GAN's (checkpoints 2, 4, 6; a graph that builds in a fraction of a
second) where the checkpoint machinery is the same for every model, a
CycleGAN's (checkpoints 2, 3, 4) where image pools or images matter; the
rest work on a graph of three variables. tools/kill_during_save.py kills
train.py during saves, over and over (not part of the suite).
"""

import errno
import glob
import hashlib
import io
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import train_pipeline
from PIL import Image
from test_train import ROOT, make_data_root, tiny_args

from cyclegan_tf import config, sample, train
from cyclegan_tf.models import cycle_gan
from cyclegan_tf.running import checkpoints, commands, runs

tf1 = tf.compat.v1
FAST = ['--print_freq=1', '--summary_freq=0', '--display_freq=0']


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_data_root(tmp_path_factory.mktemp('datasets'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_root):
    """A tiny CycleGAN run of 4 steps (epochs of 2 steps, --save_freq 3,
    --save_epoch_freq 1): checkpoints 2, 3 and 4. Returns (run folder, argv without --max_steps)."""
    runs_dir = tmp_path_factory.mktemp('runs')
    args = tiny_args(runs_dir, data_root, '--save_freq=3', '--save_epoch_freq=1',
                     '--lambda_identity=0', *FAST)
    assert train.main(args + ['--max_steps=4']) == 0
    run_dir = os.path.join(runs_dir, 'tiny')
    assert _steps(run_dir) == [2, 3, 4]
    return run_dir, args


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """A toy GAN run of 6 steps saved every 2: checkpoints 2, 4 and 6.
    Returns (run folder, argv without --max_steps)."""
    runs_dir = tmp_path_factory.mktemp('runs')
    args = ['train.py', '--model=toy_gan', f'--runs_dir={runs_dir}', '--name=tiny',
            '--batch_size=16', '--hidden_units=8', '--save_freq=2', *FAST]
    assert train.main(args + ['--max_steps=6']) == 0
    run_dir = os.path.join(runs_dir, 'tiny')
    assert _steps(run_dir) == [2, 4, 6]
    return run_dir, args


def _copy(trained, tmp_path):
    """A copy of the trained run in tmp_path/runs: (run folder, checkpoints, argv)."""
    run_dir, args = trained
    copy = os.path.join(tmp_path, 'runs', 'tiny')
    shutil.copytree(run_dir, copy)
    args = [a for a in args if not a.startswith('--runs_dir=')] + [
        f'--runs_dir={os.path.join(tmp_path, "runs")}']
    return copy, runs.checkpoint_dir(copy), args


def _steps(run_dir):
    return [runs.step_of(p) for p in runs.checkpoint_prefixes(runs.checkpoint_dir(run_dir))]


def _digests(folder, *patterns):
    """{file name: sha256} of the files in ``folder`` (matching ``patterns``)."""
    names = sorted(os.listdir(folder))
    if patterns:
        names = [n for n in names if any(glob.fnmatch.fnmatch(n, p) for p in patterns)]
    return {n: hashlib.sha256(open(os.path.join(folder, n), 'rb').read()).hexdigest()
            for n in names if os.path.isfile(os.path.join(folder, n))}


def _one_error_line(capsys, program):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'{program}: error: '), err
    assert 'Traceback' not in err[0]
    return err[0]


def _unlocked(run_dir):
    """Whether the run's lock is free (train.py released it)."""
    try:
        with runs.RunLock(run_dir):
            return True
    except runs.RunError:
        return False


# ----------------------------------------- 1, 7: a wrong latest, leftovers


def test_a_missing_latest_checkpoint_resumes_from_the_newest_complete_one(
        toy, tmp_path, capsys, caplog):
    """Issue 14.1 and 14.7: model.ckpt-6 deleted, leftovers of killed saves
    beside it; --lr changed. Resumes from model.ckpt-4 saying why, deletes
    the leftovers only, and keeps 2 and 4 byte for byte."""
    run_dir, ckpt, args = _copy(toy, tmp_path)
    for path in glob.glob(os.path.join(ckpt, 'model.ckpt-6.*')):
        os.remove(path)
    kept = _digests(ckpt, 'model.ckpt-[24].*')
    leftovers = ['model.ckpt-9.data-00000-of-00001', 'model.ckpt-9.host.npz',
                 'model.ckpt-4.index.tempstate8151', 'model.ckpt-8.data-00000-of-00001'
                 '.tempstate99', '.host-x1y2.npz', 'checkpoint.tmp0a1b']
    for name in leftovers:
        with open(os.path.join(ckpt, name), 'wb') as f:
            f.write(b'half written')
    with open(os.path.join(ckpt, 'notes.txt'), 'w') as f:
        f.write('mine')
    assert train.main(args + ['--max_steps=7', '--lr=0.001']) == 0
    out = capsys.readouterr().out
    assert 'New run' not in out
    assert f'Resuming {run_dir} from {ckpt}/model.ckpt-4 (step 4, epoch 1)' in out
    assert 'checkpoints/checkpoint names model.ckpt-6, which is missing: resuming from ' \
           'model.ckpt-4' in caplog.text
    assert 'removed 6 leftover file(s)' in caplog.text
    assert not set(leftovers) & set(os.listdir(ckpt))
    assert open(os.path.join(ckpt, 'notes.txt')).read() == 'mine'
    assert _steps(run_dir) == [2, 4, 6, 7]  # nothing rotated out (keep 5)
    assert _digests(ckpt, 'model.ckpt-[24].*') == kept
    state = tf1.train.get_checkpoint_state(ckpt)
    assert [runs.step_of(p) for p in state.all_model_checkpoint_paths] == [2, 4, 6, 7]
    reader = tf1.train.load_checkpoint(os.path.join(ckpt, 'model.ckpt-7'))
    assert reader.get_tensor('global_step') == 7
    assert runs.load_config(run_dir).lr == 0.001
    assert _unlocked(run_dir)


def test_the_state_file_deleted_or_naming_another_checkpoint(toy, tmp_path, caplog):
    """Issue 14.1: whatever checkpoints/checkpoint says (or if it is gone), the
    newest complete checkpoint on disk is the one, with the reason."""
    ckpt = str(tmp_path / 'checkpoints')
    shutil.copytree(runs.checkpoint_dir(toy[0]), ckpt)
    name = os.path.join(ckpt, 'model.ckpt-6')
    assert checkpoints.newest_checkpoint(ckpt) == name and 'warning' not in caplog.text

    os.remove(os.path.join(ckpt, 'checkpoint'))
    assert checkpoints.newest_checkpoint(ckpt) == name
    assert 'checkpoints/checkpoint is missing: resuming from model.ckpt-6, the newest ' \
           'complete checkpoint on disk' in caplog.text
    for named, message in [
            ('model.ckpt-10', 'names model.ckpt-10, which is missing: resuming from model.ckpt-6'),
            ('model.ckpt-4', 'names model.ckpt-4, but model.ckpt-6 is newer and complete')]:
        with open(os.path.join(ckpt, 'checkpoint'), 'w') as f:
            f.write(f'model_checkpoint_path: "{named}"\n')
        caplog.clear()
        assert checkpoints.newest_checkpoint(ckpt) == name
        assert message in caplog.text


# -------------------------------------- 2, 4: incomplete data, host state


def test_a_checkpoint_without_data_falls_back_in_train_and_sample(trained, tmp_path, capsys,
                                                                  caplog):
    """Issue 14.2 and 14.4: model.ckpt-4's data file and model.ckpt-3's host
    state are gone. train.py and sample.py fall back to model.ckpt-3 with a
    warning, the pools start empty with a notice, and no file changes."""
    run_dir, ckpt, args = _copy(trained, tmp_path)
    os.remove(os.path.join(ckpt, 'model.ckpt-4.data-00000-of-00001'))
    os.remove(os.path.join(ckpt, 'model.ckpt-3.host.npz'))
    before = _digests(ckpt)
    assert train.main(args + ['--max_steps=3']) == 0
    out = capsys.readouterr().out
    assert f'from {ckpt}/model.ckpt-3 (step 3, ' in out and 'nothing to do' in out
    assert ('model.ckpt-4 is incomplete or unreadable (its data file '
            'model.ckpt-4.data-00000-of-00001 is missing): resuming from model.ckpt-3'
            ) in caplog.text
    assert 'model.ckpt-3.host.npz is missing: the image pools start empty' in caplog.text
    assert _digests(ckpt) == before

    caplog.clear()
    results = tmp_path / 'results'
    assert sample.main(['sample.py', f'--run={run_dir}', '--num_test=1',
                        f'--results_dir={results}']) == 0
    assert f'Translating with {ckpt}/model.ckpt-3 into' in capsys.readouterr().out
    assert 'model.ckpt-4 is incomplete or unreadable' in caplog.text
    assert len(os.listdir(results / 'images')) == 6  # real, fake, rec of A and B
    assert _digests(ckpt) == before


def test_no_complete_checkpoint_is_one_line_and_leaves_the_files(trained, tmp_path, capsys):
    """Issue 14.2: every data file gone: one line, exit 2, in train.py before
    the graph is built and in sample.py; nothing deleted or written."""
    run_dir, ckpt, args = _copy(trained, tmp_path)
    for path in glob.glob(os.path.join(ckpt, '*.data-*')):
        os.remove(path)
    before = _digests(ckpt)
    assert train.main(args + ['--max_steps=20']) == 2
    line = _one_error_line(capsys, 'train.py')
    assert f'no complete checkpoint in {ckpt}: model.ckpt-4 (its data file ' \
           f'model.ckpt-4.data-00000-of-00001 is missing)' in line
    assert 'and 1 more' in line and 'left as they are' in line
    assert sample.main(['sample.py', f'--run={run_dir}']) == 2
    assert 'no complete checkpoint' in _one_error_line(capsys, 'sample.py')
    assert _digests(ckpt) == before and _unlocked(run_dir)


class TinyNet:
    """What Checkpoints uses of a model, on three variables: global_step,
    epoch, a weight, and an ImagePool as the state outside the graph."""

    def __init__(self, weight=1.0):
        self.global_step = tf1.train.get_or_create_global_step()
        self.epoch = tf1.get_variable('epoch', [], tf.int64, trainable=False,
                                      initializer=tf1.zeros_initializer())
        self.weight = tf1.get_variable('w', [3], initializer=tf1.constant_initializer(weight))
        self.step_op = tf1.assign_add(self.global_step, 1)
        self.pool = cycle_gan.ImagePool(4, seed=1)

    def host_state(self):
        return {f'pool_A/{k}': v for k, v in self.pool.state().items()}

    def load_host_state(self, state):
        self.pool.load_state({k[len('pool_A/'):]: v for k, v in state.items()
                              if k.startswith('pool_A/')})


def _tiny(tmp_path, *, keep=5, weight=1.0):
    """(Checkpoints, session, net) of a TinyNet in the current default graph."""
    net = TinyNet(weight)
    saver = tf1.train.Saver(max_to_keep=keep, save_relative_paths=True)
    checks = checkpoints.WeightCheck()
    init = tf1.global_variables_initializer()
    cfg = config.CycleGANConfig(runs_dir=str(tmp_path), name='x', keep_checkpoints=keep)
    sess = tf1.Session()
    return checkpoints.Checkpoints(cfg, saver, checks), sess, net, init


def test_a_corrupt_or_foreign_host_state_starts_the_pools_empty(graph, tmp_path, caplog):
    """Issue 14.4: a truncated .host.npz, and one without the pool's keys:
    the pools start empty (not half loaded), with a one-line notice."""
    saving, sess, net, init = _tiny(tmp_path)
    sess.run(init)
    net.pool.query(np.ones([2, 4, 4, 3], np.float32))
    sess.run(net.step_op)
    path = saving.save(sess, net, 1, 0)
    host = path + runs.HOST_SUFFIX
    data = open(host, 'rb').read()
    for content, why in [(data[:len(data) // 2], 'is unreadable'),
                         (None, 'does not fit this model')]:
        if content is None:
            np.savez(host, **{'model/pool_A/images': np.ones([1, 4, 4, 3])})  # no rng
        else:
            open(host, 'wb').write(content)
        fresh = TinyNet.__new__(TinyNet)
        fresh.pool = cycle_gan.ImagePool(4, seed=1)
        fresh.global_step, fresh.epoch = net.global_step, net.epoch
        caplog.clear()
        step, _, _, restored, loaded = checkpoints.Checkpoints(
            saving.cfg, saving.saver, saving.weights).restore(sess, fresh, init, 2)
        assert (step, restored, loaded) == (1, path, False)
        assert fresh.pool.images == []
        assert f'model.ckpt-1.host.npz {why}' in caplog.text
        assert 'the image pools start empty' in caplog.text
        assert len([r for r in caplog.records if r.name == checkpoints.logger.name]) == 1


def test_a_truncated_data_file_falls_back_to_the_checkpoint_before(graph, tmp_path, caplog):
    """Issue 14.2: all files there, but the newest data file cut short (a
    copy that stopped): the restore fails, the one before is restored, and
    the Saver's rotation learns the good ones only."""
    saving, sess, net, init = _tiny(tmp_path)
    sess.run(init)
    for step in (1, 2):
        sess.run([net.step_op, tf1.assign(net.weight, [step] * 3)])
        saving.save(sess, net, step, 0)
    data = os.path.join(saving.dir, 'model.ckpt-2.data-00000-of-00001')
    os.truncate(data, os.path.getsize(data) // 2)
    sess.run(init)
    step, _, _, path, loaded = saving.restore(sess, net, init, 10)
    assert (step, os.path.basename(path), loaded) == (1, 'model.ckpt-1', True)
    assert sess.run(net.weight).tolist() == [1, 1, 1]
    assert 'model.ckpt-2 is incomplete or unreadable (cannot restore checkpoint' in caplog.text
    assert saving.saver.last_checkpoints == [path]


def test_a_truncated_data_file_names_the_file_the_variable_and_an_older_checkpoint(
        graph, tmp_path):
    """Issue 21.4: restoring a checkpoint whose data file was cut short said
    'cannot restore checkpoint .../model.ckpt-3 (Graph execution error:)'.
    Now the message names the data file, the variable TensorFlow could not
    read, and the older checkpoint that loads (model.ckpt-2: model.ckpt-1
    is older still); with none, it says so."""
    saving, sess, net, init = _tiny(tmp_path)
    sess.run(init)
    for step in (1, 2, 3):
        sess.run([net.step_op, tf1.assign(net.weight, [step] * 3)])
        saving.save(sess, net, step, 0)
    data = os.path.join(saving.dir, 'model.ckpt-3.data-00000-of-00001')
    os.truncate(data, os.path.getsize(data) - 4)  # w, the last variable by name, is cut
    with pytest.raises(runs.CheckpointError) as raised:
        checkpoints.restore_checkpoint(sess, saving.saver, tf1.global_variables(),
                                       saving.prefix(3))
    message = str(raised.value)
    assert message.startswith(f'cannot restore checkpoint {saving.prefix(3)}: its data file '
                              f'model.ckpt-3.data-00000-of-00001 is damaged: variable w cannot '
                              f'be read (')
    assert message.endswith(f'; model.ckpt-2 loads (--checkpoint {saving.prefix(2)})')
    assert len(message.splitlines()) == 1
    for step in (1, 2):
        os.remove(os.path.join(saving.dir, f'model.ckpt-{step}.data-00000-of-00001'))
    with pytest.raises(runs.CheckpointError, match='; no older checkpoint in .* loads$'):
        checkpoints.restore_checkpoint(sess, saving.saver, tf1.global_variables(),
                                       saving.prefix(3))


def test_keep_checkpoints_0_keeps_every_checkpoint_and_its_host_state(graph, tmp_path):
    """Issue 14.4: --keep_checkpoints 0 means keep all (tf.train.Saver's
    max_to_keep 0), host states included; with 2 the Saver's rotation and
    the host states go together."""
    for keep, kept in [(0, [1, 2, 3, 4]), (2, [3, 4])]:
        with tf.Graph().as_default():
            checkpoints, sess, net, init = _tiny(tmp_path / str(keep), keep=keep)
            sess.run(init)
            for step in range(1, 5):
                sess.run(net.step_op)
                checkpoints.save(sess, net, step, 0)
        folder = checkpoints.dir
        assert [runs.step_of(p) for p in runs.checkpoint_prefixes(folder)] == kept
        hosts = sorted(glob.glob(os.path.join(folder, '*' + runs.HOST_SUFFIX)))
        assert [runs.step_of(p[:-len(runs.HOST_SUFFIX)]) for p in hosts] == kept


def test_pools_of_images_of_different_sizes_are_saved_and_loaded():
    """Issue 14.3: --preprocess none or scale_width fills a pool with images
    of different sizes; they are saved one array each."""
    pool = cycle_gan.ImagePool(3, seed=0)
    for shape in ([1, 24, 52, 3], [1, 40, 40, 3], [1, 24, 52, 3]):
        pool.query(np.random.default_rng(len(pool.images)).normal(size=shape).astype(np.float32))
    buffer = io.BytesIO()
    np.savez(buffer, **pool.state())
    buffer.seek(0)
    with np.load(buffer) as npz:
        state = {k: npz[k] for k in npz.files}
    again = cycle_gan.ImagePool(3, seed=5)
    again.load_state(state)
    assert [im.shape for im in again.images] == [(24, 52, 3), (40, 40, 3), (24, 52, 3)]
    assert all(np.array_equal(a, b) for a, b in zip(again.images, pool.images))
    assert again.rng.uniform() == pool.rng.uniform()
    same = cycle_gan.ImagePool(3)
    same.query(np.zeros([2, 8, 8, 3], np.float32))
    assert same.state()['images'].shape == (2, 8, 8, 3)  # one size: one array, as before


# ------------------------------------------------- 3, 12: sizes in training


def _write_images(folder, sizes, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, (height, width) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(
            os.path.join(folder, f'{i}.png'))


def test_small_and_odd_sizes_train_and_pools_of_mixed_sizes_save(tmp_path, capsys):
    """Issue 14.3 and 14.12: --preprocess none with a 3x50 image and odd
    sizes: images resized to the networks' multiple of 4 and at least 24 px
    (the PatchGAN's minimum); the pools hold fakes of different sizes and
    the checkpoint saves them."""
    dataset = tmp_path / 'odd'
    sizes = [(3, 50), (37, 41), (30, 26)]
    _write_images(dataset / 'trainA', sizes)
    _write_images(dataset / 'trainB', sizes[::-1], seed=1)
    args = ['train.py', f'--runs_dir={tmp_path / "runs"}', f'--dataset={dataset}', '--name=odd',
            '--crop_size=32', '--load_size=32', '--ngf=4', '--ndf=4', '--netG=resnet_6blocks',
            '--preprocess=none', '--max_steps=3', '--serial_batches', '--lambda_identity=0',
            *FAST]
    assert train.main(args) == 0, capsys.readouterr().err
    path = tf1.train.latest_checkpoint(os.path.join(tmp_path, 'runs', 'odd', 'checkpoints'))
    assert runs.step_of(path) == 3
    host = runs.load_host_state(path)
    shapes = sorted(v.shape for k, v in host.items() if k.startswith('model/pool_B/image_'))
    # 3x50 -> 24x48 (4x48 rounded, then the minimum); 30x26 -> 32x24 (half to even).
    assert shapes == [(24, 48, 3), (32, 24, 3), (36, 40, 3)]


@pytest.mark.parametrize('preprocess, sizes, expected', [
    ('none', [(3, 50), (37, 41), (1, 1)], [(24, 48), (36, 40), (24, 24)]),
    # width to 32, height 32 h / w but at least crop_size 32: 37, 45, 32.
    ('scale_width', [(37, 32), (45, 32), (50, 64)], [(36, 32), (44, 32), (32, 32)]),
])
def test_the_training_pipeline_gives_sizes_the_networks_take(preprocess, sizes, expected,
                                                             tmp_path, graph):
    """Issue 14.12 at the data layer: CycleGAN's training sizes (multiples of
    4, at least 24) for every image, where scale_width left heights that are
    not multiples of 4 (an assert at step 1) and none too small ones."""
    _write_images(tmp_path / 'trainA', sizes)
    _write_images(tmp_path / 'trainB', sizes)
    cfg = config.CycleGANConfig(crop_size=32, load_size=32, ngf=4, ndf=4,
                                netG='resnet_6blocks', preprocess=preprocess,
                                serial_batches=True, no_flip=True)
    assert cycle_gan.CycleGAN.training_sizes(cfg) == (4, 24)
    pipeline = train_pipeline(cfg, root=str(tmp_path),
                              sizes=cycle_gan.CycleGAN.training_sizes(cfg))
    with tf1.Session() as sess:
        shapes = [sess.run(pipeline.next_batch)['A'].shape[1:3] for _ in sizes]
    assert shapes == expected


# ------------------------------------------------------ 5: the run lock


def test_a_second_train_on_the_same_run_is_refused_naming_the_first(toy, tmp_path, capsys):
    """Issue 14.5: one line naming the holder's pid and host, exit 2, nothing
    written; after the holder is killed (kill -9) the lock is free."""
    run_dir, ckpt, args = _copy(toy, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time\nfrom cyclegan_tf.running import runs\n'
         'lock = runs.RunLock(sys.argv[1]).__enter__()\nprint("locked", flush=True)\n'
         'time.sleep(300)', run_dir], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        before = _digests(ckpt)
        assert train.main(args + ['--max_steps=20']) == 2
        line = _one_error_line(capsys, 'train.py')
        assert f'{run_dir} is in use by train.py (pid {holder.pid} on ' in line
        assert 'wait for it to end or stop it' in line
        assert _digests(ckpt) == before
        assert not _unlocked(run_dir)
    finally:
        holder.kill()
        holder.wait()
    assert _unlocked(run_dir)  # the kernel released it with the process


def test_the_lock_of_a_new_run_that_failed_leaves_no_folder(tmp_path):
    run_dir = tmp_path / 'new'
    with pytest.raises(RuntimeError):
        with runs.RunLock(str(run_dir)):
            assert open(run_dir / runs.LOCK_FILE).read().startswith(
                f'train.py (pid {os.getpid()} on ')
            raise RuntimeError('the graph did not build')
    assert not run_dir.exists()


# -------------------------------------------------------- 6: a full disk


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_checkpoint(
        toy, tmp_path, capsys, monkeypatch):
    """Issue 14.6: the Saver fails for lack of space after writing part of
    its data: one line, exit 2; model.ckpt-6 stays the latest, every file
    byte for byte, and nothing of step 8 is left (no orphan host state)."""
    run_dir, ckpt, args = _copy(toy, tmp_path)
    before = _digests(ckpt)

    def full_disk(self, sess, save_path, global_step=None, **kwargs):
        with open(f'{save_path}-{global_step}.data-00000-of-00001.tempstate42', 'wb') as f:
            f.write(b'x' * 1000)
        raise tf.errors.ResourceExhaustedError(
            None, None, f'{save_path}-{global_step}.data-00000-of-00001.tempstate42; '
                        f'No space left on device')

    monkeypatch.setattr(tf1.train.Saver, 'save', full_disk)
    assert train.main(args + ['--max_steps=8']) == 2
    line = _one_error_line(capsys, 'train.py')
    assert 'cannot save the checkpoint of step 8' in line and 'No space left' in line
    assert f'The last checkpoint, step 6, is kept in {ckpt}' in line
    assert _digests(ckpt) == before and _unlocked(run_dir)


def test_a_full_disk_while_writing_the_host_state(graph, tmp_path, monkeypatch):
    checkpoints, sess, net, init = _tiny(tmp_path)
    sess.run(init)
    sess.run(net.step_op)
    checkpoints.save(sess, net, 1, 0)
    before = _digests(checkpoints.dir)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, 'savez', no_space)
    sess.run(net.step_op)
    with pytest.raises(runs.RunError, match=r'cannot save the checkpoint of step 2 \(\[Errno '
                                            r'28\] No space left on device\)\. The last '
                                            r'checkpoint, step 1, is kept'):
        checkpoints.save(sess, net, 2, 0)
    assert _digests(checkpoints.dir) == before


# ------------------------------------------------------------ divergence


def test_divergence_stops_with_exit_1_and_rotates_nothing_out(toy, tmp_path, capsys):
    """A learning rate of 1e7 blows the weights up at once: the save of the
    next step refuses them (exit 1); every checkpoint stays as it was."""
    run_dir, ckpt, args = _copy(toy, tmp_path)
    before = _digests(ckpt)
    assert train.main(args + ['--max_steps=20', '--lr=1e7', '--save_freq=1']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith('train.py: error: step 7: weight ')
    assert 'above 10000: training diverged; not saved. The last checkpoint, step 6, is kept' \
        in err[0]
    assert _digests(ckpt) == before and _unlocked(run_dir)


def test_losses_and_weights_beyond_the_limits_stop_training(graph):
    last = 'The last checkpoint, step 4, is kept.'
    checkpoints.check_losses(5, {'G_A': 3.0, 'D_A': -checkpoints.MAX_LOSS}, last)
    for value, message in [(2e6, r'loss D_A is 2e\+06, above 1e\+06: training diverged'),
                           (float('nan'), 'loss D_A is nan'), (float('-inf'), 'loss D_A is -inf')]:
        with pytest.raises(checkpoints.TrainingError, match=message + '.*' + last):
            checkpoints.check_losses(5, {'G_A': 3.0, 'D_A': value}, last)
    small = tf1.get_variable('small', [2], initializer=tf1.constant_initializer(9e3))
    big = tf1.get_variable('big', [2], initializer=tf1.constant_initializer([1.0, -2e4]))
    slot = tf1.get_variable('slot', [1], trainable=False,
                            initializer=tf1.constant_initializer(np.inf))
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        assert checkpoints.WeightCheck([small, big], [small, big]).problem(sess) == (
            'weight big reaches 2e+04 in absolute value, above 10000: training diverged')
        assert checkpoints.WeightCheck([small], [small]).problem(sess) is None
        assert checkpoints.WeightCheck([small, slot], [small]).problem(sess) == (
            'the weights are not finite (NaN or Inf)')


# ------------------------------------- 11: TensorFlow's errors, one line


def _pairs(folder, widths, height=32):
    """Aligned A|B files of the given widths (a 1 px one has a 0 px half)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(len(widths))
    for i, width in enumerate(widths):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(
            os.path.join(folder, f'{i}.png'))


def _pix2pix_args(tmp_path, dataset, name):
    return ['train.py', f'--runs_dir={tmp_path / "runs"}', f'--dataset={dataset}',
            '--model=pix2pix',
            f'--name={name}', '--crop_size=32', '--load_size=32', '--ngf=4', '--ndf=4',
            '--netG=resnet_6blocks', '--max_steps=1', *FAST]


def test_pairs_tensorflow_cannot_split_are_one_line_in_train(tmp_path, capsys):
    """Issue 14.11: 1 px wide A|B files, which PIL reads: the pipeline's
    DatasetError comes out of TensorFlow as UnknownError; one line, exit 2."""
    _pairs(tmp_path / 'thin' / 'train', [1, 1])
    assert train.main(_pix2pix_args(tmp_path, tmp_path / 'thin', 'thin')) == 2
    line = _one_error_line(capsys, 'train.py')
    assert line.startswith('train.py: error: no image of a whole epoch could be read')


def test_tensorflow_errors_at_the_boundary(capsys):
    """Input and machine errors become one line (exit 2); TensorFlow errors
    of other kinds, like any bug, keep their traceback."""
    def raising(error):
        def body(argv):
            raise error
        return body

    missing = tf.errors.NotFoundError(None, None, 'Graph execution error:\n\n'
                                                  '{{function_node x}} a/b.png; No such file\n'
                                                  '\t [[{{node ReadFile}}]]')
    assert commands.run_command('x.py', raising(missing), []) == 2
    assert _one_error_line(capsys, 'x.py') == 'x.py: error: a/b.png; No such file (NotFoundError)'
    oom = tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating tensor')
    assert commands.run_command('x.py', raising(oom), []) == 2
    assert 'try a smaller --batch_size' in _one_error_line(capsys, 'x.py')
    bug = tf.errors.InvalidArgumentError(None, None, 'Incompatible shapes: [1,2] vs. [1,3]')
    with pytest.raises(tf.errors.InvalidArgumentError):
        commands.run_command('x.py', raising(bug), [])
    with pytest.raises(TypeError):
        commands.run_command('x.py', raising(TypeError('a bug')), [])


# ----------------------------------------------- 13, 14: sample.py inputs


def test_sample_skips_unreadable_files_and_translates_1_px_images(trained, tmp_path, capsys,
                                                                  caplog):
    """Issue 14.13 and 14.14: a text file named .jpg and a truncated JPEG are
    skipped with a warning; 1x1 images (RGB, grey) come back 1x1."""
    run_dir, _ = trained
    inputs = tmp_path / 'in'
    inputs.mkdir()
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(inputs / 'dot.png')
    Image.fromarray(np.full((1, 1), 50, np.uint8)).save(inputs / 'grey.jpg')
    Image.fromarray(np.zeros((30, 1, 3), np.uint8)).save(inputs / 'line.png')
    (inputs / 'text.jpg').write_text('not an image')
    jpeg = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(jpeg, 'JPEG')
    (inputs / 'cut.jpg').write_bytes(jpeg.getvalue()[:len(jpeg.getvalue()) // 2])
    out = tmp_path / 'out'
    assert sample.main(['sample.py', f'--run={run_dir}', f'--input={inputs}',
                        f'--results_dir={out}']) == 0
    assert 'Traceback' not in capsys.readouterr().err
    for name in ('text.jpg', 'cut.jpg'):
        assert f'skipping unreadable image {inputs / name}' in caplog.text
    images = out / 'images'
    assert np.asarray(Image.open(images / 'dot_fake_B.png')).shape == (1, 1, 3)
    assert np.asarray(Image.open(images / 'grey_rec_A.png')).shape == (1, 1, 3)
    assert np.asarray(Image.open(images / 'line_fake_B.png')).shape == (30, 1, 3)
    assert sorted(os.listdir(images)) == sorted(
        f'{n}_{k}.png' for n in ('dot', 'grey', 'line') for k in ('real_A', 'fake_B', 'rec_A'))


def test_sample_into_a_file_or_under_one_is_one_line(trained, tmp_path, capsys):
    run_dir, _ = trained
    (tmp_path / 'file').write_text('')
    for results, message in [(tmp_path / 'file', 'is a file, not a folder'),
                             (tmp_path / 'file' / 'sub', f'is under the file {tmp_path}/file')]:
        start = time.perf_counter()
        assert sample.main(['sample.py', f'--run={run_dir}', f'--results_dir={results}']) == 2
        assert message in _one_error_line(capsys, 'sample.py')
        assert time.perf_counter() - start < 5  # before any TensorFlow work


def test_pix2pix_skips_unsplittable_pairs_and_samples_1_px_halves(tmp_path, capsys, caplog):
    """Issue 14.11 and 14.14 for aligned pairs: a 1 px wide file among good
    pairs is skipped with a warning in training; in sample.py a 2 px wide
    pair gives 1 px halves, translated to 1 px wide images."""
    dataset = tmp_path / 'pairs'
    _pairs(dataset / 'train', [64, 1, 64])
    _pairs(dataset / 'test', [2, 64, 1], height=5)
    assert train.main(_pix2pix_args(tmp_path, dataset, 'p2p')) == 0
    assert f'skipping unreadable image {dataset / "train" / "1.png"}' in caplog.text
    caplog.clear()
    assert sample.main(['sample.py', f'--run={tmp_path / "runs" / "p2p"}',
                        f'--results_dir={tmp_path / "out"}']) == 0
    assert f'skipping unreadable image {dataset / "test" / "2.png"}' in caplog.text
    assert 'Traceback' not in capsys.readouterr().err
    images = tmp_path / 'out' / 'images'
    assert np.asarray(Image.open(images / '0_fake_B.png')).shape == (5, 1, 3)
    assert np.asarray(Image.open(images / '1_fake_B.png')).shape == (5, 32, 3)
    assert not (images / '2_fake_B.png').exists()
