"""import_torch.py: official networks become runs that sample.py and train.py use.

A server on 127.0.0.1 stands in for the official one. The published models
are ngf 64; the tests swap in the fixtures' ngf-8 ResNet (the architecture
table is data), so a run and its checkpoint stay small. One run is written
(building a training graph is the slow part): it is sampled and fine-tuned;
the other modes are checked up to the run's writing, which they share.
"""

import hashlib
import io
import json
import os
import pickle
import socket
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_pth import dag, state_dict_pth, zip_pth
from test_train import make_data_root

from cyclegan_tf import import_torch, sample, train
from cyclegan_tf.data import pipeline
from cyclegan_tf.interop import pth, torch_weights
from cyclegan_tf.running import runs

# The discriminators, which are not imported, small too; no identity loss: a training
# graph with two generator calls fewer builds faster.
SMALL = ['--ndf=8', '--lambda_identity=0']


@pytest.fixture
def small_pretrained(monkeypatch):
    """The published CycleGAN architecture, at the fixtures' ngf 8 and with 6 blocks."""
    monkeypatch.setitem(import_torch.PRETRAINED_ARCHITECTURE, 'cycle_gan', dict(
        import_torch.PRETRAINED_ARCHITECTURE['cycle_gan'], ngf=8, netG='resnet_6blocks'))


def reference(fixtures_dir, case):
    folder = fixtures_dir / 'torch_reference'
    with np.load(folder / f'{case}.npz') as npz:
        return folder, npz['input_nchw'], npz['output_nchw']


def fails(argv, capsys, *expected):
    """Runs import_torch.main(argv): exit 2 and one line on stderr holding ``expected``."""
    assert import_torch.main(['import_torch.py', *argv]) == 2
    *progress, err = capsys.readouterr().err.rstrip('\n').split('\n')
    assert err.startswith('import_torch.py: error: '), err
    assert all('%|' in line for line in progress)  # a download's progress bar, if any
    for text in expected:
        assert text in err, err
    return err


def nothing_in(runs_dir):
    return not runs_dir.exists() or os.listdir(runs_dir) == []


