"""export.py --format onnx: onnxruntime on CPU against TensorFlow for the
same photo, within one 8-bit level, for the ResNet (CycleGAN) and U-Net
(pix2pix) generators of runs and for CUT's anti-aliased generator built from
modules.CUTResnetGenerator; a --train_mode export (batch statistics,
dropout), fed the dropout draws TensorFlow made; the ops tf2onnx cannot
convert, rewritten; the README's onnxruntime example without TensorFlow; the
missing dependency as one line. The runs are untrained (weights as initialized, saved as a
checkpoint): the conversion does not depend on the values."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, SAMPLE_DATA
from PIL import Image
from test_export import _error_line

from cyclegan_tf import config, export, inference, modules, ops, registry
from cyclegan_tf.data import pipeline
from cyclegan_tf.interop import exporting, to_onnx
from cyclegan_tf.running import runs

tf1 = tf.compat.v1
PHOTO = SAMPLE_DATA / 'misc' / 'zebra_wide.jpg'
FIXED = (40, 60)  # the pix2pix export's --onnx_size
LEVEL = 1.0 / 127.5  # one 8-bit level in [-1, 1]


@pytest.fixture(scope='module')
def ort():
    """onnxruntime, with tf2onnx and onnx: skips without them, naming what is
    missing; fails instead when CI=true (.ci/run installs requirements-onnx.txt)."""
    missing = [name for name in ('tf2onnx', 'onnx', 'onnxruntime')
               if importlib.util.find_spec(name) is None]
    if missing:
        message = f'{", ".join(missing)} not installed (pip install -r requirements-onnx.txt)'
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    import onnxruntime

    return onnxruntime


def _untrained_run(folder, cfg):
    """A run folder of ``cfg`` whose checkpoint model.ckpt-1 holds the
    inference graph's variables as initialized."""
    runs.save_config(cfg, str(folder / 'config.json'))
    with tf.Graph().as_default():
        registry.of(cfg).model_class.build_inference(cfg)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(sess, str(folder / 'checkpoints' / 'model.ckpt'),
                                   global_step=1)
    return folder


def _photo(size=None):
    with Image.open(PHOTO) as image:
        image = image.convert('RGB')
        return np.asarray(image.resize(size[::-1], Image.BILINEAR) if size else image)


def _session(ort, path):
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])


def _max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


@pytest.fixture(scope='module')
def exported(ort, tmp_path_factory):
    """A CycleGAN run (resnet_6blocks) exported AtoB at any size, a pix2pix
    run (unet_128) at --onnx_size FIXED: {name: (run, export folder)}."""
    tmp = tmp_path_factory.mktemp('onnx')
    made = {'cg': (config.CycleGANConfig(ngf=8, netG='resnet_6blocks'), ['--direction=AtoB']),
            'p2p': (config.Pix2PixConfig(ngf=4, netG='unet_128'),
                    [f'--onnx_size={FIXED[0]}x{FIXED[1]}'])}
    result = {}
    for name, (cfg, flags) in made.items():
        run = _untrained_run(tmp / name, cfg)
        assert export.main(['export.py', f'--run={run}', '--format=onnx', *flags]) == 0
        result[name] = run, run / 'export'
    return result


def _tensorflow(run, images):
    """(uint8 translations as sample.py gives them, the float translations of
    their model inputs) of ``images`` [H, W, 3], with the run's Translator."""
    with inference.Translator.from_run(str(run), eval=True) as translator:
        uint8 = [np.asarray(translator.translate(image, 'AtoB')) for image in images]
        inputs = [translator.sess.run(translator.from_rgb['A'], {translator.rgb: image})
                  for image in images]
        floats = [translator('A', x)['translation'] for x in inputs]
    return uint8, inputs, floats


def test_resnet_and_unet_exports_run_in_onnxruntime_as_in_tensorflow(exported, ort):
    assert sorted(os.listdir(exported['cg'][1])) == [
        'config.json', 'export.json', 'model.onnx', 'model_float.onnx']
    photos = {'cg': [_photo(), _photo((37, 50)), _photo((37, 50))[::-1]],
              'p2p': [_photo(FIXED)]}
    for name, (run, folder) in exported.items():
        uint8, inputs, floats = _tensorflow(run, photos[name])
        model, model_float = (_session(ort, folder / f) for f in exporting.ONNX_FILES.values())
        (i,), (o,) = model.get_inputs(), model.get_outputs()
        assert (i.name, i.type, o.name, o.type) == (
            'input_images', 'tensor(uint8)', 'output_images', 'tensor(uint8)')
        (i_float,) = model_float.get_inputs()
        assert (i_float.name, i_float.type) == ('input_float', 'tensor(float)')
        for image, expected, x, expected_float in zip(photos[name], uint8, inputs, floats):
            assert _max_diff(model.run(None, {'input_images': image[None]})[0][0],
                             expected) <= 1, name
            got = model_float.run(None, {'input_float': x[None]})[0][0]
            np.testing.assert_allclose(got, expected_float, atol=1e-4, rtol=0)
        meta = json.loads((folder / 'export.json').read_text())['onnx']
        assert meta['opset'] == to_onnx.OPSET
        assert meta['serving_default']['file'] == 'model.onnx'
        if name == 'cg':  # any batch, height and width: a batch of two of another size
            assert [isinstance(d, int) for d in i.shape] == [False, False, False, True]
            assert meta['translate']['input_shape'] == [-1, -1, -1, 3]
            pair = np.stack(photos['cg'][1:])
            got = model.run(None, {'input_images': pair})[0]
            assert _max_diff(got, np.stack(uint8[1:])) <= 1
        else:
            assert i.shape == i_float.shape == [1, *FIXED, 3]
            assert meta['serving_default']['input_shape'] == [1, *FIXED, 3]


