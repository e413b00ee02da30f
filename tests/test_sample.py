"""sample.py on a tiny trained run: the test split in both directions with
its score, any input size, --checkpoint, the default run, and user errors."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_train import ROOT, make_data_root, tiny_args

from cyclegan_tf import inference, sample, train
from cyclegan_tf.evaluation import sampling, visuals
from cyclegan_tf.running import runs


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A tiny CycleGAN run trained 2 steps: (run folder, data_root)."""
    data_root = make_data_root(tmp_path_factory.mktemp('datasets'))
    runs_dir = tmp_path_factory.mktemp('runs')
    assert train.main(tiny_args(runs_dir, data_root, '--max_steps=2')) == 0
    return os.path.join(runs_dir, 'tiny'), data_root


def _png(path):
    return np.asarray(Image.open(path))


def test_the_test_split_is_translated_both_ways_and_scored(run, capsys):
    run_dir, data_root = run
    assert sample.main(['sample.py', f'--run={run_dir}']) == 0
    out = capsys.readouterr().out
    results = os.path.join(run_dir, 'test_2')
    names = sorted(os.listdir(os.path.join(results, 'images')))
    assert len(names) == 4 * 6  # 4 pairs: real, fake, rec of each direction
    assert {'0000_real_A.png', '0000_fake_B.png', '0000_rec_A.png', '0000_real_B.png',
            '0000_fake_A.png', '0000_rec_B.png'} <= set(names)
    assert _png(os.path.join(results, 'images', '0003_fake_B.png')).shape == (64, 64, 3)
    page = open(os.path.join(results, 'index.html')).read()
    assert page.count('<tr>') == 2 * (1 + 4) and 'images/0002_rec_B.png' in page
    assert 'ground truth' in page and 'baseline' in page
    assert _png(os.path.join(results, 'grid.png')).shape[1] > 4 * 64
    scores = json.load(open(os.path.join(results, 'scores.json')))
    assert set(scores) == {'A->B', 'B->A'} and scores['A->B']['pairs'] == 4
    # The baseline output = input, recomputed from the dataset's files.
    folder = os.path.join(data_root, 'shapes2stripes')
    a, b = ([_png(os.path.join(folder, d, f'{i:04d}.png')) / 255.0 for i in range(4)]
            for d in ('testA', 'testB'))
    l1 = np.mean([np.mean(np.abs(x - y)) for x, y in zip(a, b)])
    assert scores['A->B']['baseline_l1'] == pytest.approx(l1, abs=1e-6)
    assert scores['B->A']['baseline_l1'] == pytest.approx(l1, abs=1e-6)
    assert re.search(r'A->B: L1 \d\.\d{4}, PSNR [\d.]+ dB over 4 pairs \(baseline output = '
                     r'input: L1 \d\.\d{4}, PSNR [\d.]+ dB\)', out)


def test_any_size_is_padded_and_cropped_back(run, tmp_path, capsys):
    run_dir, _ = run
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (37, 50, 3), np.uint8)).save(tmp_path / 'odd.png')
    Image.fromarray(rng.integers(0, 255, (9, 13), np.uint8)).save(tmp_path / 'gray.jpg')
    out = tmp_path / 'out'
    assert sample.main(['sample.py', f'--run={run_dir}', f'--input={tmp_path}',
                        '--direction=BtoA', f'--results_dir={out}']) == 0
    images = out / 'images'
    assert _png(images / 'odd_fake_A.png').shape == (37, 50, 3)
    assert _png(images / 'odd_rec_B.png').shape == (37, 50, 3)
    assert _png(images / 'gray_fake_A.png').shape == (9, 13, 3)
    assert not (out / 'scores.json').exists()  # no ground truth for these


def test_pad_to_a_multiple_then_crop_restores_the_image():
    image = np.random.default_rng(0).uniform(-1, 1, (5, 7, 3)).astype(np.float32)
    padded = inference.pad_to(image, 4)
    assert padded.shape == (8, 8, 3) and np.array_equal(padded[:5, :7], image)
    assert inference.pad_to(image[:4, :4], 4).shape == (4, 4, 3)


def test_score_of_known_images():
    white, gray = np.full((2, 2, 3), 255, np.uint8), np.full((2, 2, 3), 128, np.uint8)
    l1, psnr = sampling.score([gray], [white])
    assert l1 == pytest.approx(127 / 255) and psnr == pytest.approx(
        10 * np.log10(1 / (127 / 255) ** 2))


def test_a_checkpoint_path_and_the_latest_run_by_default(run, tmp_path, capsys, monkeypatch):
    run_dir, _ = run
    checkpoint = os.path.join(run_dir, 'checkpoints', 'model.ckpt-2')
    assert sample.main(['sample.py', f'--checkpoint={checkpoint}', '--num_test=1',
                        f'--results_dir={tmp_path / "a"}']) == 0
    assert len(os.listdir(tmp_path / 'a' / 'images')) == 6  # pair 0000, both ways
    monkeypatch.chdir(os.path.dirname(os.path.dirname(run_dir)))
    os.symlink(os.path.dirname(run_dir), 'runs')  # ./runs, the default runs folder
    assert sample.main(['sample.py', '--num_test=1', f'--results_dir={tmp_path / "b"}']) == 0
    assert os.path.exists(tmp_path / 'b' / 'index.html')


