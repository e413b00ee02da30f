"""sample.py --input DIR on many files: all of them by default, unreadable ones
skipped with one warning each, a progress bar, and a rerun that keeps what was
written completely (and redoes what another checkpoint, setting or source made)."""

import json
import os
import re
import threading

import numpy as np
import pytest
from PIL import Image
from test_train import make_data_root, tiny_args

from cyclegan_tf import inference, sample, train
from cyclegan_tf.evaluation import sampling, streaming

COUNT = 50


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A tiny CycleGAN run trained 2 steps, and a folder of COUNT 16 px images
    (the last 10 in a subfolder) plus two unreadable files."""
    data_root = make_data_root(tmp_path_factory.mktemp('datasets'))
    runs_dir = tmp_path_factory.mktemp('runs')
    assert train.main(tiny_args(runs_dir, data_root, '--max_steps=2')) == 0
    photos = tmp_path_factory.mktemp('photos')
    rng = np.random.default_rng(0)
    for i in range(COUNT):
        folder = photos / 'z' if i >= COUNT - 10 else photos
        folder.mkdir(exist_ok=True)
        image = Image.fromarray(rng.integers(0, 255, (16, 16 + i % 3, 3), np.uint8))
        image.save(folder / f'{i:04d}.{"png" if i % 5 else "jpg"}')
    (photos / 'junk.png').write_bytes(b'not an image at all')
    jpeg = (photos / '0000.jpg').read_bytes()
    (photos / 'cut.jpg').write_bytes(jpeg[:len(jpeg) // 3])
    return os.path.join(runs_dir, 'tiny'), str(photos)


@pytest.fixture(scope='module')
def translator(run):
    with inference.Translator.from_run(run[0]) as translator:
        yield translator


def _sample(run_dir, photos, out, *extra):
    return sample.main(['sample.py', f'--run={run_dir}', f'--input={photos}',
                        f'--results_dir={out}', *extra])


def _inodes(folder):
    """name -> (inode, mtime): which file holds the name (a freed inode is reused)."""
    stats = {name: os.stat(os.path.join(folder, name)) for name in os.listdir(folder)}
    return {name: (s.st_ino, s.st_mtime_ns) for name, s in stats.items()}


def test_a_folder_is_translated_whole_skipping_unreadable_files(run, tmp_path, capsys, caplog):
    run_dir, photos = run
    out = tmp_path / 'out'
    assert _sample(run_dir, photos, out) == 0  # --num_test 0, the default: all
    captured = capsys.readouterr()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    names = os.listdir(out / 'images')
    assert len(names) == 3 * COUNT  # real_A, fake_B, rec_A of each readable file
    assert {f'{i:04d}_fake_B.png' for i in range(COUNT)} <= set(names)
    assert np.asarray(Image.open(out / 'images' / '0001_fake_B.png')).shape == (16, 17, 3)
    for bad in ('junk.png', 'cut.jpg'):  # one warning each, naming the file
        assert len([w for w in warnings
                    if re.match(rf'skipping unreadable image \S*{bad}', w)]) == 1
    assert f'A -> B: {COUNT} images' in captured.out
    page = (out / 'index.html').read_text()
    assert page.count('<tr>') == 1 + COUNT and 'images/0049_rec_A.png' in page
    assert (out / 'grid.png').exists() and not any(n.endswith('.tmp') for n in names)


def test_a_rerun_keeps_what_was_written_and_redoes_the_rest(run, tmp_path, capsys):
    run_dir, photos = run
    out = tmp_path / 'out'
    assert _sample(run_dir, photos, out, '--num_test=10') == 0
    assert len(os.listdir(out / 'images')) == 3 * 10
    first = _inodes(out / 'images')
    os.remove(out / 'images' / '0003_rec_A.png')  # as if killed while writing 0003
    (out / 'images' / '.0004_fake_B.png.1234abcd.tmp').write_bytes(b'half a png')
    capsys.readouterr()
    assert _sample(run_dir, photos, out, '--num_test=12') == 0
    assert '12 images (9 of them written before: kept)' in capsys.readouterr().out
    again = _inodes(out / 'images')
    kept = [n for n in first if first[n] == again.get(n)]
    assert sorted({n[:4] for n in kept}) == [f'{i:04d}' for i in range(10) if i != 3]
    assert {f'{i:04d}_fake_B.png' for i in (3, 10, 11)} <= set(again)
    page = (out / 'index.html').read_text()
    assert page.count('<tr>') == 1 + 12 and page.index('0002_') < page.index('0003_')


def test_other_settings_or_another_source_file_are_translated_again(run, translator, tmp_path):
    _, photos = run
    out = str(tmp_path / 'out')
    files = [os.path.join(photos, f'{i:04d}.png') for i in (1, 2, 3)]
    work = [('A', 'photos', {'A': files})]

    def translate(settings):
        sampling.translate(translator, translator.cfg, work, out, keep=False, resume=settings)
        return _inodes(os.path.join(out, 'images'))

    first = translate({'checkpoint': 'x', 'training': True})
    assert translate({'checkpoint': 'x', 'training': True}) == first
    second = translate({'checkpoint': 'x', 'training': False})  # e.g. --eval
    assert not set(first.items()) & set(second.items())
    image = np.asarray(Image.open(files[0]))
    Image.fromarray(255 - image).save(files[0])  # the same name, another image
    try:
        third = translate({'checkpoint': 'x', 'training': False})
    finally:
        Image.fromarray(image).save(files[0])
    assert sorted(n for n in third if third[n] != second[n]) == [
        '0001_fake_B.png', '0001_real_A.png', '0001_rec_A.png']


def test_a_rerun_of_the_test_split_reads_the_scores_back_from_the_kept_images(
        run, tmp_path, capsys):
    run_dir, _ = run
    out = tmp_path / 'out'
    args = ['sample.py', f'--run={run_dir}', f'--results_dir={out}']
    assert sample.main(args) == 0
    first = json.loads((out / 'scores.json').read_text())
    # Killed while writing B -> A of 0002: its files are shared with A -> B's row.
    os.remove(out / 'images' / '0002_rec_B.png')
    (out / 'scores.json').unlink()
    capsys.readouterr()
    assert sample.main(args) == 0
    printed = capsys.readouterr().out
    assert '(A -> B): 4 images (4 of them written before: kept)' in printed
    assert '(B -> A): 4 images (3 of them written before: kept)' in printed
    again = json.loads((out / 'scores.json').read_text())
    for direction in ('A->B', 'B->A'):
        for name in ('l1', 'psnr', 'baseline_l1', 'baseline_psnr', 'pairs'):
            assert again[direction][name] == pytest.approx(first[direction][name], abs=1e-9)


def test_the_progress_bar_shows_images_per_second(run, translator, tmp_path, capsys):
    _, photos = run
    files = sorted(os.path.join(photos, 'z', n) for n in os.listdir(os.path.join(photos, 'z')))
    results = sampling.translate(translator, translator.cfg, [('A', 'photos', {'A': files})],
                                 str(tmp_path), keep=False, progress=True)
    err = capsys.readouterr().err
    assert re.search(r'photos: 100%.* 10/10 .*img/s', err)
    assert results.directions['A->B']['translations'] == []  # nothing held: memory flat


def test_the_writer_keeps_order_and_raises_its_error_in_the_caller():
    seen = []
    with streaming.Writer(depth=2) as writer:
        for i in range(20):
            writer.put(seen.append, i)
    assert seen == list(range(20))
    gate = threading.Event()

    def fail(_):
        gate.wait(5)
        raise OSError(28, 'No space left on device')

    writer = streaming.Writer(depth=1)
    writer.put(fail, 0)
    writer.put(seen.append, 'dropped')
    gate.set()
    with pytest.raises(OSError, match='No space left'):
        for _ in range(10):
            writer.put(seen.append, 'after')
        writer.close()
    writer.close()  # raised once
    assert 'dropped' not in seen
