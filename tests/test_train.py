"""train.py end to end at a tiny size: a run, its files and TensorBoard, resume,
determinism, signals, SIGKILL while saving, NaN, and the user errors.

The built-in dataset is generated here with 2 training images per domain, so
an epoch is 2 steps and the learning-rate schedule moves within a few steps.
"""

import glob
import json
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import config, registry, train
from cyclegan_tf.data import shapes
from cyclegan_tf.running import checkpoints, runs

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ['--crop_size=32', '--load_size=32', '--ngf=4', '--ndf=4', '--netG=resnet_6blocks',
        '--pool_size=8']
LR = 0.0002


def make_data_root(folder):
    """A data_root whose shapes2stripes has 2 training images per domain and 4 test pairs."""
    shapes.generate_shapes2stripes(os.path.join(folder, shapes.BUILTIN), n_train=2,
                                   n_test=4)
    return str(folder)


def tiny_args(runs_dir, data_root, *extra):
    return ['train.py', f'--runs_dir={runs_dir}', f'--data_root={data_root}', '--name=tiny',
            *TINY, *extra]


def read_events(run_dir):
    """What the event files of a run hold: {'scalars': {tag: {step: value}},
    'images': {tag: [steps]}, 'graphs': count, 'traces': [tags], 'starts': [steps]}."""
    found = {'scalars': {}, 'images': {}, 'graphs': 0, 'traces': [], 'starts': []}
    for path in sorted(glob.glob(os.path.join(run_dir, 'events.out.tfevents.*'))):
        for event in tf.compat.v1.train.summary_iterator(path):
            found['graphs'] += event.HasField('graph_def')
            if event.HasField('tagged_run_metadata'):
                found['traces'].append(event.tagged_run_metadata.tag)
            if event.HasField('session_log') and event.session_log.status == 1:
                found['starts'].append(event.step)
            for value in event.summary.value:
                if value.HasField('image'):
                    found['images'].setdefault(value.tag, []).append(event.step)
                elif value.HasField('simple_value'):
                    found['scalars'].setdefault(value.tag, {})[event.step] = value.simple_value
    return found


def latest_checkpoint(run_dir):
    return tf.train.latest_checkpoint(runs.checkpoint_dir(run_dir))