def test_grid_and_page_helpers(tmp_path):
    images = [[np.zeros((4, 6, 3)), np.ones((4, 6, 1))], [np.zeros((8, 2, 3))]]
    grid = visuals.grid(images, [['a', 'b'], ['c']], pad=1)
    assert grid.dtype == np.uint8 and grid.shape == (
        1 + 12 + 4 + 1 + 12 + 8 + 1, 1 + 6 + 1 + 6 + 1, 3)
    visuals.write_html(str(tmp_path / 'i.html'), 'T<1>', [('h', ['x'], [('n', ['a.png', ''])])])
    page = (tmp_path / 'i.html').read_text()
    assert 'T&lt;1&gt;' in page and '<img src="a.png"' in page and '<td></td>' in page


def _error_line(capsys, args):
    capsys.readouterr()
    assert sample.main(['sample.py', *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('sample.py: error: '), err
    return err[0]


def test_user_errors_are_one_line(run, tmp_path, capsys):
    run_dir, _ = run
    assert 'no run at' in _error_line(capsys, [f'--run={tmp_path / "missing"}'])
    (tmp_path / 'foreign').mkdir()
    assert 'is not a run of train.py' in _error_line(capsys, [f'--run={tmp_path / "foreign"}'])
    fresh = tmp_path / 'fresh'
    fresh.mkdir()
    shutil.copy(os.path.join(run_dir, 'config.json'), fresh)
    assert 'has no checkpoint yet' in _error_line(capsys, [f'--run={fresh}'])
    assert 'no checkpoint' in _error_line(capsys, [f'--checkpoint={run_dir}/nope'])
    assert 'no image file or folder' in _error_line(capsys, [f'--run={run_dir}',
                                                             '--input=/no/such.png'])
    assert '--direction' in _error_line(capsys, [f'--run={run_dir}', '--direction=up'])
    with pytest.raises(runs.RunError, match='no trained run in'):
        runs.locate(runs_dir=str(tmp_path / 'empty'))


def test_a_checkpoint_of_another_architecture_is_refused(run, tmp_path, capsys):
    run_dir, _ = run
    copy = tmp_path / 'copy'
    shutil.copytree(run_dir, copy)
    saved = json.loads((copy / 'config.json').read_text())
    (copy / 'config.json').write_text(json.dumps({**saved, 'ngf': 8}))
    line = _error_line(capsys, [f'--run={copy}'])
    assert 'is a checkpoint of another architecture' in line and 'G_A/' in line


def test_as_a_script_an_error_is_one_line_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / 'sample.py'), f'--run={tmp_path}/x'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr == f'sample.py: error: no run at {tmp_path}/x\n'


def test_page_of_names_that_are_not_utf8(tmp_path):
    bad = os.fsdecode(b'bad\xff.png')
    visuals.write_html(str(tmp_path / 'i.html'), bad, [(bad, [bad], [(bad, [bad])])], [bad])
    page = (tmp_path / 'i.html').read_text(encoding='utf-8')
    assert '<img src="bad%FF.png"' in page and '<td>bad\\xff.png</td>' in page


def test_a_damaged_scores_json_is_set_aside_with_a_warning(run, tmp_path, capsys, caplog):
    """Issue 21.7: a damaged scores.json in the results folder (here a score
    that is no number) ended sample.py in a traceback after the images were
    written. Now it is renamed to scores.json.damaged-<time> with a warning
    and a new one is written."""
    run_dir, _ = run
    out = tmp_path / 'out'
    out.mkdir()
    damaged = '{"A->B": {"l1": "abc"}}'
    (out / 'scores.json').write_text(damaged)
    assert sample.main(['sample.py', f'--run={run_dir}', f'--results_dir={out}']) == 0
    aside = [p for p in os.listdir(out) if p.startswith('scores.json.damaged-')]
    assert len(aside) == 1 and (out / aside[0]).read_text() == damaged
    assert f'{out / "scores.json"} is damaged' in caplog.text and \
        f'set aside as {aside[0]}' in caplog.text
    scores = json.loads((out / 'scores.json').read_text())
    assert set(scores) == {'A->B', 'B->A'} and scores['A->B']['pairs'] == 4
    assert 'A->B: L1 ' in capsys.readouterr().out


@pytest.mark.parametrize('damaged, why', [
    ('{"A->B": {"l1": "abc"}}', 'A->B: l1 is not a number'),
    ('{"A->B": {"fid": 12.5, "n_fake": 3, "n_real": 3}}', 'A->B: kid_mean is missing'),
    ('{"A->B": {"fid": 1, "kid_mean": 0.1, "kid_std": 0.1, "n_fake": 3, "n_real": true}}',
     'A->B: n_real is not a number'),
    ('{"A->B": {"l1": NaN}}', 'A->B: l1 is not a number'),
    ('{"A->B": ["fid"]}', 'A->B is not an object'),
    ('[1, 2]', 'not an object'),
    ('{"A->B": {"l1": ', 'not JSON'),
])
def test_damaged_scores_are_named_and_moved_aside(tmp_path, caplog, damaged, why):
    path = tmp_path / 'scores.json'
    path.write_text(damaged)
    assert sampling.read_scores(str(path)) == {}
    assert f'{path} is damaged ({why}' in caplog.text
    assert not path.exists() and len(list(tmp_path.glob('scores.json.damaged-*'))) == 1
    path.write_text('{"A->B": {"fid": 1.5, "kid_mean": 0.1, "kid_std": 0.01, "n_fake": 3, '
                    '"n_real": 3, "weights_sha256": "ab12"}}')
    assert sampling.read_scores(str(path))['A->B']['fid'] == 1.5 and path.exists()
