"""Data-parallel and multi-worker training (distribute.py) at tiny sizes.

--num_replicas 2 runs on two logical CPU devices, which TensorFlow makes
only before it sets up its devices: those runs are train.py subprocesses,
so this test process keeps its one CPU device. Two workers run as two
train.py processes on 127.0.0.1 with TF_CONFIG, on free ports.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from test_train import ROOT, latest_checkpoint, make_data_root, read_events, tiny_args

from cyclegan_tf import config, sample, train
from cyclegan_tf.models import cycle_gan
from cyclegan_tf.running import cluster, replicas

LOSSES = ('G_A', 'G_B', 'cycle_A', 'cycle_B', 'idt_A', 'idt_B', 'D_A', 'D_B')


def train_process(args, *, env=None, **kwargs):
    """train.py ``args`` (tiny_args' list, program first) in a subprocess."""
    environ = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', **(env or {}))
    return subprocess.Popen([sys.executable, 'train.py', *args[1:]], cwd=ROOT, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def finish(process, timeout=240):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports, index):
    return json.dumps({'cluster': {'worker': [f'127.0.0.1:{p}' for p in ports]},
                       'task': {'type': 'worker', 'index': index}})


def test_tf_config_is_read_and_bad_ones_are_one_clear_error():
    assert cluster.cluster_from_env({}) is None
    one = {'TF_CONFIG': tf_config([1], 0)}
    assert cluster.cluster_from_env(one) is None  # one worker: the single-machine path
    two = {'TF_CONFIG': json.dumps({'cluster': {'chief': ['a:1'], 'worker': ['b:2']},
                                    'task': {'type': 'worker', 'index': 0}})}
    assert cluster.cluster_from_env(two) == (['a:1', 'b:2'], 1)
    for bad in ('{', '{"cluster": {"worker": ["a:1", "b:2"]}}',
                json.dumps({'cluster': {'worker': ['a:1', 'b:2'], 'ps': ['c:3']},
                            'task': {'type': 'worker', 'index': 0}}),
                json.dumps({'cluster': {'worker': ['a:1', 'b:2']},
                            'task': {'type': 'worker', 'index': 2}})):
        with pytest.raises(cluster.ClusterError, match='TF_CONFIG'):
            cluster.cluster_from_env({'TF_CONFIG': bad})


@pytest.mark.parametrize('spec, field', [
    ({'cluster': {'worker': [1234, 5678]}, 'task': {'type': 'worker', 'index': 0}},
     'cluster.worker[0]'),
    ({'cluster': {'worker': 'host1:2222'}, 'task': {'type': 'worker', 'index': 0}},
     'cluster.worker'),
    ({'cluster': {'worker': ['a:1', 'b:2']}}, 'task'),
    ({'cluster': {'worker': ['a:1', 'b:2']}, 'task': 'worker'}, 'task'),
    ({'cluster': {'worker': ['a:1', 'b:2']}, 'task': {'index': 0}}, 'task.type'),
    ({'cluster': {'worker': ['a:1', 'b:2']}, 'task': {'type': 'worker'}}, 'task.index'),
    ({'cluster': {'worker': ['a:1', 'b:2']}, 'task': {'type': 'worker', 'index': '1'}},
     'task.index'),
    ({'cluster': {'worker': ['a:1', 'b:2']}, 'task': {'type': 'worker', 'index': True}},
     'task.index'),
    ({'cluster': {'worker': ['a:1', 'b:2']}, 'task': {'type': 'worker', 'index': 1.5}},
     'task.index'),
    ({'cluster': {'worker': ['a:1', 'b:2']}, 'task': {'type': 'worker', 'index': -1}},
     'task.index'),
    ({'cluster': {'worker': ['a:1', 'b:2']}, 'task': {'type': 'worker', 'index': 7}},
     'task.index'),
    ({'cluster': {'worker': ['a:1', 'b']}, 'task': {'type': 'worker', 'index': 0}},
     'cluster.worker[1]'),
    ({'cluster': {'worker': ['a:1', 'a:1']}, 'task': {'type': 'worker', 'index': 0}},
     'cluster.worker[1]'),
    ({'cluster': {'worker': {'a': 1}}, 'task': {'type': 'worker', 'index': 0}},
     'cluster.worker'),
    ({'cluster': ['a:1'], 'task': {'type': 'worker', 'index': 0}}, 'cluster'),
    ({'task': {'type': 'worker', 'index': 0}}, 'cluster'),
    ([1, 2], 'TF_CONFIG'),
])
def test_a_malformed_tf_config_is_one_line_naming_the_field(spec, field, tmp_path):
    """Issue 21.10: each malformed field is a ClusterError naming it (no
    TypeError), and train.py prints one line and exits 2."""
    with pytest.raises(cluster.ClusterError) as raised:
        cluster.cluster_from_env({'TF_CONFIG': json.dumps(spec)})
    message = str(raised.value)
    assert message.startswith('TF_CONFIG') and f'{field} ' in message + ' '
    assert len(message.splitlines()) == 1 and len(message) < 200


def test_malformed_tf_config_in_train_is_one_line_exit_2(tmp_path):
    spec = {'cluster': {'worker': [1234, 5678]}, 'task': {'type': 'worker', 'index': 0}}
    process = train_process(['train.py', '--model=toy_gan', f'--runs_dir={tmp_path}'],
                            env={'TF_CONFIG': json.dumps(spec)})
    code, out, err = finish(process, timeout=60)
    assert code == 2 and 'Traceback' not in err, err
    assert err.strip().splitlines()[-1].startswith('train.py: error: TF_CONFIG: cluster.worker[0]')


def test_num_replicas_beyond_the_cpu_devices_is_one_line_exit_2(tmp_path):
    """Issue 21.11: --num_replicas 100000 on a CPU hung asking for 100,000
    logical devices: now one line naming the limit, exit 2, in seconds."""
    start = time.monotonic()
    code, out, err = finish(train_process(['train.py', '--model=toy_gan', f'--runs_dir={tmp_path}',
                                           '--num_replicas=100000']), timeout=60)
    assert code == 2 and 'Traceback' not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith('train.py: error: --num_replicas 100000') and \
        f'at most {cluster.MAX_CPU_REPLICAS}' in line, err
    assert time.monotonic() - start < 60 and not os.listdir(tmp_path)


def test_pools_are_saved_per_replica_and_regrouped_for_another_count():
    image = np.full([4, 4, 3], 0.5, np.float32)

    def pool_state(n, rng):
        return {'pool_A/images': np.stack([image * i for i in range(n)]) if n else np.zeros([0]),
                'pool_A/rng': np.array(rng), 'pool_B/images': np.zeros([0]),
                'pool_B/rng': np.array(rng)}

    saved = replicas.gather_host_states({0: pool_state(3, 'r0'), 1: pool_state(2, 'r1')})
    assert 'pool_A/images' in saved and 'replica_1/pool_A/images' in saved
    states = replicas.split_host_states(saved)
    assert [len(s['pool_A/images']) for s in states] == [3, 2]
    assert cycle_gan.CycleGAN.regroup_host_states(states, 2) is states
    merged = cycle_gan.CycleGAN.regroup_host_states(states, 1)  # 2 replicas -> 1
    assert len(merged[0]['pool_A/images']) == 5 and str(merged[0]['pool_A/rng']) == 'r0'
    split = cycle_gan.CycleGAN.regroup_host_states([pool_state(3, 'r0')], 2)  # 1 -> 2
    assert [len(s['pool_A/images']) for s in split] == [2, 1]
    assert str(split[0]['pool_A/rng']) == 'r0' and str(split[1]['pool_A/rng']) == ''
    pool = cycle_gan.ImagePool(2)
    before = pool.rng.bit_generator.state
    pool.load_state({'images': split[1]['pool_A/images'], 'rng': split[1]['pool_A/rng']})
    assert len(pool.images) == 1 and pool.rng.bit_generator.state == before  # keeps its own
    with pytest.raises(KeyError):  # images alone are not a pool's state
        pool.load_state({'images': split[1]['pool_A/images']})
    feed = replicas.feed_dict([_View('x'), _View('y')], {'A': np.arange(3)[:, None]})
    assert [v.tolist() for v in feed.values()] == [[[0], [1]], [[2]]]
    feed = replicas.feed_dict([_View('x'), _View('y')], {'A': np.arange(1)[:, None]})
    assert [v.tolist() for v in feed.values()] == [[[0]], [[0]]]  # never an empty slice


class _View:
    def __init__(self, name):
        self.inputs = {'A': name}


def _scalars(run_dir, steps):
    found = read_events(run_dir)['scalars']
    return {name: [found[f'loss/{name}'][s] for s in steps] for name in LOSSES}


def _noise_dataset(folder):
    """An unaligned folder of 2 noise images per domain (and 1 test pair).

    Noise, not shapes2stripes: on its flat colours the instance norm after
    the first convolution divides by a near-zero deviation, so the order in
    which float32 sums its gradient (one batch of 2, or 2 replicas of 1)
    moved G_A's first gradient by 1.6 % and step 3's losses by 7e-4."""
    rng = np.random.default_rng(0)
    for split, n in (('trainA', 2), ('trainB', 2), ('testA', 1), ('testB', 1)):
        os.makedirs(folder / split)
        for i in range(n):
            pixels = rng.integers(0, 255, [32, 32, 3], dtype=np.uint8)
            Image.fromarray(pixels).save(folder / split / f'{i}.png')
    return str(folder)


def test_two_replicas_of_one_image_equal_one_device_of_two_and_resume(tmp_path, capsys):
    """From the same weights (a 1-step run) and data: 3 steps on one device
    with batch 2, and 3 steps on 2 replicas with batch 1 resumed from it (a
    change of the replica count), log the same losses. The 2-replica run's
    checkpoint then loads in sample.py."""
    data_root = make_data_root(tmp_path / 'datasets')
    one, two = tmp_path / 'one', tmp_path / 'two'
    common = ['--pool_size=0', '--summary_freq=1', '--display_freq=0', '--print_freq=1',
              f'--dataset={_noise_dataset(tmp_path / "noise")}']
    assert train.main(tiny_args(one, data_root, *common, '--batch_size=2',
                                '--max_steps=1')) == 0
    shutil.copytree(one, two)
    assert train.main(tiny_args(one, data_root, *common, '--max_steps=4')) == 0
    code, out, err = finish(train_process(tiny_args(two, data_root, *common, '--batch_size=1',
                                                    '--num_replicas=2', '--max_steps=4')))
    assert code == 0, err
    assert 'Resuming' in out and '2 replica(s) x batch_size 1 = global batch 2' in out
    expected, got = _scalars(one / 'tiny', [2, 3, 4]), _scalars(two / 'tiny', [2, 3, 4])
    for name in LOSSES:  # steps 2 and 3: before and after the first distributed update
        np.testing.assert_allclose(got[name][:2], expected[name][:2], atol=1e-5, rtol=0,
                                   err_msg=name)
        # Float32 sums in another order drift apart by ~1e-5 per Adam step
        # (whose first steps move each weight by about lr whatever its gradient).
        np.testing.assert_allclose(got[name][2], expected[name][2], rtol=1e-4, err_msg=name)
    saved = json.load(open(two / 'tiny' / 'config.json'))
    assert (saved['num_replicas'], saved['batch_size']) == (2, 1)
    capsys.readouterr()
    assert sample.main(['sample.py', f'--run={two / "tiny"}', '--num_test=1']) == 0
    assert os.path.isdir(two / 'tiny' / 'test_4' / 'images')


def _aligned_dataset(folder):
    """A pix2pix folder: train/ and test/ of 2 images, A|B side by side."""
    rng = np.random.default_rng(0)
    for split in ('train', 'test'):
        os.makedirs(folder / split)
        for i in range(2):
            pixels = rng.integers(0, 255, [32, 64, 3], dtype=np.uint8)
            Image.fromarray(pixels).save(folder / split / f'{i}.png')
    return str(folder)


def test_pix2pix_trains_on_two_replicas_and_samples(tmp_path):
    dataset = _aligned_dataset(tmp_path / 'facades')
    args = ['train.py', f'--runs_dir={tmp_path / "runs"}', '--name=p2p', '--model=pix2pix',
            f'--dataset={dataset}', '--crop_size=32', '--load_size=32', '--ngf=4', '--ndf=4',
            '--netG=resnet_6blocks', '--num_replicas=2', '--max_steps=2', '--summary_freq=1']
    code, out, err = finish(train_process(args))
    assert code == 0, err
    run_dir = tmp_path / 'runs' / 'p2p'
    assert latest_checkpoint(run_dir).endswith('model.ckpt-2')
    assert set(read_events(run_dir)['scalars']['loss/G_L1']) == {1, 2}
    assert sample.main(['sample.py', f'--run={run_dir}']) == 0


def _workers(tmp_path, data_root, *extra, name='multi'):
    ports = free_ports(2)
    return [train_process(tiny_args(tmp_path / 'runs', data_root, f'--name={name}',
                                    '--worker_timeout=15', '--print_freq=1', *extra),
                          env={'TF_CONFIG': tf_config(ports, i)}) for i in range(2)]


def test_two_workers_train_and_only_the_chief_writes(tmp_path, monkeypatch):
    data_root = make_data_root(tmp_path / 'datasets')
    monkeypatch.setenv('TMPDIR', str(tmp_path))  # the other worker's scratch folder
    workers = _workers(tmp_path, data_root, '--max_steps=2')
    results = [finish(w) for w in workers]
    for code, out, err in results:
        assert code == 0, err
    assert 'x 2 workers x batch_size 1 = global batch 2' in results[0][1]
    assert 'the chief writes the run folder' in results[1][1]
    run_dir = tmp_path / 'runs' / 'multi'
    assert latest_checkpoint(run_dir).endswith('model.ckpt-2')
    assert sorted(os.listdir(tmp_path / 'runs')) == ['multi']
    assert len([f for f in os.listdir(run_dir) if f.startswith('events.')]) == 1
    assert not [f for f in os.listdir(tmp_path) if f.startswith('train-worker-')]  # removed
    assert sample.main(['sample.py', f'--run={run_dir}', '--num_test=1']) == 0


def test_a_dead_worker_stops_the_other_within_the_timeout(tmp_path):
    data_root = make_data_root(tmp_path / 'datasets')
    chief, other = _workers(tmp_path, data_root, '--max_steps=1000', '--save_freq=0')
    line = ''
    while 'step 2/' not in line:  # both train
        line = other.stdout.readline()
        assert line or other.poll() is None, other.stderr.read()
    other.kill()
    other.wait()
    killed = time.monotonic()
    code, out, err = finish(chief, timeout=120)
    assert code == 1 and time.monotonic() - killed < 60
    lines = err.strip().splitlines()
    assert lines[-1].startswith('train.py: error: a worker stopped answering'), err
    assert 'Traceback' not in err


def test_a_worker_whose_chief_never_starts_stops_within_the_timeout(tmp_path):
    """Issue 21.12: the first connection waited past --worker_timeout
    forever (still waiting after 300 s): now one line naming the missing
    worker, exit 2, within the timeout."""
    ports = free_ports(2)
    process = train_process(['train.py', '--model=toy_gan', f'--runs_dir={tmp_path}',
                             '--batch_size=16', '--hidden_units=8', '--worker_timeout=3'],
                            env={'TF_CONFIG': tf_config(ports, 1)})
    code, out, err = finish(process, timeout=90)
    assert code == 2 and 'Traceback' not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f'train.py: error: worker 0 (127.0.0.1:{ports[0]}) did not answer '
                           f'within --worker_timeout 3 s'), err
    assert 'waiting up to 3 s for worker 0' in out


