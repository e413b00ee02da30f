"""export.py and the exports at sizes they cannot take (issue 21.5, 21.6):
a --tflite_size beyond TFLite's tensors is refused before converting, a
converter that crashes is one line, no temporary folder is left after a
failure or a signal, and an exported model refuses an image above its
--max_pixels in the request's graph while it keeps serving the next ones.
One tiny CycleGAN run (ngf 4, one step) serves every test."""

import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_train import ROOT, make_data_root, tiny_args

from cyclegan_tf import config, export, train
from cyclegan_tf.interop import exporting


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('limits')
    data_root = make_data_root(tmp / 'datasets')
    assert train.main(tiny_args(tmp / 'runs', data_root, '--max_steps=1', '--print_freq=1',
                                '--summary_freq=0', '--display_freq=0')) == 0
    return str(tmp / 'runs' / 'tiny')


def _error_line(capsys, args):
    code = export.main(['export.py', *args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and lines and 'Traceback' not in err, err
    assert lines[-1].startswith('export.py: error: ')
    return lines[-1]


def _leftovers(folder):
    return sorted(name for name in os.listdir(folder) if '.tmp-' in name or '.old-' in name)


# ------------------------------------------------------------------ TFLite


def test_a_tflite_size_beyond_tflites_tensors_is_refused_before_converting(
        run_dir, tmp_path, capsys, monkeypatch):
    """Issue 21.5: --tflite_size 50000x50000 crashed the process (SIGSEGV),
    printed nothing and left .NAME.tmp-* beside the export. A TFLite tensor
    has fewer than 2^31 elements: the generator's largest tensor at that
    size is counted first and the size refused, naming the largest square
    size that fits, before the converter runs."""
    def no_conversion(*args, **kwargs):
        raise AssertionError('the converter ran')

    monkeypatch.setattr(exporting, 'convert_tflite', no_conversion)
    start = time.monotonic()
    line = _error_line(capsys, [f'--run={run_dir}', '--direction=AtoB', '--format=tflite',
                                '--tflite_size=50000x50000', f'--export_dir={tmp_path / "e"}'])
    assert time.monotonic() - start < 60
    assert line.startswith('export.py: error: --tflite_size 50000x50000: the generator\'s '
                           'largest tensor would have ')
    elements = int(line.split('would have ')[1].split()[0].replace(',', ''))
    assert 50000 ** 2 * 4 <= elements < 50008 ** 2 * 4  # 4 channels at full size, padded
    assert 'TFLite takes at most 2,147,483,647' in line
    largest = int(line.split('at most ')[-1].split('x')[0])
    assert 23000 < largest < 23170  # about sqrt(2^31 / 4) - 6
    assert largest % 4 == 0 and line.endswith(f'at most {largest}x{largest}')
    assert os.listdir(tmp_path) == []


def test_a_converter_crash_is_one_line_and_leaves_nothing(run_dir, tmp_path, capsys,
                                                          monkeypatch):
    """The converter runs in a child process: whatever kills it (here a
    SIGSEGV) is one line, and nothing is left beside the export."""
    monkeypatch.setattr(exporting, 'TFLITE_CHILD',
                        'import os, signal; os.kill(os.getpid(), signal.SIGSEGV)')
    line = _error_line(capsys, [f'--run={run_dir}', '--direction=AtoB', '--format=tflite',
                                '--tflite_size=32', f'--export_dir={tmp_path / "e"}'])
    assert line == ('export.py: error: the TFLite converter crashed (SIGSEGV) converting the '
                    'generator at 32x32: nothing was exported')
    assert os.listdir(tmp_path) == []


def test_sigterm_during_an_export_leaves_no_temporary_folder(run_dir, tmp_path):
    """SIGTERM ended export.py at once, its temporary folder left beside the
    export: now it is removed, as after Ctrl-C (KeyboardInterrupt, which
    removed it already), and the exit status is 130."""
    target = tmp_path / 'e'
    process = subprocess.Popen(
        [sys.executable, 'export.py', f'--run={run_dir}', '--format=saved_model,tflite',
         f'--export_dir={target}'], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    deadline = time.monotonic() + 120
    while not _leftovers(tmp_path) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and 'Traceback' not in err, err
    assert err.strip().splitlines()[-1] == 'export.py: interrupted'
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ serving


def _black_png(width, height):
    """A valid all-black greyscale PNG of width x height, a small file,
    compressed row by row (never the whole image in memory)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))

    compress, row, parts = zlib.compressobj(9), b'\0' * (width + 1), []
    for _ in range(height):
        parts.append(compress.compress(row))
    parts.append(compress.flush())
    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', b''.join(parts))
            + chunk(b'IEND', b''))


def _encoded(size, fmt):
    buffer = io.BytesIO()
    rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), np.uint8)
    Image.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def test_an_image_above_max_pixels_is_refused_and_the_model_keeps_serving(run_dir, tmp_path,
                                                                          capsys):
    """Issue 21.6: a 12000x12000 all-black PNG (a small file) sent to
    translate_encoded ended the serving process in std::bad_alloc (SIGABRT).
    The export refuses images above its --max_pixels, read from the PNG,
    JPEG, GIF or BMP header before decoding, with an InvalidArgumentError the
    client sees; the same session then translates a normal image. So does
    serving_default, on the size of its uint8 tensor."""
    assert config.ExportConfig().max_pixels == config.MAX_PIXELS == \
        config.SampleConfig().max_pixels
    target = tmp_path / 'e'
    assert export.main(['export.py', f'--run={run_dir}', '--direction=AtoB',
                        '--max_pixels=4096', f'--export_dir={target}']) == 0
    import json

    assert json.loads((target / 'export.json').read_text())['max_pixels'] == 4096
    tf1 = tf.compat.v1
    big = _black_png(12000, 12000)
    assert len(big) < 1_000_000
    with tf.Graph().as_default(), tf1.Session() as sess:
        meta = tf1.saved_model.loader.load(sess, ['serve'], str(target))
        encoded = meta.signature_def['translate_encoded']
        x, y = (sess.graph.get_tensor_by_name(t.name) for t in
                (encoded.inputs['images_bytes'], encoded.outputs['images_bytes']))
        uint8 = meta.signature_def['serving_default']
        u, v = (sess.graph.get_tensor_by_name(t.name) for t in
                (uint8.inputs['images'], uint8.outputs['images']))
        refused = [big, _encoded((100, 41), 'JPEG'), _encoded((65, 64), 'GIF'),
                   _encoded((70, 70), 'BMP'), _black_png(64, 65)]
        for contents in refused:
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match='above the limit of this export, 4096 pixels'):
                sess.run(y, {x: [contents]})
        for size, fmt in (((64, 64), 'PNG'), ((40, 30), 'JPEG'), ((20, 21), 'GIF'),
                          ((9, 13), 'BMP')):
            png = sess.run(y, {x: [_encoded(size, fmt)]})[0]
            assert Image.open(io.BytesIO(png)).size == size[::-1]
        with pytest.raises(tf.errors.InvalidArgumentError, match='above the limit of this export'):
            sess.run(v, {u: np.zeros([1, 65, 64, 3], np.uint8)})
        assert sess.run(v, {u: np.zeros([1, 64, 64, 3], np.uint8)}).shape == (1, 64, 64, 3)


def test_sample_skips_input_images_above_max_pixels(run_dir, tmp_path, capsys, caplog):
    """sample.py --input reads each image's size from its header and skips
    one above --max_pixels (default config.MAX_PIXELS, as the exports')."""
    from cyclegan_tf import sample

    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / 'big.png').write_bytes(_black_png(100, 100))
    (folder / 'small.png').write_bytes(_encoded((16, 12), 'PNG'))
    out = tmp_path / 'out'
    assert sample.main(['sample.py', f'--run={run_dir}', f'--input={folder}',
                        '--max_pixels=4096', f'--results_dir={out}']) == 0
    assert sorted(os.listdir(out / 'images')) == ['small_fake_B.png', 'small_real_A.png',
                                                  'small_rec_A.png']
    assert f'skipping {folder / "big.png"}: 100x100 is 10,000 pixels, above --max_pixels ' \
           f'4096' in caplog.text
