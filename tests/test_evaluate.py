"""evaluate.py --real DIR --fake DIR: the fixtures' reference scores, the
feature cache, and bad input as one line on stderr with exit status 2."""

import json
import pathlib
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from cyclegan_tf import evaluate
from cyclegan_tf.evaluation import inception, metrics

WEIGHTS = 'pt_inception-2015-12-05_from_nvlabs_noFC.pth'


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """A cache folder of the test's own: no download, no features of other tests."""
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    return tmp_path / 'xdg' / 'cyclegan-tf'


def _run(capsys, *args):
    code = evaluate.main(['evaluate.py', *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _error(capsys, *args):
    code, out, err = _run(capsys, *args)
    assert code == 2 and out == ''
    # One line, the last (a download's progress bar may come before it).
    lines = [line for line in err.splitlines() if 'evaluate.py' in line or 'Traceback' in line]
    assert len(lines) == 1 and lines[0].startswith('evaluate.py: error: '), err
    assert err.endswith(lines[0] + '\n')
    return lines[0]


def _images(folder, count, size=(16, 16), seed=0):
    folder.mkdir(parents=True)
    rng = np.random.RandomState(seed)
    for i in range(count):
        Image.fromarray(rng.randint(0, 256, (*size, 3), np.uint8)).save(folder / f'{i}.png')
    return folder


def _relative(a, b):
    return abs(a - b) / abs(b)


def test_scores_match_the_reference_and_the_real_set_is_cached(
        fixtures_dir, tmp_path, capsys, caplog, monkeypatch, cache_home):
    weights = fixtures_dir / 'fid' / WEIGHTS
    data = fixtures_dir.parent / 'data' / 'horse2zebra_mini'
    reference = json.loads((fixtures_dir / 'fid' / 'horse2zebra_mini_reference.json').read_text())
    computed = []
    file_features = inception.FeatureExtractor.file_features

    def spy(self, paths, **kwargs):
        computed.append(pathlib.Path(paths[0]).parent.name)
        return file_features(self, paths, **kwargs)

    monkeypatch.setattr(inception.FeatureExtractor, 'file_features', spy)
    code, out, _ = _run(capsys, '--real', data / 'trainB', '--fake', data / 'testB', '--json',
                        '--fid_weights', weights, '--batch_size', 4)
    assert code == 0
    result = json.loads(out)
    expected = reference['pairs']['trainB|testB']
    assert (result['n_real'], result['n_fake']) == (6, 3)
    assert result['kid_subset_size'] == expected['kid_subset_size'] == 3
    for key in ('fid', 'kid_mean', 'kid_std'):
        assert _relative(result[key], expected[key]) < 1e-4, key  # 0.01 %
    assert result['weights_sha256'] == reference['weights_sha256']
    assert computed == ['trainB', 'testB']
    assert len(list((cache_home / 'features').glob('*.npz'))) == 2

    # New fakes against the same real set: only the fakes are computed. A
    # file that is no image and one that cannot be read are skipped, warned.
    fake = tmp_path / 'fake'
    shutil.copytree(data / 'testA', fake)
    (fake / 'notes.txt').write_text('not an image')
    (fake / 'broken.jpg').write_bytes(b'not a jpeg')
    code, out, _ = _run(capsys, '--real', data / 'trainB', '--fake', fake,
                        '--fid_weights', weights)
    assert code == 0
    assert computed == ['trainB', 'testB', 'fake']
    assert 'notes.txt' in caplog.text and 'broken.jpg' in caplog.text
    features = np.load(fixtures_dir / 'fid' / 'horse2zebra_mini_pool3.npz')
    expected = metrics.scores(features['trainB'], features['testA'])
    assert f'{fake} (3 images) against {data / "trainB"} (6 images)' in out
    fid = float(out.split('FID')[1].split()[0])
    assert _relative(fid, expected['fid']) < 1e-4
    assert '(100 subsets of 3)' in out


def test_bad_command_lines_and_folders(tmp_path, capsys):
    good = _images(tmp_path / 'good', 2)
    one = _images(tmp_path / 'one', 1)
    (tmp_path / 'one' / 'notes.txt').write_text('x')
    assert 'give two folders' in _error(capsys, '--real', good)
    assert 'is not a folder' in _error(capsys, '--real', tmp_path / 'missing', '--fake', good)
    assert 'has 1 image files; FID and KID need at least 2' in _error(
        capsys, '--real', good, '--fake', one)
    assert '--fid_weights: no file' in _error(capsys, '--real', good, '--fake', good,
                                              '--fid_weights', tmp_path / 'none.pth')
    assert 'must be an integer >= 1' in _error(capsys, '--real', good, '--fake', good,
                                               '--batch_size', 0)
    assert 'unexpected argument' in _error(capsys, '--real', good, '--fake', good, 'extra')
    assert 'unknown_flag' in _error(capsys, '--real', good, '--unknown_flag', 1)


def test_help_lists_the_flags(capsys):
    code, out, _ = _run(capsys, '--help')
    assert code == 0
    for flag in ('--real', '--fake', '--[no]json', '--fid_weights', '--batch_size',
                 '--[no]cache_features'):
        assert flag in out


def test_a_download_with_a_wrong_sha256_is_exit_2_and_leaves_nothing(
        tmp_path, capsys, monkeypatch, cache_home, server):
    good = _images(tmp_path / 'good', 2)
    server.files['/served.pth'] = b'x' * 1000
    monkeypatch.setattr(inception, 'WEIGHTS_URL', f'{server.url}/served.pth')
    line = _error(capsys, '--real', good, '--fake', good)
    assert 'has sha256' in line and inception.WEIGHTS_SHA256 in line
    assert list(cache_home.iterdir()) == []


def test_weights_that_are_not_a_pth_file_are_exit_2(tmp_path, capsys):
    good = _images(tmp_path / 'good', 2)
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'junk' * 100)
    assert 'cannot read the FID Inception weights' in _error(
        capsys, '--real', good, '--fake', good, '--fid_weights', junk)


def test_weights_of_another_key_layout_are_exit_2(fixtures_dir, tmp_path, capsys):
    # The real file with one key renamed (same length: the pickle stays valid).
    source = fixtures_dir / 'fid' / WEIGHTS
    renamed = tmp_path / 'renamed.pth'
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(renamed, 'w') as zout:
        for info in zin.infolist():
            content = zin.read(info)
            if info.filename.endswith('data.pkl'):
                assert b'Mixed_7c.branch_pool.bn.bias' in content
                content = content.replace(b'Mixed_7c.branch_pool.bn.bias',
                                          b'Mixed_7c.branch_pool.bn.beta')
            zout.writestr(info, content)
    good = _images(tmp_path / 'good', 2, size=(8, 8))
    line = _error(capsys, '--real', good, '--fake', good, '--fid_weights', renamed)
    assert 'key layout' in line and 'Mixed_7c.branch_pool.bn' in line


# ------------------------------------------------------ runs: --run, --eval_freq, --best


def _unaligned(root, size=32, train=4, test=3):
    for split, count in (('train', train), ('test', test)):
        for domain, seed in (('A', 1), ('B', 2)):
            _images(root / f'{split}{domain}', count, (size, size), seed=seed + len(split))
    return root


def _events(run_dir):
    import tensorflow as tf

    tags = {}
    for path in sorted(run_dir.glob('events.out.tfevents.*')):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


def test_training_keeps_the_best_checkpoint_by_fid_and_evaluate_scores_a_run(
        fixtures_dir, tmp_path, capsys):
    from cyclegan_tf import sample, train

    weights = fixtures_dir / 'fid' / WEIGHTS
    dataset = _unaligned(tmp_path / 'tiny', train=2)  # 2 steps per epoch
    run_dir = tmp_path / 'runs' / 'q'
    args = ['train.py', f'--dataset={dataset}', f'--runs_dir={tmp_path / "runs"}', '--name=q',
            '--crop_size=32', '--load_size=32', '--ngf=4', '--ndf=4', '--netG=resnet_6blocks',
            '--n_epochs=1', '--n_epochs_decay=1', '--eval_freq=1', '--eval_num=2',
            f'--fid_weights={weights}']
    assert train.main(args) == 0
    out = capsys.readouterr().out
    assert out.count(' eval: fid_B ') == 2 and 'fid_A' in out and 'kid_B' in out, out
    record = json.loads((run_dir / 'checkpoints' / 'best.json').read_text())
    assert record['step'] in (2, 4) and record['checkpoint'] == f'best/model.ckpt-{record["step"]}'
    assert record['scores']['fid_sum'] == pytest.approx(
        record['scores']['fid_A'] + record['scores']['fid_B'])
    assert (run_dir / 'checkpoints' / 'best' / f'model.ckpt-{record["step"]}.index').is_file()
    tags = _events(run_dir)
    assert tags['eval/fid_B'] == tags['eval/fid_A'] == [2, 4]

    # sample.py and evaluate.py take the best checkpoint.
    assert sample.main(['sample.py', f'--run={run_dir}', '--best']) == 0
    assert (run_dir / f'test_{record["step"]}' / 'index.html').is_file()
    capsys.readouterr()
    code, out, err = _run(capsys, f'--run={run_dir}', '--best', '--json',
                          f'--fid_weights={weights}')
    assert code == 0, err
    scores = json.loads(out)
    assert set(scores) == {'A->B', 'B->A'}
    for direction in scores.values():
        assert direction['fid'] > 0 and direction['n_fake'] == 3 and direction['n_real'] == 3
        assert direction['fid_weights_standard'] is False  # the fixture's copy (issue 21.8)
    folder = run_dir / f'test_{record["step"]}'
    assert json.loads((folder / 'scores.json').read_text()) == scores
    assert 'FID' in (folder / 'index.html').read_text()
    # A later sample.py into the same folder keeps the scores on its page.
    capsys.readouterr()
    assert sample.main(['sample.py', f'--run={run_dir}', '--best']) == 0
    assert 'FID' in (folder / 'index.html').read_text()
    assert 'not comparable to published FIDs' in capsys.readouterr().out


def test_a_run_without_best_checkpoint_is_one_line(tmp_path, capsys):
    from cyclegan_tf.running import runs

    (tmp_path / 'r' / 'checkpoints').mkdir(parents=True)
    with pytest.raises(runs.RunError, match='no best checkpoint: train it with --eval_freq'):
        runs.best_checkpoint(str(tmp_path / 'r'))
    line = _error(capsys, '--run', tmp_path / 'missing')
    assert 'no run at' in line
    assert 'give a run' in _error(capsys, '--run', tmp_path, '--real', tmp_path)


def test_weights_other_than_pytorch_fids_file_are_said_not_comparable(
        fixtures_dir, tmp_path, capsys, monkeypatch):
    """Issue 21.8: with FID weights of the right layout but another sha256
    (the fixture's copy is one), the table said nothing: now it says the
    numbers are not comparable to published FIDs, and --json records it.
    With the standard file's sha256 there is no such line."""
    weights = fixtures_dir / 'fid' / WEIGHTS
    real, fake = _images(tmp_path / 'real', 2), _images(tmp_path / 'fake', 2, seed=1)
    args = ['--real', real, '--fake', fake, '--fid_weights', weights]
    code, out, _ = _run(capsys, *args)
    assert code == 0
    digest = inception.sha256_of(weights)
    assert (f'  not comparable to published FIDs: the FID weights (sha256 {digest[:12]}...) '
            f'are not pytorch-fid\'s file') in out
    code, out, _ = _run(capsys, *args, '--json')
    result = json.loads(out)
    assert result['fid_weights_standard'] is False and result['weights_sha256'] == digest
    monkeypatch.setattr(inception, 'WEIGHTS_SHA256', digest)
    code, out, _ = _run(capsys, *args)
    assert code == 0 and 'FID ' in out and 'not comparable' not in out
    code, out, _ = _run(capsys, *args, '--json')
    assert json.loads(out)['fid_weights_standard'] is True