def test_pretrained_download_sample_and_fine_tune(
        tmp_path, server, fixtures_dir, small_pretrained, capsys):
    folder, x, expected = reference(fixtures_dir, 'resnet_6blocks_ngf8')
    server.files['/cyclegan/pretrained_models/horse2zebra.pth'] = \
        (folder / 'resnet_6blocks_ngf8.legacy.pth').read_bytes()  # published: legacy format
    runs_dir = tmp_path / 'runs'
    assert import_torch.main(['import_torch.py', '--pretrained=horse2zebra', *SMALL,
                              f'--download_url={server.url}/', f'--runs_dir={runs_dir}']) == 0
    assert 'Imported G_A (36 tensors)' in capsys.readouterr().out
    run_dir = runs_dir / 'horse2zebra_pretrained'
    assert sorted(os.listdir(runs_dir)) == ['horse2zebra_pretrained']  # download removed
    assert runs.imported_networks(run_dir) == ['G_A']
    record = json.loads((run_dir / runs.IMPORTED_FILE).read_text())
    assert record['files']['G_A']['url'] == \
        f'{server.url}/cyclegan/pretrained_models/horse2zebra.pth'
    cfg = runs.load_config(run_dir)
    assert (cfg.model, cfg.netG, cfg.ngf, cfg.norm, cfg.dataset, cfg.direction) == (
        'cycle_gan', 'resnet_6blocks', 8, 'instance', 'horse2zebra', 'AtoB')

    photos = tmp_path / 'photos'  # the official inputs, as 8-bit images
    os.makedirs(photos)
    for i, image in enumerate(x):
        Image.fromarray(pipeline.to_uint8(image.transpose(1, 2, 0))).save(photos / f'{i}.png')
    results = tmp_path / 'results'
    with tf.Graph().as_default():
        assert sample.main(['sample.py', f'--run={run_dir}', f'--input={photos}',
                            '--direction=AtoB', f'--results_dir={results}']) == 0
    for i, output in enumerate(expected):
        fake_B = np.asarray(Image.open(results / 'images' / f'{i}_fake_B.png')).astype(int)
        official = pipeline.to_uint8(output.transpose(1, 2, 0)).astype(int)
        assert fake_B.shape == official.shape == (32, 32, 3)
        # The 8-bit rounding of the official float input moves the output by
        # up to 2.5 levels (measured on resnet_9blocks_ngf8: 69% of values
        # equal, 30.6% one level off, 0.3% two); a shift, a flip or a wrong
        # layer would be far off nearly everywhere.
        diff = np.abs(fake_B - official)
        assert diff.max() <= 2 and np.mean(diff <= 1) > 0.99 and diff.mean() < 0.5

    # train.py fine-tunes the imported run: two steps from the imported weights.
    data_root = make_data_root(tmp_path / 'datasets')
    with tf.Graph().as_default():
        assert train.main(['train.py', f'--runs_dir={runs_dir}', '--name=horse2zebra_pretrained',
                           '--dataset=shapes2stripes', f'--data_root={data_root}',
                           '--crop_size=32', '--load_size=32', '--max_steps=2']) == 0
    checkpoints = run_dir / 'checkpoints'
    imported = tf.compat.v1.train.load_checkpoint(str(checkpoints / 'model.ckpt-0'))
    tuned = tf.compat.v1.train.load_checkpoint(str(checkpoints / 'model.ckpt-2'))
    weight = imported.get_tensor('G_A/input/conv/weights')
    official_weight = pth.load(folder / 'resnet_6blocks_ngf8.pth')['model.1.weight']
    assert np.array_equal(weight, official_weight.transpose(2, 3, 1, 0))
    change = np.abs(tuned.get_tensor('G_A/input/conv/weights') - weight).max()
    assert 0 < change < 1e-3  # two Adam steps at lr 2e-4, not a fresh initialization