def _draws_as_inputs(path):
    """(the ONNX model at ``path`` with each RandomUniformLike, dropout's uniform
    draws, replaced by a graph input of its output's name, as bytes; those names)."""
    import onnx

    model = onnx.load(str(path))
    nodes = [node for node in model.graph.node if node.op_type == 'RandomUniformLike']
    for node in nodes:
        model.graph.node.remove(node)
        model.graph.input.append(onnx.helper.make_tensor_value_info(
            node.output[0], onnx.TensorProto.FLOAT, None))
    return model.SerializeToString(), [node.output[0] for node in nodes]


def test_a_train_mode_export_runs_in_onnxruntime_as_in_tensorflow(ort, tmp_path):
    """export.py --train_mode of pix2pix (unet_128: batch norm with each request's
    statistics, dropout 0.5 in up_5 and up_6, the official test.py's default):
    onnxruntime draws its own dropout masks, a new one each run, as TensorFlow
    does, so their outputs differ by more than a level; with the uniform draws
    TensorFlow made for a request fed to the ONNX graph in place of its
    RandomUniformLike, onnxruntime gives TensorFlow's translation of it (uint8
    within one level, float within 1e-4)."""
    run = _untrained_run(tmp_path / 'p2p', config.Pix2PixConfig(ngf=4, netG='unet_128'))
    assert export.main(['export.py', f'--run={run}', '--format=onnx', '--train_mode',
                        f'--onnx_size={FIXED[0]}x{FIXED[1]}']) == 0
    folder = run / 'export'
    assert json.loads((folder / 'export.json').read_text())['mode'] == 'training'
    image = _photo(FIXED)
    with inference.Translator.from_run(str(run), tile_size=0) as translator:  # training mode
        x = translator.sess.run(translator.from_rgb['A'], {translator.rgb: image})
        draws = {op.name: op.outputs[0] for op in translator.graph.get_operations()
                 if op.type == 'RandomUniform'}
        assert sorted(draws) == [f'G/up_{i}/dropout/random_uniform/RandomUniform'
                                 for i in (5, 6)]
        padded = inference.pad_to(x, translator.multiple, translator.min_size)
        y, drawn = translator.sess.run((translator.outputs['fake_B'], draws),
                                       {translator.inputs['A']: padded[None]})
    expected = {'model.onnx': pipeline.to_uint8(y[0, :FIXED[0], :FIXED[1]]),
                'model_float.onnx': y[0, :FIXED[0], :FIXED[1]]}
    feeds = {'model.onnx': {'input_images': image[None]},
             'model_float.onnx': {'input_float': x[None]}}
    for name, inputs in feeds.items():
        model = _session(ort, folder / name)
        first, second = (model.run(None, inputs)[0][0].astype(np.float32) for _ in range(2))
        assert np.abs(first - second).max() > (1 if name == 'model.onnx' else LEVEL)
        fed, names = _draws_as_inputs(folder / name)
        given = {n: drawn[n.split('/', 1)[1].rsplit(':', 1)[0]] for n in names}  # generator/G/...
        assert len(given) == 2
        got = ort.InferenceSession(fed, providers=['CPUExecutionProvider']).run(
            None, {**inputs, **given})[0][0]
        if name == 'model.onnx':
            assert _max_diff(got, expected[name]) <= 1
        else:
            np.testing.assert_allclose(got, expected[name], atol=1e-4, rtol=0)


def test_cuts_antialiased_generator_runs_in_onnxruntime_as_in_tensorflow(ort, tmp_path):
    """modules.CUTResnetGenerator (blurred down- and upsampling) frozen as
    export.py freezes a run's generator, written by exporting.write_onnx,
    against the same frozen graph in TensorFlow, with its original ops."""
    with tf.Graph().as_default() as graph:
        network = modules.CUTResnetGenerator('G', ngf=4, n_blocks=2)
        x = tf1.placeholder(tf.float32, [None, None, None, 3])
        y = network(x, training=False)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            frozen = tf1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [y.op.name])
    assert 'DepthwiseConv2dNativeBackpropInput' in {node.op for node in frozen.node}
    generator = exporting.Generator(frozen, x.name, y.name, 3, 3, 'G',
                                    registry.of(config.CycleGANConfig()).data,
                                    network.multiple, network.min_size)
    exporting.write_onnx(str(tmp_path), generator, None)
    image = _photo((37, 50))
    inputs = {'serving_default': image[None],
              'translate': (image[None] / 127.5 - 1.0).astype(np.float32)}
    for signature, file_name in exporting.ONNX_FILES.items():
        graph_def, _ = exporting.frozen_graph_def(generator, signature)
        names = [name + ':0' for name in exporting.TENSORS[signature]]
        expected = _run_graph(graph_def, names[0], names[1], inputs[signature])
        got = _session(ort, tmp_path / file_name).run(None, {names[0][:-2]: inputs[signature]})[0]
        if signature == 'translate':
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        else:
            assert _max_diff(got, expected) <= 1