def test_cpu_settings_and_bad_replica_counts(monkeypatch):
    cfg = config.CycleGANConfig(amp=True, xla=True)
    setup = cluster.Setup()
    lines = cluster.log_lines(cfg, setup)
    assert len(lines) == 2 and all('does nothing useful on a CPU' in line for line in lines)
    from cyclegan_tf.running import session

    proto = cluster.session_config(cfg, setup, base=session.session_config())
    assert not proto.graph_options.rewrite_options.auto_mixed_precision
    gpu = cluster.session_config(cfg, cluster.Setup(gpu=True),
                                 base=session.session_config())
    assert gpu.graph_options.rewrite_options.auto_mixed_precision == 1  # ON
    assert gpu.graph_options.optimizer_options.global_jit_level == 1  # ON_1
    with pytest.raises(config.ConfigError, match='num_replicas'):
        cluster.configure(config.CycleGANConfig(num_replicas=0))
    monkeypatch.setenv('TF_CONFIG', tf_config([1, 2], 0))
    with pytest.raises(config.ConfigError, match='one replica'):
        cluster.configure(config.CycleGANConfig(num_replicas=2))


def test_with_eval_freq_only_the_chief_scores_its_checkpoints(tmp_path, fixtures_dir):
    """The other worker writes no checkpoint to score: it waits for the chief."""
    data_root = make_data_root(tmp_path / 'datasets')
    weights = fixtures_dir / 'fid' / 'pt_inception-2015-12-05_from_nvlabs_noFC.pth'
    workers = _workers(tmp_path, data_root, '--n_epochs=1', '--n_epochs_decay=0',
                       '--eval_freq=1', '--eval_num=2', f'--fid_weights={weights}',
                       '--worker_timeout=180', name='scored')
    (code, out, err), (other_code, other_out, other_err) = [finish(w) for w in workers]
    assert code == 0 and other_code == 0, err + other_err
    assert 'eval: fid_B' in out and 'eval:' not in other_out
    assert (tmp_path / 'runs' / 'scored' / 'checkpoints' / 'best.json').is_file()