def checkpoint_values(path, *names):
    reader = tf.train.load_checkpoint(path)
    return [reader.get_tensor(name) for name in names]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_data_root(tmp_path_factory.mktemp('datasets'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_root):
    """A tiny run: 3 steps, then the same command with --max_steps 5 resumes it.
    Returns (run_dir, argv, stdout of the first session, stdout of the second)."""
    runs_dir = tmp_path_factory.mktemp('runs')
    args = tiny_args(runs_dir, data_root, '--n_epochs=1', '--n_epochs_decay=3',
                     '--summary_freq=1', '--display_freq=2', '--trace_freq=2',
                     '--print_freq=1', '--save_freq=100')
    outputs = []
    for max_steps in (3, 5):
        stdout = _capture(lambda: train.main(args + [f'--max_steps={max_steps}']))
        outputs.append(stdout)
    return os.path.join(runs_dir, 'tiny'), args, outputs[0], outputs[1]


def _capture(fn):
    """Runs fn() (which must return 0) and returns what it printed to stdout."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert fn() == 0
    return buffer.getvalue()


def test_a_run_writes_config_checkpoints_events_and_samples(trained):
    run_dir, _, first, _ = trained
    saved = json.loads(open(os.path.join(run_dir, 'config.json')).read())
    assert (saved['model'], saved['ngf'], saved['crop_size'], saved['netG']) == (
        'cycle_gan', 4, 32, 'resnet_6blocks')
    assert 'New run' in first and 'step 3/3' in first
    assert runs.step_of(latest_checkpoint(run_dir)) == 5
    events = read_events(run_dir)
    losses = {'G_A', 'G_B', 'cycle_A', 'cycle_B', 'idt_A', 'idt_B', 'D_A', 'D_B'}
    assert {f'loss/{name}' for name in losses} | {'lr'} <= set(events['scalars'])
    assert sorted(events['scalars']['loss/G_A']) == [1, 2, 3, 4, 5]
    assert events['images']['samples/image'] == [1, 2, 4]
    assert events['graphs'] == 2  # one per session
    assert events['traces'] == ['step_000002', 'step_000004']
    samples = sorted(os.listdir(os.path.join(run_dir, 'samples')))
    assert samples == ['step_000001.png', 'step_000002.png', 'step_000004.png']
    grid = np.asarray(__import__('PIL.Image', fromlist=['Image']).open(
        os.path.join(run_dir, 'samples', 'step_000002.png')))
    assert grid.ndim == 3 and grid.shape[2] == 3 and grid.shape[1] > 4 * 32  # 4 columns


def test_resume_continues_step_epoch_schedule_optimizer_and_pools(trained):
    run_dir, _, _, second = trained
    assert 'Resuming' in second and '(step 3, epoch 2)' in second
    assert 'changed settings: max_steps 3 -> 5' in second
    assert re.search(r'^step 4/5 ', second, re.M) and 'step 1/' not in second
    events = read_events(run_dir)
    # Epochs of 2 steps; linear decay over 3 epochs after 1: factors 1, .75, .5.
    lr = events['scalars']['lr']
    assert [round(lr[s] / LR, 4) for s in range(1, 6)] == [1, 1, 0.75, 0.75, 0.5]
    assert events['starts'] == [3]  # TensorBoard drops what a killed session logged later
    path = latest_checkpoint(run_dir)
    step, epoch, beta1_power = checkpoint_values(
        path, 'global_step', 'epoch', 'optimizers/Adam_G_A/beta1_power')
    assert (step, epoch) == (5, 2)
    assert beta1_power == pytest.approx(0.5 ** 6)  # Adam's state went on from step 3
    host = runs.load_host_state(path)
    assert host['model/pool_A/images'].shape[0] == 5  # the pools went on too
    assert int(host['loop/epoch_start']) == 4


def test_a_finished_run_does_nothing_and_keeps_its_files(trained):
    run_dir, args, _, _ = trained
    before = latest_checkpoint(run_dir)
    out = _capture(lambda: train.main(args + ['--max_steps=5']))
    assert 'nothing to do' in out and latest_checkpoint(run_dir) == before


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_tensorboard_serves_the_scalars_images_and_graph(trained):
    run_dir, _, _, _ = trained
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, '-m', 'tensorboard.main', '--logdir', os.path.dirname(run_dir),
         '--host', '127.0.0.1', '--port', str(port), '--reload_interval', '1'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f'http://127.0.0.1:{port}/data/plugin'
    try:
        deadline, scalars = time.time() + 90, {}
        while time.time() < deadline and 'tiny' not in scalars:
            try:
                scalars = json.loads(_get_json(f'{base}/scalars/tags'))
            except (urllib.error.URLError, ConnectionError, ValueError):
                time.sleep(0.5)
        assert {'loss/G_A', 'loss/cycle_B', 'loss/D_A', 'lr'} <= set(scalars['tiny'])
        images = json.loads(_get_json(f'{base}/images/tags'))
        assert 'samples/image' in images['tiny']
        info = json.loads(_get_json(f'{base}/graphs/info'))
        assert info['tiny']['run_graph'] and 'step_000002' in info['tiny']['tags']
        graph = _get_json(f'{base}/graphs/graph?run=tiny&conversions=false').decode()
        assert 'name: "G_A/' in graph and 'name: "optimizers/learning_rate"' in graph
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_same_seed_gives_the_same_losses(trained, tmp_path, data_root):
    run_dir, _, _, _ = trained
    first = read_events(run_dir)['scalars']
    again = tiny_args(tmp_path, data_root, '--n_epochs=1', '--n_epochs_decay=3',
                      '--summary_freq=1', '--max_steps=3')
    _capture(lambda: train.main(again))
    second = read_events(os.path.join(tmp_path, 'tiny'))['scalars']
    for tag in ('loss/G_A', 'loss/cycle_A', 'loss/idt_B', 'loss/D_B'):
        assert [second[tag][s] for s in (1, 2, 3)] == [first[tag][s] for s in (1, 2, 3)], tag


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path, data_root, capsys):
    args = tiny_args(tmp_path, data_root, '--max_steps=2')
    assert train.main(args) == 0
    run_dir = os.path.join(tmp_path, 'tiny')
    # A huge learning rate (inf is refused): step 3 computes finite losses,
    # then makes the weights huge; step 4's losses overflow to NaN or inf.
    capsys.readouterr()
    assert train.main(args + ['--max_steps=50', '--lr=1e38']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(r'step 4: loss \w+ is (nan|inf)', err[0]), err
    assert 'The last checkpoint, step 2' in err[0]
    assert runs.step_of(latest_checkpoint(run_dir)) == 2
    assert checkpoint_values(latest_checkpoint(run_dir), 'global_step') == [2]
    saved = json.loads(open(os.path.join(run_dir, 'config.json')).read())
    assert saved['lr'] == LR and saved['max_steps'] == 2  # only a checkpoint saves settings


def test_weights_that_are_not_finite_are_never_saved(tmp_path, graph):
    weight = tf.compat.v1.get_variable('w', [2], initializer=tf.compat.v1.constant_initializer(
        [1.0, np.nan]))
    cfg = config.CycleGANConfig(runs_dir=str(tmp_path), name='x')
    ckpt = checkpoints.Checkpoints(cfg, saver=None, weights=checkpoints.WeightCheck())
    with tf.compat.v1.Session() as sess:
        sess.run(weight.initializer)
        with pytest.raises(checkpoints.TrainingError, match='step 7: the weights are not finite'):
            ckpt.save(sess, net=None, step=7, epoch_start=6)
    assert not os.path.exists(tmp_path / 'x')


# ------------------------------------------------------------------ signals


class Script:
    """train.py in a subprocess, its stdout collected by a thread."""

    def __init__(self, args, cwd):
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        self.process = subprocess.Popen([sys.executable, str(ROOT / 'train.py'), *args[1:]],
                                        cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, pattern, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f'no {pattern!r} in the output: {"".join(self.lines)}'
                             f'{self.process.stderr.read() if self.process.poll() else ""}')

    def finish(self, timeout=120):
        rc = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return rc, ''.join(self.lines), self.process.stderr.read()


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_save_the_current_step_and_exit_0(signum, tmp_path, data_root):
    args = tiny_args(tmp_path, data_root, '--max_steps=100000', '--print_freq=1',
                     '--save_freq=100000')
    script = Script(args, tmp_path)
    script.wait_for(r'^step 3/')
    script.process.send_signal(signum)
    rc, out, err = script.finish()
    assert rc == 0, err
    step = int(re.search(rf'Stopped by {signum.name} at step (\d+)', out).group(1))
    assert step >= 3
    path = latest_checkpoint(os.path.join(tmp_path, 'tiny'))
    assert runs.step_of(path) == step and checkpoint_values(path, 'global_step') == [step]
    assert f'saved {path} (' in out  # at the stop, or at the end of the epoch it ended


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_a_checkpoint_that_loads(tmp_path, data_root):
    """kill -9 at random moments of a run that saves at every step (so often
    while saving), twice; every time the latest checkpoint loads whole, and
    the same command resumes from it."""
    run_dir = os.path.join(tmp_path, 'tiny')
    args = tiny_args(tmp_path, data_root, '--max_steps=100000', '--save_freq=1',
                     '--print_freq=1', '--summary_freq=0', '--display_freq=0')
    rng = random.Random(1234)
    for round_ in range(2):
        script = Script(args, tmp_path)
        script.wait_for(r'^saved ')
        time.sleep(rng.uniform(0.0, 1.5))
        script.process.kill()
        script.finish()
        path = latest_checkpoint(run_dir)
        reader = tf.train.load_checkpoint(path)
        values = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
        assert int(values['global_step']) == runs.step_of(path)
        assert all(np.all(np.isfinite(v)) for v in values.values()
                   if np.issubdtype(np.asarray(v).dtype, np.floating))
        host = runs.load_host_state(path)
        assert host is None or 'model/pool_A/images' in host
    # A kill after a checkpoint's files but before checkpoints/checkpoint names
    # it leaves a newer complete one: resuming takes the newest complete one.
    newest = checkpoints.complete_checkpoints(runs.checkpoint_dir(run_dir))[0][-1]
    step = runs.step_of(newest)
    out = _capture(lambda: train.main(args + [f'--max_steps={step + 1}']))
    assert f'(step {step}, ' in out and runs.step_of(latest_checkpoint(run_dir)) == step + 1


# ------------------------------------------------------------- user errors


def _error_line(capsys, args):
    """Runs train.main(args), which must fail with one line on stderr; returns it."""
    capsys.readouterr()
    assert train.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('train.py: error: '), err
    return err[0]


@pytest.mark.parametrize('extra, message', [
    (['--dataset=no_such_set'], "unknown dataset 'no_such_set'"),
    (['--ngf=many'], 'flag --ngf=many'),
    (['--netG=resnet_99blocks'], 'flag --netG=resnet_99blocks'),
    (['--no_such_flag=1'], 'no_such_flag'),
    (['stray'], "unexpected argument 'stray'"),
    (['--flagfile=no/such.flags'], 'no/such.flags'),
    (['--lambda_L1=1'], '--lambda_L1 does not apply to --model cycle_gan'),
])
def test_bad_command_lines_fail_with_one_line(extra, message, tmp_path, data_root, capsys):
    assert message in _error_line(capsys, tiny_args(tmp_path, data_root, *extra))
    assert not os.path.exists(os.path.join(tmp_path, 'tiny'))


def test_a_foreign_run_folder_is_refused_and_left_alone(tmp_path, data_root, capsys):
    foreign = tmp_path / 'tiny'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('mine')
    assert 'is not a run of train.py' in _error_line(capsys, tiny_args(tmp_path, data_root))
    assert os.listdir(foreign) == ['notes.txt']
    (tmp_path / 'file').write_text('')
    assert 'is a file' in _error_line(capsys, tiny_args(tmp_path, data_root, '--name=file'))


def test_another_architecture_on_an_existing_run_is_refused(trained, capsys):
    run_dir, args, _, _ = trained
    before = sorted(os.listdir(runs.checkpoint_dir(run_dir)))
    line = _error_line(capsys, args + ['--ngf=8', '--max_steps=50'])
    assert '--ngf=4' in line and '--ngf=8' in line and 'new --name' in line
    line = _error_line(capsys, args[:4] + ['--model=pix2pix'])
    assert '--model=cycle_gan' in line and '--model=pix2pix' in line
    assert sorted(os.listdir(runs.checkpoint_dir(run_dir))) == before


def test_a_checkpoint_of_another_architecture_is_refused(trained, tmp_path, capsys):
    run_dir, args, _, _ = trained
    copy = tmp_path / 'tiny'
    shutil.copytree(run_dir, copy)
    saved = json.loads((copy / 'config.json').read_text())
    (copy / 'config.json').write_text(json.dumps({**saved, 'ngf': 8, 'runs_dir': str(tmp_path)}))
    line = _error_line(capsys, [a for a in args if not a.startswith(('--runs_dir', '--ngf'))]
                       + [f'--runs_dir={tmp_path}', '--max_steps=50'])
    assert 'is a checkpoint of another architecture' in line and 'G_A/' in line


def test_a_user_error_is_one_line_on_stderr_without_traceback(tmp_path, data_root):
    """As a script: the error comes before TensorFlow is even imported."""
    result = subprocess.run([sys.executable, str(ROOT / 'train.py'), '--dataset=nope',
                             f'--data_root={data_root}', f'--runs_dir={tmp_path}'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr
    assert result.stderr.startswith("train.py: error: unknown dataset 'nope'")


def test_help_lists_the_flags(capsys):
    assert train.main(['train.py', '--help']) == 0
    out = capsys.readouterr().out
    for flag in ('--dataset', '--n_epochs_decay', '--lambda_identity', '--max_steps',
                 '--trace_freq', '--keep_checkpoints'):
        assert flag in out


def test_the_readme_lists_every_flag():
    """The README's tables come from tools/flags_table.py; rerun it when this fails."""
    from absl import flags

    readme = (ROOT / 'README.md').read_text()
    from cyclegan_tf import import_torch

    names = list(registry.define_flags(flags.FlagValues())) + [
        name for settings in (config.SampleConfig, config.BenchConfig, config.EvaluateConfig,
                              config.ExportConfig, import_torch.ImportSettings,
                              config.DemoConfig)
        for name in settings.options()]
    assert [name for name in names if f'| `--{name}` |' not in readme] == []


@pytest.mark.slow
def test_bench_prints_one_json_object_with_timings_and_flops(capsys, sample_data):
    from cyclegan_tf import bench

    dataset = str(sample_data / 'horse2zebra_tiny')
    assert bench.main(['bench.py', '--crop_size=32', '--load_size=36', '--ngf=4', '--ndf=4',
                       '--netG=resnet_6blocks', '--iters=2', '--warmup=1',
                       '--infer_batch_size=2', '--compare_pipeline', '--rounds=1',
                       '--feature_images=2', '--feature_batch=2',
                       f'--dataset={dataset}']) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ('train_s_per_iter', 'train_images_per_s', 'infer_images_per_s',
                'train_gflop_per_s', 'infer_gflop_per_s', 'pipeline_s_per_iter',
                'in_memory_s_per_iter', 'pipeline_cpu_ms_per_example',
                'fid_features_images_per_s'):
        assert result[key] > 0, key
    # About 19 generator forwards' worth of work per CycleGAN iteration.
    assert 17 < result['generator_forwards_per_iter'] < 21
    # One 7x7 input conv of the generator alone: 2 * 32 * 32 * 7 * 7 * 3 * 4 FLOPs.
    assert result['infer_gflop_per_image'] * 1e9 > 2 * 32 * 32 * 7 * 7 * 3 * 4
    assert result['pipeline_dataset'] == dataset
    # --rounds=1: one block of each.
    assert result['pipeline_blocks_s_per_iter'] == [result['pipeline_s_per_iter']]
    assert result['in_memory_blocks_s_per_iter'] == [result['in_memory_s_per_iter']]
    # The times are rounded to 4 decimals, the slowdown (from the unrounded ones) to 2:
    # at 0.1 s per iteration the rounding alone moves the ratio by 0.1 %.
    pipeline, memory = result['pipeline_s_per_iter'], result['in_memory_s_per_iter']
    low, high = (pipeline - 5e-5) / (memory + 5e-5), (pipeline + 5e-5) / (memory - 5e-5)
    slowdown = result['pipeline_slowdown_percent']
    assert 100 * (low - 1) - 0.005 <= slowdown <= 100 * (high - 1) + 0.005
    assert result['pipeline_slowdown_stderr_percent'] is None


def test_bench_alternates_pipeline_and_memory_blocks():
    from cyclegan_tf import bench

    assert bench.block_order(3) == ['pipeline', 'memory', 'memory', 'pipeline',
                                    'pipeline', 'memory']


def test_bench_reports_means_over_blocks_and_the_slowdown(monkeypatch, tmp_path):
    from cyclegan_tf import bench

    def fake_isolated(fn, *args):
        assert args[-1] == str(tmp_path)
        if fn is bench._pipeline_cpu:
            return 2.5
        assert fn is bench.time_feeds
        return {'pipeline': [1.1, 1.3], 'memory': [1.0, 1.0]}

    monkeypatch.setattr(bench, 'isolated', fake_isolated)
    cfg, settings = bench.parse(['bench.py', '--rounds=2', '--compare_pipeline'])
    result = bench.compare_pipeline(cfg, settings, str(tmp_path))
    assert result['pipeline_s_per_iter'] == pytest.approx(1.2)
    assert result['in_memory_s_per_iter'] == pytest.approx(1.0)
    assert result['pipeline_slowdown_percent'] == pytest.approx(20.0)
    # The paired ratios 1.1 and 1.3: standard deviation 0.1414, over sqrt(2).
    assert result['pipeline_slowdown_stderr_percent'] == pytest.approx(10.0)
    assert result['pipeline_blocks_s_per_iter'] == [1.1, 1.3]
    assert result['pipeline_cpu_ms_per_example'] == 2.5


@pytest.mark.parametrize('args, message', [
    (['--compare_pipeline', '--dataset=/no/such/folder'], '/no/such/folder'),
    (['--rounds=0'], '--rounds'),
])
def test_bench_bad_input_is_one_line_before_any_timing(capsys, args, message):
    from cyclegan_tf import bench

    assert bench.main(['bench.py'] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith('bench.py: error: ') and message in err
    assert err.count('\n') == 1