def _run_graph(graph_def, inputs, output, value):
    with tf.Graph().as_default() as graph:
        tf1.import_graph_def(graph_def, name='')
        with tf1.Session(graph=graph) as sess:
            return sess.run(output, {inputs: value})


def test_blur_upsample_is_rewritten_for_tf2onnx(ort):
    """tf2onnx has no converter of DepthwiseConv2dNativeBackpropInput (CUT's
    ops.blur_upsample): convert says so in one line; rewritten, TensorFlow
    and onnxruntime give its values."""
    with tf.Graph().as_default() as graph:
        x = tf1.placeholder(tf.float32, [None, None, None, 3], name='input_float')
        tf.identity(ops.blur_upsample(x), name='output_float')
    graph_def = graph.as_graph_def()
    with pytest.raises(RuntimeError, match=r'cannot convert the TensorFlow op '
                                           r'DepthwiseConv2dNativeBackpropInput$'):
        to_onnx.convert(graph_def, exporting.TENSORS['translate'])
    rewritten = to_onnx.rewrite_unsupported(graph_def)
    assert 'DepthwiseConv2dNativeBackpropInput' not in {n.op for n in rewritten.node}
    assert to_onnx.rewrite_unsupported(rewritten) is rewritten
    session = ort.InferenceSession(to_onnx.convert(rewritten, exporting.TENSORS['translate']),
                                   providers=['CPUExecutionProvider'])
    for shape in ((1, 1, 1, 3), (2, 5, 7, 3), (1, 8, 4, 3)):
        value = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        expected = _run_graph(graph_def, 'input_float:0', 'output_float:0', value)
        assert expected.shape == (shape[0], 2 * shape[1], 2 * shape[2], 3)
        np.testing.assert_allclose(_run_graph(rewritten, 'input_float:0', 'output_float:0',
                                              value), expected, atol=1e-6, rtol=0)
        np.testing.assert_allclose(session.run(None, {'input_float': value})[0], expected,
                                   atol=1e-6, rtol=0)


def test_the_readme_example_needs_neither_tensorflow_nor_this_project(exported, ort, tmp_path):
    """The README's onnxruntime example, run where tensorflow and cyclegan_tf
    cannot be imported, writes the translation onnxruntime gives here."""
    (block,) = [b for b in re.findall(r'```python\n(.*?)```', (ROOT / 'README.md').read_text(),
                                      re.S) if 'onnxruntime' in b]
    path = re.search(r"InferenceSession\('([^']+)'\)", block).group(1)
    model = exported['cg'][1] / 'model.onnx'
    (tmp_path / 'example.py').write_text(block.replace(path, str(model)))
    Image.fromarray(_photo()).save(tmp_path / 'photo.jpg', quality=95)
    blocked = "import sys; sys.modules.update(tensorflow=None, cyclegan_tf=None); " \
              "exec(open('example.py').read())"
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    done = subprocess.run([sys.executable, '-c', blocked], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(tmp_path / 'photo.jpg') as image:
        photo = np.asarray(image.convert('RGB'))
    expected = _session(ort, model).run(None, {'input_images': photo[None]})[0][0]
    written = tmp_path / re.search(r"\.save\('([^']+)'\)", block).group(1)
    assert np.array_equal(np.asarray(Image.open(written)), expected)


def test_without_tf2onnx_or_with_a_bad_size_export_is_one_line(tmp_path, capsys, monkeypatch):
    run = _untrained_run(tmp_path / 'cg', config.CycleGANConfig(ngf=4, netG='resnet_6blocks'))
    monkeypatch.setitem(sys.modules, 'tf2onnx', None)  # as if not installed
    monkeypatch.setitem(sys.modules, 'onnx', None)
    line = _error_line(capsys, [f'--run={run}', '--format=saved_model,onnx'])
    assert line == ('export.py: error: --format onnx needs tf2onnx and onnx, not installed: '
                    f'{to_onnx.INSTALL}')
    assert 'pip install -r requirements-onnx.txt' in line
    monkeypatch.undo()
    for size in ('0x4', '4x', 'big'):
        line = _error_line(capsys, [f'--run={run}', f'--onnx_size={size}'])
        assert line == f"export.py: error: --onnx_size is HxW or N (pixels), got '{size}'"
    assert sorted(os.listdir(run)) == ['checkpoints', 'config.json']
