"""export.py on tiny trained runs (CycleGAN, colorization): the SavedModel
loaded without this project's code, eager and in graph mode, each signature
on images of several sizes against sample.py's PNGs and the Translator's
floats, the frozen graph and TFLite against it, saved_model_cli, the
in-graph padding, and bad input as one line and exit 2 with nothing written."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_train import make_data_root

from cyclegan_tf import config, export, inference, sample, train
from cyclegan_tf.data import pipeline
from cyclegan_tf.interop import exporting
from cyclegan_tf.models import cycle_gan
from cyclegan_tf.running import runs, session

TINY = ['--crop_size=32', '--load_size=32', '--ngf=8', '--ndf=8', '--netG=resnet_6blocks',
        '--max_steps=2']
TFLITE_SIZE = (37, 50)  # colorization's, the size of odd.png: not a multiple of 4
# Test images: name -> uint8 array (PNG files of their channels; photo.jpg is a JPEG).
RNG = np.random.default_rng(0)
IMAGES = {'odd': RNG.integers(0, 256, (37, 50, 3), np.uint8),
          'tiny': RNG.integers(0, 256, (5, 3, 3), np.uint8),
          'line': RNG.integers(0, 256, (1, 6, 3), np.uint8),
          'dot': RNG.integers(0, 256, (1, 1, 3), np.uint8),
          'gray': RNG.integers(0, 256, (9, 13, 1), np.uint8),
          'rgba': RNG.integers(0, 256, (6, 10, 4), np.uint8)}
# One pixel is padded to a constant image: instance norm then normalizes float
# rounding noise, layer after layer, and the translation is whatever the
# kernels' rounding makes it (different in two graphs of the same weights).
# It is checked for its shape, and between the signatures of one SavedModel.
ILL_CONDITIONED = {'dot'}

# Run in a fresh interpreter, in a folder of its own, with only TensorFlow:
# loads each export every way a user can and writes what each signature gives.
CHECK = r'''
import importlib.util, json, os, sys
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
for name in ('exporting', 'inference', 'model', 'data'):
    assert importlib.util.find_spec(name) is None, f'the project is on the path: {name}'
import numpy as np
import tensorflow as tf

request = json.load(open(sys.argv[1]))
inputs = np.load(request['inputs'])  # 'u8/<image>' uint8 [N, H, W, C], 'float/<export>/<image>'
encoded = {name: open(path, 'rb').read() for name, path in request['files'].items()}
out, info = {}, {}
for export, folder in request['exports'].items():
    images = {k[3:]: v for k, v in inputs.items() if k.startswith('u8/')}
    floats = {k.split('/')[2]: v for k, v in inputs.items() if k.startswith(f'float/{export}/')}
    batch = [encoded[name] for name in sorted(encoded)]
    # TF2, eager
    loaded = tf.saved_model.load(folder)
    sigs = loaded.signatures
    info[export] = {
        'signatures': sorted(sigs),
        'inputs': {k: [(s.dtype.name, s.shape.as_list())
                       for s in f.structured_input_signature[1].values()]
                   for k, f in sigs.items()},
        'export.json': json.load(open(os.path.join(folder, 'assets', 'export.json'))),
        'config.json': json.load(open(os.path.join(folder, 'assets', 'config.json')))}
    for name, image in images.items():
        out[f'{export}|eager|serving_default|{name}'] = sigs['serving_default'](
            images=image)['images'].numpy()
    for name, x in floats.items():
        out[f'{export}|eager|translate|{name}'] = sigs['translate'](images=x)['images'].numpy()
    pngs = sigs['translate_encoded'](images_bytes=tf.constant(batch))['images_bytes'].numpy()
    for name, png in zip(sorted(encoded), pngs):
        out[f'{export}|eager|translate_encoded|{name}'] = tf.io.decode_png(png).numpy()
    # TF1, graph mode: the signatures' tensors by name
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ['serve'], folder)
        def run(signature, value):
            sig = meta.signature_def[signature]
            (i,), (o,) = sig.inputs.values(), sig.outputs.values()
            return sess.run(o.name, {i.name: value})
        for name, image in images.items():
            out[f'{export}|graph|serving_default|{name}'] = run('serving_default', image)
        for name, x in floats.items():
            out[f'{export}|graph|translate|{name}'] = run('translate', x)
        pngs = dict(zip(sorted(encoded), run('translate_encoded', batch)))
    for name, png in pngs.items():
        out[f'{export}|graph|translate_encoded|{name}'] = tf.io.decode_png(png).numpy()
    # the frozen graph, as a TF1 user loads a .pb
    path = os.path.join(folder, 'frozen_graph.pb')
    if os.path.exists(path):
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(open(path, 'rb').read())
        with tf.Graph().as_default() as graph:
            tf.compat.v1.import_graph_def(graph_def, name='')
            info[export]['frozen_ops'] = sorted({n.op for n in graph_def.node})
            with tf.compat.v1.Session(graph=graph) as sess:
                for name, image in images.items():
                    out[f'{export}|frozen|serving_default|{name}'] = sess.run(
                        'output_images:0', {'input_images:0': image})
    path = os.path.join(folder, 'model.tflite')
    if os.path.exists(path):
        interpreter = tf.lite.Interpreter(model_path=path)
        (i,), (o,) = interpreter.get_input_details(), interpreter.get_output_details()
        shape = i['shape_signature'].tolist()
        info[export]['tflite'] = [shape, i['dtype'].__name__]
        for name, image in images.items():
            if all(d in (-1, n) for d, n in zip(shape, image.shape)):
                interpreter.resize_tensor_input(i['index'], image.shape)
                interpreter.allocate_tensors()
                interpreter.set_tensor(i['index'], image)
                interpreter.invoke()
                out[f'{export}|tflite|serving_default|{name}'] = interpreter.get_tensor(o['index'])
np.savez(request['out'], **out)
json.dump(info, open(request['info'], 'w'))
'''


def _train(runs_dir, data_root, name, *extra):
    assert train.main(['train.py', f'--runs_dir={runs_dir}', f'--data_root={data_root}',
                       f'--name={name}', *TINY, *extra]) == 0
    return os.path.join(runs_dir, name)


def _png(path):
    return np.asarray(Image.open(path))


def _write_inputs(folder):
    folder.mkdir()
    for name, image in IMAGES.items():
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            folder / f'{name}.png')
    Image.fromarray(IMAGES['odd']).save(folder / 'photo.jpg', quality=90)
    return folder


# The exports of the fixture: name -> (run, direction, the file name sample.py
# gives its translations, or None: compared with Translator.translate alone,
# sample.py's translator, to save a sample.py run)
EXPORTS = {'AtoB': ('cg', 'AtoB', 'fake_B'), 'BtoA': ('cg', 'BtoA', None),
           'col': ('col', 'AtoB', 'fake_B_rgb')}


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """Two tiny runs trained 2 steps, exported, sampled, and the exports run
    by CHECK in a fresh process: a dict of what the tests compare."""
    tmp = tmp_path_factory.mktemp('export')
    data_root = make_data_root(tmp / 'datasets')
    run_dirs = {'cg': _train(tmp / 'runs', data_root, 'cg'),
                'col': _train(tmp / 'runs', data_root, 'col', '--model=colorization')}
    formats = '--format=saved_model,frozen_graph,tflite'
    assert export.main(['export.py', f'--run={run_dirs["cg"]}', formats]) == 0
    assert export.main(['export.py', f'--run={run_dirs["col"]}', formats,
                        f'--tflite_size={TFLITE_SIZE[0]}x{TFLITE_SIZE[1]}']) == 0
    exports = {'AtoB': os.path.join(run_dirs['cg'], 'export', 'AtoB'),
               'BtoA': os.path.join(run_dirs['cg'], 'export', 'BtoA'),
               'col': os.path.join(run_dirs['col'], 'export')}
    cli = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), 'saved_model_cli'),
                            'show', '--all', '--dir', exports['AtoB']],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    inputs_dir = _write_inputs(tmp / 'inputs')
    arrays = {f'u8/{name}': image[None] for name, image in IMAGES.items()}
    arrays['u8/flipped'] = IMAGES['odd'][None, ::-1]
    arrays['u8/odd_L'] = np.asarray(Image.fromarray(IMAGES['odd']).convert('L'))[None, ..., None]
    arrays['u8/pair'] = np.concatenate([arrays['u8/odd'], arrays['u8/flipped']])  # a batch
    floats, translated = {}, {}  # the Translator's: (export, image) -> float, uint8
    for run, run_dir in run_dirs.items():
        with inference.Translator.from_run(run_dir, eval=True) as translator:
            for export_name, direction in ((e, d) for e, (r, d, _) in EXPORTS.items() if r == run):
                key = direction[0]
                for name in IMAGES:
                    with Image.open(inputs_dir / f'{name}.png') as image:
                        translated[export_name, name] = translator.translate(image, direction)
                        rgb = np.asarray(image.convert('RGB'))
                    x = translator.sess.run(translator.from_rgb[key], {translator.rgb: rgb})
                    arrays[f'float/{export_name}/{name}'] = x[None]
                    floats[export_name, name] = translator(key, x)['translation']
    np.savez(tmp / 'inputs.npz', **arrays)
    files = {name: str(inputs_dir / f'{name}.png') for name in IMAGES}
    files['photo'] = str(inputs_dir / 'photo.jpg')
    request = dict(exports=exports, inputs=str(tmp / 'inputs.npz'), files=files,
                   out=str(tmp / 'out.npz'), info=str(tmp / 'info.json'))
    (tmp / 'request.json').write_text(json.dumps(request))
    (tmp / 'check.py').write_text(CHECK)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    checked = subprocess.Popen([sys.executable, 'check.py', 'request.json'], cwd=tmp, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # sample.py on the same files, as the exports in inference mode (--eval)
    samples = {}
    for export_name, (run, direction, label) in EXPORTS.items():
        if label is None:
            continue
        results = tmp / f'sample_{export_name}'
        assert sample.main(['sample.py', f'--run={run_dirs[run]}', f'--input={inputs_dir}',
                            f'--direction={direction}', f'--results_dir={results}',
                            '--eval']) == 0
        for name in files:
            samples[export_name, name] = _png(results / 'images' / f'{name}_{label}.png')
    for process in (checked, cli):
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        if process is cli:
            cli_out = stdout
    return dict(runs=run_dirs, exports=exports, out=dict(np.load(tmp / 'out.npz')),
                info=json.loads((tmp / 'info.json').read_text()), floats=floats,
                translated=translated, samples=samples, cli=cli_out)


def _max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def test_every_signature_eager_and_in_graph_mode_gives_sample_pys_translation(exported):
    out, samples = exported['out'], exported['samples']
    for export_name in EXPORTS:
        for name, image in IMAGES.items():
            got = {mode: out[f'{export_name}|{mode}|serving_default|{name}']
                   for mode in ('eager', 'graph')}
            for mode, images in got.items():
                assert images.dtype == np.uint8 and images.shape == (1,) + image.shape[:2] + (3,)
                decoded = out[f'{export_name}|{mode}|translate_encoded|{name}']
                assert np.array_equal(decoded, images[0]), (export_name, mode, name)
            assert np.array_equal(got['eager'], got['graph'])
            if name not in ILL_CONDITIONED:
                assert _max_diff(got['eager'][0], exported['translated'][export_name, name]) <= 1
                if (export_name, name) in samples:
                    assert _max_diff(got['eager'][0], samples[export_name, name]) <= 1, (
                        export_name, name)
        # a JPEG file, decoded as training decodes it
        if (export_name, 'photo') in samples:
            for mode in ('eager', 'graph'):
                assert _max_diff(out[f'{export_name}|{mode}|translate_encoded|photo'],
                                 samples[export_name, 'photo']) <= 1
        # a batch of two is two translations
        pair = out[f'{export_name}|eager|serving_default|pair']
        for image, name in zip(pair, ('odd', 'flipped')):
            assert np.array_equal(image, out[f'{export_name}|eager|serving_default|{name}'][0])


def test_sample_py_input_colorizes_the_lightness_as_training(exported):
    """sample.py --input on a colorization run gives the model Lab's L of
    each photo, as training and Translator.translate do (it gave the
    luma of a one-channel image instead)."""
    for name in set(IMAGES) - ILL_CONDITIONED:
        assert _max_diff(exported['samples']['col', name],
                         exported['translated']['col', name]) <= 1, name


def test_translate_gives_the_translators_floats(exported):
    out = exported['out']
    for (export_name, name), expected in exported['floats'].items():
        for mode in ('eager', 'graph'):
            got = out[f'{export_name}|{mode}|translate|{name}']
            assert got.dtype == np.float32 and got.shape == (1,) + expected.shape
            if name not in ILL_CONDITIONED:
                np.testing.assert_allclose(got[0], expected, atol=1e-5, rtol=0)


def test_the_frozen_graph_and_tflite_give_the_same_images(exported):
    out, info = exported['out'], exported['info']
    for export_name in EXPORTS:
        for name in set(IMAGES) - ILL_CONDITIONED:
            assert np.array_equal(out[f'{export_name}|frozen|serving_default|{name}'],
                                  out[f'{export_name}|eager|serving_default|{name}'])
        assert 'Placeholder' in info[export_name]['frozen_ops']
        assert not {'VariableV2', 'VarHandleOp', 'PartitionedCall'} & set(
            info[export_name]['frozen_ops'])
    # TFLite, RGB at any size (CycleGAN), L at a fixed size (colorization, --tflite_size).
    # Its kernels are not TensorFlow's: within two 8-bit levels here.
    assert info['AtoB']['tflite'] == [[-1, -1, -1, 3], 'uint8']
    assert info['col']['tflite'] == [[1, *TFLITE_SIZE, 1], 'uint8']
    assert {key.split('|')[3] for key in out if key.startswith('AtoB|tflite|')} == set(
        IMAGES) - {'gray', 'rgba'} | {'pair', 'flipped'}
    assert [key for key in out if key.startswith('col|tflite|')] == [
        'col|tflite|serving_default|odd_L']
    for key in (k for k in out if '|tflite|' in k and k.split('|')[3] not in ILL_CONDITIONED):
        eager = out[key.replace('|tflite|', '|eager|')]
        assert _max_diff(out[key], eager) <= 2, key


def test_signatures_metadata_and_saved_model_cli(exported):
    info = exported['info']['AtoB']
    assert info['signatures'] == ['serving_default', 'translate', 'translate_encoded']
    assert info['inputs'] == {'serving_default': [['uint8', [None, None, None, None]]],
                              'translate': [['float32', [None, None, None, 3]]],
                              'translate_encoded': [['string', [None]]]}
    meta = info['export.json']
    assert (meta['model'], meta['direction'], meta['generator'], meta['step'], meta['mode']) == (
        'cycle_gan', 'AtoB', 'G_A', 2, 'inference')
    assert info['config.json'] == runs.load_config(exported['runs']['cg']).to_dict()
    col = exported['info']['col']
    assert col['inputs']['translate'] == [['float32', [None, None, None, 1]]]
    assert (col['export.json']['direction'], col['export.json']['generator']) == ('AtoB', 'G')
    cli = exported['cli']
    for name in ('serving_default', 'translate', 'translate_encoded'):
        assert f"signature_def['{name}']" in cli
    assert 'dtype: DT_UINT8' in cli and 'dtype: DT_STRING' in cli
    assert 'name: input_images:0' in cli and 'name: output_bytes:0' in cli


def test_in_graph_padding_and_rounding_match_numpys():
    tf = session.graph_mode()
    cases = [(h, w, multiple, minimum) for h in (1, 2, 3, 5, 8) for w in (1, 4, 7, 9)
             for multiple, minimum in ((4, 8), (4, 1), (1, 1), (16, 16))]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 2])
        multiple = tf.compat.v1.placeholder(tf.int32, [])
        minimum = tf.compat.v1.placeholder(tf.int32, [])
        padded = exporting.pad_to(images, multiple, minimum)
        for h, w, m, n in cases:
            image = np.arange(h * w * 2, dtype=np.float32).reshape(h, w, 2)
            got = sess.run(padded, {images: image[None], multiple: m, minimum: n})[0]
            np.testing.assert_array_equal(got, inference.pad_to(image, m, n), str((h, w, m, n)))
        values = np.concatenate([(np.arange(256) + 0.5) / 127.5 - 1.0, [-1.5, 1.5, 0.0]])
        values = values.astype(np.float32)
        x = tf.compat.v1.placeholder(tf.float32, [None])
        assert np.array_equal(sess.run(exporting.to_uint8(x), {x: values}),
                              pipeline.to_uint8(values))


# ------------------------------------------------------------ bad input


def _error_line(capsys, args):
    capsys.readouterr()
    assert export.main(['export.py', *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('export.py: error: '), err
    return err[0]


def _leftovers(folder):
    return sorted(name for name in os.listdir(folder) if '.tmp-' in name or '.old-' in name)


def test_bad_input_is_one_line_and_writes_nothing(exported, tmp_path, capsys):
    cg, col = exported['runs']['cg'], exported['runs']['col']
    fresh = tmp_path / 'fresh'
    fresh.mkdir()
    shutil.copy(os.path.join(cg, 'config.json'), fresh)
    assert 'has no checkpoint yet' in _error_line(capsys, [f'--run={fresh}'])
    assert 'no checkpoint' in _error_line(capsys, [f'--checkpoint={cg}/checkpoints/nope'])
    assert '--direction' in _error_line(capsys, [f'--run={cg}', '--direction=sideways'])
    line = _error_line(capsys, [f'--run={col}', '--direction=BtoA',
                                f'--export_dir={tmp_path / "x"}'])
    assert 'translates from A only' in line and 'BtoA' in line
    assert '--format' in _error_line(capsys, [f'--run={cg}', '--format=pdf'])
    assert '--tflite_size' in _error_line(capsys, [f'--run={cg}', '--tflite_size=big'])
    assert 'give one of --checkpoint, --best' in _error_line(
        capsys, [f'--run={cg}', '--best', f'--checkpoint={cg}/checkpoints/model.ckpt-2'])
    assert 'has no best checkpoint' in _error_line(capsys, [f'--run={cg}', '--best'])
    # unwritable: below a file
    (tmp_path / 'file').write_text('')
    line = _error_line(capsys, [f'--run={col}', f'--export_dir={tmp_path / "file" / "out"}'])
    assert 'cannot write the export folder' in line
    # an existing export, and a folder that is no export, are kept
    export_dir = exported['exports']['col']
    before = sorted(os.listdir(export_dir))
    assert '--overwrite' in _error_line(capsys, [f'--run={col}'])
    line = _error_line(capsys, [f'--run={col}', f'--export_dir={cg}', '--overwrite'])
    assert 'is not an export of export.py' in line
    assert sorted(os.listdir(export_dir)) == before and os.path.isdir(os.path.join(cg, 'export'))
    assert [p for p in (tmp_path, os.path.dirname(export_dir)) if _leftovers(p)] == []
    assert sorted(os.listdir(tmp_path)) == ['file', 'fresh']


def test_an_unwritable_folder_is_one_line(exported, tmp_path, capsys, monkeypatch):
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes anywhere: see the folder as another user does
        access = os.access
        monkeypatch.setattr(os, 'access', lambda path, mode: access(path, mode) and (
            os.path.abspath(path) != str(locked)))
    line = _error_line(capsys, [f'--run={exported["runs"]["col"]}',
                                f'--export_dir={locked / "out"}'])
    assert 'is not writable' in line and os.listdir(locked) == []


def test_a_failed_export_keeps_the_previous_one_and_leaves_nothing(exported, monkeypatch,
                                                                   tmp_path, capsys):
    col = exported['runs']['col']
    target = tmp_path / 'export'
    shutil.copytree(exported['exports']['col'], target)
    before = {path: path.read_bytes() for path in target.rglob('*') if path.is_file()}

    def fail(*args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(exporting, 'write_frozen_graph', fail)
    line = _error_line(capsys, [f'--run={col}', f'--export_dir={target}', '--overwrite',
                                '--format=saved_model,frozen_graph'])
    assert line == 'export.py: error: [Errno 28] No space left on device'
    assert {path: path.read_bytes() for path in target.rglob('*') if path.is_file()} == before
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    # --overwrite replaces it; --train_mode keeps dropout (random) in the graph
    assert export.main(['export.py', f'--run={col}', f'--export_dir={target}', '--overwrite',
                        '--format=frozen_graph', '--train_mode']) == 0
    assert sorted(os.listdir(target)) == ['config.json', 'export.json', 'frozen_graph.pb']
    assert json.loads((target / 'export.json').read_text())['mode'] == 'training'
    graph_def = tf.compat.v1.GraphDef.FromString((target / 'frozen_graph.pb').read_bytes())
    assert 'RandomUniform' in {node.op for node in graph_def.node}
    assert 'RandomUniform' not in exported['info']['col']['frozen_ops']
    assert _leftovers(tmp_path) == []


def test_best_and_imported_runs_choose_what_is_exported(exported, tmp_path):
    cg = exported['runs']['cg']
    run = tmp_path / 'run'
    shutil.copytree(cg, run, ignore=shutil.ignore_patterns('export'))
    (run / 'checkpoints' / 'best.json').write_text(json.dumps(
        {'checkpoint': 'model.ckpt-2', 'fid': 123.4}))
    plan = exporting.plan(config.ExportConfig(run=str(run), best=True))
    assert plan.checkpoint == str(run / 'checkpoints' / 'model.ckpt-2')
    assert plan.export_dir == str(run / 'export') and plan.imported is None
    (run / 'checkpoints' / 'best.json').write_text(json.dumps({'checkpoint': 'gone'}))
    with pytest.raises(runs.RunError, match='the best checkpoint .*gone of .* is missing'):
        exporting.plan(config.ExportConfig(run=str(run), best=True))

    (run / 'imported.json').write_text(json.dumps({'source': 'x.pth', 'networks': ['G_A']}))
    plan = exporting.plan(config.ExportConfig(run=str(run)))
    assert plan.imported == ('G_A',)
    assert exporting.directions(cycle_gan.CycleGAN, plan, step=0) == ('A',)  # as imported
    assert exporting.directions(cycle_gan.CycleGAN, plan, step=2) == ('A', 'B')  # trained on
    with pytest.raises(runs.RunError, match='its BtoA generator G_B is untrained'):
        exporting.directions(cycle_gan.CycleGAN, plan.__class__(
            **{**plan.__dict__, 'direction': 'BtoA'}), step=0)
    (run / 'imported.json').write_text(json.dumps({'networks': ['G_B']}))
    plan = exporting.plan(config.ExportConfig(run=str(run), direction='AtoB'))
    with pytest.raises(runs.RunError, match='holds imported weights of G_B only'):
        exporting.directions(cycle_gan.CycleGAN, plan, step=0)


def test_a_toy_run_has_nothing_to_export(tmp_path, capsys):
    run = tmp_path / 'toy'
    runs.save_config(config.ToyGANConfig(), str(run / 'config.json'))
    (run / 'checkpoints').mkdir()
    (run / 'checkpoints' / 'checkpoint').write_text('model_checkpoint_path: "model.ckpt-1"\n')
    (run / 'checkpoints' / 'model.ckpt-1.index').write_bytes(b'')
    assert 'translates no images' in _error_line(capsys, [f'--run={run}'])


def test_help_lists_the_flags(capsys):
    assert export.main(['export.py', '--help']) == 0
    text = capsys.readouterr().out
    for name in config.ExportConfig.options():
        assert f'--{name}' in text or f'--[no]{name}' in text