@pytest.mark.parametrize('problem', ['offline', 'missing', 'truncated', 'not_pth', 'malicious'])
def test_pretrained_failures_write_nothing(tmp_path, server, fixtures_dir, capsys, problem):
    runs_dir = tmp_path / 'runs'
    marker = tmp_path / 'marker'
    url, path = server.url, '/cyclegan/pretrained_models/zebra2horse.pth'
    legacy = (fixtures_dir / 'torch_reference' / 'resnet_9blocks_ngf8.legacy.pth').read_bytes()
    files = {'truncated': legacy[:len(legacy) // 2],
             'not_pth': b'<html><body>Moved to a new server</body></html>\n',
             'malicious': pickle.dumps({'model.1.weight': Payload(marker)}, 2)}
    reason = {'offline': 'connection refused', 'missing': 'HTTP 404', 'truncated': 'truncated',
              'not_pth': 'not a .pth file', 'malicious': 'posix.system'}[problem]
    if problem == 'offline':
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            url = f'http://127.0.0.1:{s.getsockname()[1]}'  # closed when the test runs
    elif problem in files:
        server.files[path] = files[problem]
    fails(['--pretrained=zebra2horse', f'--download_url={url}', f'--runs_dir={runs_dir}'],
          capsys, reason)
    assert nothing_in(runs_dir) and not marker.exists()


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_command_line_errors(tmp_path, fixtures_dir, capsys):
    runs_dir = tmp_path / 'runs'
    fails(['--pretrained=horse2giraffe', f'--runs_dir={runs_dir}'], capsys,
          "no published model 'horse2giraffe'", 'horse2zebra')
    fails(['--pretrained=horse2zebra', '--ngf=32', f'--runs_dir={runs_dir}'], capsys,
          'the published horse2zebra has --ngf=64: drop --ngf=32')
    fails(['--pretrained=edges2shoes', '--model=cycle_gan', f'--runs_dir={runs_dir}'], capsys,
          'edges2shoes is a published pix2pix model, not cycle_gan')
    fails(['--pretrained=horse2zebra_cut', '--no_antialias', f'--runs_dir={runs_dir}'], capsys,
          'the published horse2zebra_cut has --no_antialias=False: drop --no_antialias=True')
    fails(['--pretrained=cat2dog_fastcut', '--model=pix2pix', f'--runs_dir={runs_dir}'], capsys,
          'cat2dog_fastcut is a published cut model, not pix2pix')
    fails([f'--runs_dir={runs_dir}'], capsys, 'give one of --pretrained NAME')
    fails(['--pth=a.pth', '--pretrained=horse2zebra'], capsys, 'not --pretrained and --pth')
    fails(['--pth=a.pth', f'--runs_dir={runs_dir}'], capsys, 'no file a.pth')
    pix = str(fixtures_dir / 'torch_reference' / 'unet_256_ngf8_batch.pth')
    fails([f'--pth={pix}', f'--pth_B={pix}', '--model=pix2pix', f'--runs_dir={runs_dir}'],
          capsys, '--pth_B: pix2pix has one generator')
    os.makedirs(runs_dir / 'taken')
    fails([f'--pth={pix}', '--name=taken', f'--runs_dir={runs_dir}'], capsys,
          'taken exists: import_torch.py makes new runs only')
    assert os.listdir(runs_dir) == ['taken'] and not os.listdir(runs_dir / 'taken')


def test_state_dict_of_another_architecture(tmp_path, fixtures_dir, capsys):
    runs_dir = tmp_path / 'runs'
    path = fixtures_dir / 'torch_reference' / 'resnet_6blocks_ngf8.pth'
    fails([f'--pth={path}', '--ngf=8', *SMALL, f'--runs_dir={runs_dir}'], capsys,
          f'{path} does not fit G_A (resnet_9blocks, ngf 8',
          'it has no model.16.conv_block.1.weight (expected shape [32, 32, 3, 3]) and 15 more',
          'it has model.16.weight of shape [32, 16, 3, 3], which the network lacks and 3 more')
    assert nothing_in(runs_dir)


def corrupted(fixtures_dir, case, problem):
    """The bytes of a fixture's state dict with one problem (``problem``)."""
    state = pth.load(fixtures_dir / 'torch_reference' / f'{case}.pth')
    if problem == 'bomb':  # 40 levels of two references: 2 ** 40 values
        return zip_pth({}, data_pkl=pickle.dumps({'x': dag('list', 40)}, 2))
    if problem == 'nan':
        state['model.10.conv_block.5.weight'][3, 1, 2, 0] = np.nan
    elif problem == 'diverged':
        state['model.1.bias'][2] = 3e4
    elif problem == 'int_key':
        state[12] = state.pop('model.12.conv_block.1.weight')
    return state_dict_pth(state, legacy=problem == 'nan')


@pytest.mark.parametrize('problem, reason', [
    ('nan', 'model.10.conv_block.5.weight is not finite (1 NaN, 0 Inf of 9216 values)'),
    ('diverged', 'model.1.bias holds 3e+04, above 10000 in absolute value'),
    ('int_key', 'a key of type int (12), not a string'),
    ('bomb', 'nested more than 32 deep'),
])
def test_bad_weights_are_one_line_and_no_run(tmp_path, fixtures_dir, capsys, problem, reason):
    path = tmp_path / 'latest_net_G_A.pth'
    path.write_bytes(corrupted(fixtures_dir, 'resnet_9blocks_ngf8', problem))
    runs_dir = tmp_path / 'runs'
    fails([f'--pth={path}', '--ngf=8', *SMALL, f'--runs_dir={runs_dir}'], capsys,
          f'{path}', reason)
    assert nothing_in(runs_dir)


def test_published_model_with_bad_weights_is_deleted(
        tmp_path, server, fixtures_dir, small_pretrained, capsys):
    """A download that is a .pth but not a usable model is removed (the next
    try downloads it again), as one that is not a .pth is."""
    server.files['/cyclegan/pretrained_models/horse2zebra.pth'] = corrupted(
        fixtures_dir, 'resnet_6blocks_ngf8', 'nan')
    runs_dir = tmp_path / 'runs'
    fails(['--pretrained=horse2zebra', f'--download_url={server.url}/', *SMALL,
           f'--runs_dir={runs_dir}'], capsys, '/cyclegan/pretrained_models/horse2zebra.pth: '
          'model.10.conv_block.5.weight is not finite')
    assert nothing_in(runs_dir)


TRAIN_OPT = """----------------- Options ---------------
               batch_size: 1
                    beta1: 0.5
          checkpoints_dir: ./checkpoints
                 dataroot: ./datasets/shapes2stripes    \t[default: None]
             dataset_mode: unaligned
                direction: AtoB
                  gpu_ids: 0
                 input_nc: 3
                 lambda_A: 10.0
          lambda_identity: 0.0                           \t[default: 0.5]
                       lr: 0.0001                        \t[default: 0.0002]
                lr_policy: linear
         max_dataset_size: inf
                    model: cycle_gan
               n_layers_D: 3
                     name: h2z_experiment                \t[default: experiment_name]
                      ndf: 8                             \t[default: 64]
                     netD: basic
                     netG: resnet_6blocks                \t[default: resnet_9blocks]
                      ngf: 8                             \t[default: 64]
                    niter: 3                             \t[default: 100]
              niter_decay: 5                             \t[default: 100]
               no_dropout: True
                     norm: instance
                output_nc: 3
                pool_size: 50
----------------- End -------------------
"""


def test_from_checkpoints_reads_train_opt_and_every_network(tmp_path, fixtures_dir, capsys):
    """The plan of a --from_checkpoints import, checked network by network
    (writing the run is the code the published model's test runs)."""
    folder = fixtures_dir / 'torch_reference'
    official = tmp_path / 'checkpoints' / 'h2z_experiment'
    os.makedirs(official)
    (official / 'train_opt.txt').write_text(TRAIN_OPT)
    for net, case in (('G_A', 'resnet_6blocks_ngf8.pth'),
                      ('G_B', 'resnet_6blocks_ngf8_old_instance_stats.legacy.pth'),
                      ('D_A', 'patchgan_basic_ndf8.pth'), ('D_B', 'patchgan_basic_ndf8.pth')):
        (official / f'7_net_{net}.pth').write_bytes((folder / case).read_bytes())
    runs_dir = tmp_path / 'runs'
    fails([f'--from_checkpoints={official}', f'--runs_dir={runs_dir}'], capsys,
          f'no latest_net_G_A.pth in {official} (see --epoch)')
    fails([f'--from_checkpoints={official}', '--epoch=7', '--model=pix2pix'], capsys,
          'holds a cycle_gan model: drop --model=pix2pix')
    fails([f'--from_checkpoints={official}', '--epoch=7', '--ngf=16'], capsys,
          'train_opt.txt has --ngf=8: drop --ngf=16')
    os.remove(official / '7_net_D_B.pth')  # a network missing is not imported
    settings, flag_values, given = import_torch.parse([
        'import_torch.py', f'--from_checkpoints={official}', '--epoch=7',
        f'--runs_dir={runs_dir}', '--pool_size=4'])
    plan = import_torch.plan_checkpoints(settings, flag_values, given)
    cfg = plan.cfg
    assert (cfg.model, cfg.netG, cfg.ngf, cfg.ndf, cfg.norm, cfg.no_dropout, cfg.run_name) == (
        'cycle_gan', 'resnet_6blocks', 8, 8, 'instance', True, 'h2z_experiment')
    assert (cfg.lr, cfg.n_epochs, cfg.n_epochs_decay, cfg.lambda_identity, cfg.dataset,
            cfg.pool_size) == (0.0001, 3, 5, 0.0, 'shapes2stripes', 4)  # pool_size: the flag
    assert list(plan.states) == ['G_A', 'G_B', 'D_A']
    assert plan.source['files']['D_A']['path'] == str(official / '7_net_D_A.pth')
    with tf.Graph().as_default():
        import_torch.check_fit(plan)  # every state dict fits its network
    assert nothing_in(runs_dir)


def test_imported_networks_of_other_folders(tmp_path):
    assert runs.imported_networks(tmp_path) is None  # a run not imported
    (tmp_path / runs.IMPORTED_FILE).write_text('{"networks": "G_A"')
    with pytest.raises(runs.RunError, match='cannot read'):
        runs.imported_networks(tmp_path)
    (tmp_path / runs.IMPORTED_FILE).write_text('{"source": "x"}')
    with pytest.raises(runs.RunError, match='lists no imported networks'):
        runs.imported_networks(tmp_path)


# ---------------------------------------------------------------------------
# The published CUT and FastCUT models: one archive, served here as
# /CUT/pretrained_models.tar with the fixtures' ngf-8 generator in the
# official layout.

ARCHIVE_PATH = '/CUT/pretrained_models.tar'


def cut_archive(members):
    """The bytes of a tar holding ``members`` (name -> bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def cut_published(tmp_path, monkeypatch, server, fixtures_dir):
    """The published CUT architecture at the fixtures' ngf 8, a fresh cache
    folder, and the G file of the fixtures (its reference input and output)."""
    monkeypatch.setitem(import_torch.PRETRAINED_ARCHITECTURE, 'cut', dict(
        import_torch.PRETRAINED_ARCHITECTURE['cut'], ngf=8))
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    folder = fixtures_dir / 'cut_reference'
    with np.load(folder / 'cut_G_resnet_9blocks_ngf8.npz') as npz:
        x, y = npz['input_nchw'], npz['output_nchw']
    cached = tmp_path / 'xdg' / 'cyclegan-tf' / 'CUT' / 'pretrained_models.tar'
    return (folder / 'cut_G_resnet_9blocks_ngf8.pth').read_bytes(), x, y, cached


def plan_of(argv):
    """import_torch.py's plan of ``argv``: all it reads and fetches, without
    the run's writing (write_run, the same for every mode and tested on CUT's
    --pth import in tests/test_cut.py: its training graph costs about 10 s)."""
    return import_torch.plan_pretrained(*import_torch.parse(['import_torch.py', *argv]))


def test_pretrained_cut_reads_its_generator_from_one_archive_downloaded_once(
        tmp_path, server, cut_published, capsys):
    G, x, expected, cached = cut_published
    server.files[ARCHIVE_PATH] = cut_archive({
        'checkpoints/horse2zebra_cut_pretrained/latest_net_G.pth': G,
        './checkpoints/cat2dog_fastcut_pretrained/latest_net_G.pth': G})
    runs_dir = tmp_path / 'runs'
    plan = plan_of(['--pretrained=horse2zebra_cut', f'--download_url={server.url}',
                    f'--runs_dir={runs_dir}'])
    assert cached.is_file() and nothing_in(runs_dir)  # the tar kept, nothing else written
    cfg = plan.cfg
    assert (cfg.model, cfg.CUT_mode, cfg.netG, cfg.ngf, cfg.normG, cfg.no_antialias,
            cfg.dataset, cfg.direction, cfg.run_name) == (
        'cut', 'CUT', 'resnet_9blocks', 8, 'instance', False, 'horse2zebra', 'AtoB',
        'horse2zebra_cut_pretrained')
    member = 'checkpoints/horse2zebra_cut_pretrained/latest_net_G.pth'
    assert json.loads(json.dumps(plan.source)) == {  # imported.json's, but for 'networks'
        'kind': 'pretrained', 'name': 'horse2zebra_cut', 'model': 'cut',
        'url': server.url + ARCHIVE_PATH, 'files': {'G': {
            'url': server.url + ARCHIVE_PATH, 'member': member,
            'sha256': hashlib.sha256(G).hexdigest()}}}

    # The generator as the run gets it translates as the official network.
    state, where = plan.states['G']
    assert where == f'{member} of {server.url}{ARCHIVE_PATH}'
    with tf.Graph().as_default():
        network = import_torch.registry.of(cfg).model_class.generator(cfg)
        inputs = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3])
        outputs = network(inputs, training=False)
        with tf.compat.v1.Session() as sess:
            assert torch_weights.load_into(sess, network, state, source=where) == 48
            y = sess.run(outputs, {inputs: x.transpose(0, 2, 3, 1)})
    np.testing.assert_allclose(y, expected.transpose(0, 2, 3, 1), rtol=0, atol=1e-5)

    # Another name: from the cached archive, not downloaded again.
    assert len(server.requests) == 1
    plan = plan_of(['--pretrained=cat2dog_fastcut', f'--download_url={server.url}',
                    f'--runs_dir={runs_dir}'])
    assert len(server.requests) == 1 and 'downloaded before' in capsys.readouterr().out
    assert (plan.cfg.CUT_mode, plan.cfg.lambda_NCE, plan.cfg.nce_idt, plan.cfg.dataset,
            plan.cfg.run_name) == ('FastCUT', 10.0, False, 'cat2dog', 'cat2dog_fastcut_pretrained')
    assert sorted(plan.states['G'][0]) == sorted(state)


@pytest.mark.parametrize('problem', ['traversal', 'huge', 'missing', 'not_tar', 'not_pth',
                                     'not_fitting'])
def test_pretrained_cut_refuses_a_bad_archive_and_deletes_it(
        tmp_path, server, cut_published, fixtures_dir, monkeypatch, capsys, problem):
    G, _, _, cached = cut_published
    member = 'checkpoints/cityscapes_fastcut_pretrained/latest_net_G.pth'
    members = {member: G}
    if problem == 'not_fitting':  # the archive's file, of another architecture
        members[member] = (fixtures_dir / 'cut_reference' /
                           'cut_G_resnet_6blocks_ngf8_batch2.pth').read_bytes()
    elif problem == 'not_pth':
        members[member] = b'<html>Moved</html>\n'
    elif problem == 'traversal':
        members['../escaped'] = b'x'
    elif problem == 'huge':
        monkeypatch.setattr(import_torch, 'PRETRAINED_MEMBER_LIMIT', 100 << 10)
    elif problem == 'missing':
        members = {'checkpoints/cityscapes_cut_pretrained/latest_net_G.pth': G}
    server.files[ARCHIVE_PATH] = (b'<html>Moved</html>\n' if problem == 'not_tar'
                                  else cut_archive(members))
    reason = {'traversal': "unsafe entry '../escaped'", 'not_tar': 'not a valid archive',
              'huge': f'{member} in {cached} has 0.7 MiB, more than 0.1 MiB: refused',
              'missing': f'{cached} holds no {member}',
              'not_pth': f'{member} of {server.url}{ARCHIVE_PATH}: not a .pth file',
              'not_fitting': f'{member} of {server.url}{ARCHIVE_PATH} does not fit G'}[problem]
    runs_dir = tmp_path / 'runs'
    fails(['--pretrained=cityscapes_fastcut', f'--download_url={server.url}',
           f'--runs_dir={runs_dir}'], capsys, reason,
          *(['deleted it: the next try downloads it'] if problem not in ('not_pth', 'not_fitting')
            else []))
    assert nothing_in(runs_dir) and not cached.exists()
    assert not (tmp_path / 'xdg' / 'cyclegan-tf' / 'escaped').exists()
