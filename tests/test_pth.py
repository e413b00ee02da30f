"""pth.py: PyTorch .pth files read without torch, and refused when they ask to run code.

Small files are written here by hand in both formats (the same pickles and
storage layout as torch.save), so views, strides and dtypes are tested
without the fixtures; the official networks of ../shared/fixtures check the
reader against real torch.save output.
"""

import collections
import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from cyclegan_tf.interop import pth
from cyclegan_tf.interop.pth import PthError

CASES = ('resnet_9blocks_ngf8', 'resnet_6blocks_ngf8', 'unet_256_ngf8_batch',
         'unet_128_ngf8_batch', 'patchgan_basic_ndf8', 'patchgan_cond_ndf8_batch', 'pixel_ndf8')
RUNNING_STATS = ('running_mean', 'running_var', 'num_batches_tracked')


# ---------------------------------------------------------------------------
# A writer of both formats, without torch.

class Global:
    """A global pickled by module and name, whatever this process has imported."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self):  # pickle's save_reduce asks for a callable; never called
        raise AssertionError('a stand-in')


class Storage:
    """A storage: ``values`` (1-D array; its dtype picks the storage type)."""

    TYPES = {'float32': 'FloatStorage', 'float64': 'DoubleStorage', 'float16': 'HalfStorage',
             'int64': 'LongStorage', 'uint8': 'ByteStorage', 'int32': 'IntStorage'}

    def __init__(self, key, values, type_name=None):
        self.key, self.values = key, values
        self.type_name = type_name or self.TYPES[str(values.dtype)]
        self.view = None  # legacy only: (view_key, element offset, element count)


class ModuleSource:
    """Stands for a class of a whole pickled model (legacy persistent id 'module')."""


class Tensor:
    def __init__(self, storage, offset, size, stride, rebuild='_rebuild_tensor_v2'):
        self.args = (storage, offset, tuple(size), tuple(stride))
        self.rebuild = rebuild

    def __reduce__(self):
        extra = (False, collections.OrderedDict()) if self.rebuild == '_rebuild_tensor_v2' else ()
        return Global('torch._utils', self.rebuild), self.args + extra


class Pickler(pickle._Pickler):
    """The pure-Python pickler, taught to write Global and torch's persistent ids."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def save_stub_global(self, obj):
        self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())
        self.memoize(obj)

    dispatch[Global] = save_stub_global

    def persistent_id(self, obj):
        if isinstance(obj, ModuleSource):  # torch.save(model) records each class's source
            return ('module', Global('models.networks', 'ResnetGenerator'), 'networks.py',
                    'class ResnetGenerator(nn.Module): ...')
        if not isinstance(obj, Storage):
            return None
        pid = ('storage', Global('torch', obj.type_name), obj.key, 'cpu', len(obj.values))
        return pid + (obj.view,) if self.legacy else pid


def dumps(obj, legacy=False):
    buffer = io.BytesIO()
    Pickler(buffer, legacy).dump(obj)
    return buffer.getvalue()


def storages_of(obj):
    found = {}

    def walk(value):
        if isinstance(value, Tensor):
            found[value.args[0].key] = value.args[0]
        elif isinstance(value, (dict, list)):
            for v in value.values() if isinstance(value, dict) else value:
                walk(v)
    walk(obj)
    return found


def zip_pth(obj, prefix='archive', byteorder='little', data_pkl=None):
    """Bytes of ``obj`` in torch's zip format (``data_pkl`` replaces its pickle)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as zf:
        zf.writestr(f'{prefix}/data.pkl', dumps(obj) if data_pkl is None else data_pkl)
        zf.writestr(f'{prefix}/byteorder', byteorder)
        for key, storage in storages_of(obj).items():
            order = '<' if byteorder == 'little' else '>'
            zf.writestr(f'{prefix}/data/{key}',
                        storage.values.astype(storage.values.dtype.newbyteorder(order)).tobytes())
        zf.writestr(f'{prefix}/version', '3\n')
    return buffer.getvalue()


def legacy_pth(obj, roots=None, body=None):
    """Bytes of ``obj`` in the legacy format. ``roots``: the storages whose
    data follows (default: those of the tensors); ``body`` replaces the object's pickle."""
    roots = storages_of(obj) if roots is None else roots
    info = {'protocol_version': 1001, 'little_endian': True,
            'type_sizes': {'short': 2, 'int': 4, 'long': 4}}
    parts = [pickle.dumps(pth.LEGACY_MAGIC, 2), pickle.dumps(1001, 2), pickle.dumps(info, 2),
             dumps(obj, legacy=True) if body is None else body,
             pickle.dumps(sorted(roots), 2)]
    for key in sorted(roots):
        values = roots[key].values
        parts.append(struct.pack('<q', len(values)) + values.astype(values.dtype.newbyteorder('<'))
                     .tobytes())
    return b''.join(parts)


def strided(values, offset, size, stride):
    """The tensor torch rebuilds, element by element (no numpy striding)."""
    out = np.zeros(size, values.dtype)
    for index in np.ndindex(*size):
        out[index] = values[offset + sum(i * s for i, s in zip(index, stride))]
    return out


def write(tmp_path, data, name='net.pth'):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------
# Hand-made files: dtypes, views, strides, both formats.

def example():
    """A state dict of views with offsets and strides, in several dtypes; and
    what it must load as."""
    f64 = Storage('0', np.arange(24, dtype=np.float64) * 0.5 - 3.0)
    f16 = Storage('1', (np.arange(10, dtype=np.float16) - 4.5) / 4)
    f32 = Storage('2', np.linspace(-1, 1, 30, dtype=np.float32))
    i64 = Storage('3', np.array([7, 123456789012], np.int64))
    state = collections.OrderedDict([
        ('transposed', Tensor(f64, 2, (3, 4), (1, 3))),     # a column-major view with offset
        ('half', Tensor(f16, 1, (2, 3), (4, 1))),           # rows of a wider storage
        ('conv.weight', Tensor(f32, 0, (2, 3, 1, 5), (15, 5, 5, 1))),
        ('conv.bias', Tensor(f32, 28, (2,), (1,))),         # the same storage, further on
        ('broadcast', Tensor(f32, 3, (2, 2), (0, 1))),      # stride 0 (torch expand)
        ('bn.num_batches_tracked', Tensor(i64, 1, (), ())),  # a 0-d int64 tensor
        ('empty', Tensor(f32, 0, (0, 3), (3, 1))),
        ('old_rebuild', Tensor(f16, 0, (5,), (2,), rebuild='_rebuild_tensor')),
    ])
    expected = {key: strided(t.args[0].values, *t.args[1:]) for key, t in state.items()}
    return state, expected


def check_example(loaded, expected):
    assert isinstance(loaded, collections.OrderedDict)
    assert list(loaded) == list(expected)
    for key, want in expected.items():
        got = loaded[key]
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype, key
        assert got.shape == want.shape and np.array_equal(got, want), key
        assert got.flags.c_contiguous and got.flags.writeable, key


def test_zip_format_views_strides_and_dtypes(tmp_path):
    state, expected = example()
    loaded = pth.load(write(tmp_path, zip_pth(state, prefix='any_name_at_all')))
    check_example(loaded, expected)
    assert loaded['half'].dtype == np.float16 and loaded['transposed'].dtype == np.float64
    assert loaded['bn.num_batches_tracked'].shape == () and \
        loaded['bn.num_batches_tracked'] == 123456789012


def test_zip_format_big_endian_and_file_objects(tmp_path):
    state, expected = example()
    data = zip_pth(state, byteorder='big')
    check_example(pth.load(io.BytesIO(data)), expected)
    with open(write(tmp_path, data), 'rb') as f:
        check_example(pth.load(f), expected)


def test_legacy_format_views_strides_and_dtypes(tmp_path):
    state, expected = example()
    check_example(pth.load(write(tmp_path, legacy_pth(state))), expected)


def test_legacy_storage_views(tmp_path):
    """Old files pickled storage views: (view key, element offset, size) of a root."""
    root = Storage('root', np.arange(20, dtype=np.float32))
    view = Storage('root', root.values)
    view.view = ('view', 4, 8)  # elements 4 ... 11 of root
    state = {'a': Tensor(view, 1, (2, 3), (1, 2)), 'whole': Tensor(root, 0, (20,), (1,))}
    loaded = pth.load(write(tmp_path, legacy_pth(state, roots={'root': root})))
    assert np.array_equal(loaded['a'], strided(root.values[4:12], 1, (2, 3), (1, 2)))
    assert np.array_equal(loaded['whole'], root.values)


def test_bfloat16_becomes_float32(tmp_path):
    values = np.array([1.5, -2.0, 0.0078125, 3.0e38], np.float32)
    storage = Storage('0', (values.view(np.uint32) >> 16).astype(np.uint16), 'BFloat16Storage')
    loaded = pth.load(write(tmp_path, zip_pth({'w': Tensor(storage, 0, (4,), (1,))})))
    assert loaded['w'].dtype == np.float32
    assert np.array_equal(loaded['w'], (values.view(np.uint32) & 0xFFFF0000).view(np.float32))


def test_nested_dicts_and_plain_values_come_back(tmp_path):
    f32 = Storage('0', np.arange(6, dtype=np.float32))
    checkpoint = {'state_dict': {'w': Tensor(f32, 0, (2, 3), (3, 1))}, 'epoch': 3,
                  'name': 'G_A', 'lrs': [0.1, 0.2]}
    loaded = pth.load(write(tmp_path, zip_pth(checkpoint)))
    assert isinstance(loaded['state_dict'], collections.OrderedDict)
    assert np.array_equal(loaded['state_dict']['w'], np.arange(6).reshape(2, 3))
    assert (loaded['epoch'], loaded['name'], loaded['lrs']) == (3, 'G_A', [0.1, 0.2])


# ---------------------------------------------------------------------------
# Files that must be refused.

class RunsCommand:
    """What an attacker pickles: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class WritesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f'open({str(self.marker)!r}, "w").write("ran")',)


@pytest.mark.parametrize('payload', [RunsCommand, WritesFile])
@pytest.mark.parametrize('wrapping', ['zip', 'legacy', 'legacy_header'])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, payload, wrapping):
    marker = tmp_path / 'marker'
    evil = pickle.dumps({'model.1.weight': payload(marker)}, 2)
    if wrapping == 'zip':
        data = zip_pth({}, data_pkl=evil)
    elif wrapping == 'legacy':
        data = legacy_pth({}, body=evil)
    else:  # in place of the magic number
        data = evil + legacy_pth({})
    with pytest.raises(PthError, match='system|exec') as error:
        pth.load(write(tmp_path, data))
    assert 'refused' in str(error.value) and '\n' not in str(error.value)
    assert not marker.exists()
    pickle.loads(evil)  # what an ordinary unpickler does with the same bytes
    assert marker.exists()


@pytest.mark.parametrize('module, name', [('torch.storage', '_load_from_bytes'),
                                          ('torch.nn.modules.conv', 'Conv2d'),
                                          ('builtins', 'getattr'), ('collections', 'namedtuple')])
def test_any_other_global_is_refused_by_name(tmp_path, module, name):
    data = zip_pth({}, data_pkl=dumps({'x': Global(module, name)}))
    with pytest.raises(PthError, match=f'{module}.{name}'):
        pth.load(write(tmp_path, data))


class TensorWithState(Tensor):
    def __reduce__(self):  # state: pickle adds a BUILD after the rebuild
        return super().__reduce__() + ({'offset': 10 ** 6},)


def test_state_set_on_a_tensor_is_refused(tmp_path):
    """BUILD could otherwise move a checked tensor's offset out of its storage."""
    f32 = Storage('0', np.arange(4, dtype=np.float32))
    with pytest.raises(PthError, match='sets the state of a Tensor: refused$'):
        pth.load(write(tmp_path, zip_pth({'w': TensorWithState(f32, 0, (4,), (1,))})))


def test_tensor_beyond_its_storage_is_refused(tmp_path):
    f32 = Storage('0', np.arange(6, dtype=np.float32))
    for data in (zip_pth({'w': Tensor(f32, 1, (2, 3), (3, 1))}),
                 legacy_pth({'w': Tensor(f32, 0, (7,), (1,))})):
        with pytest.raises(PthError, match='reaches element'):
            pth.load(write(tmp_path, data))
    with pytest.raises(PthError, match='far larger'):  # stride 0 cannot make it allocate 4 TB
        pth.load(write(tmp_path, zip_pth({'w': Tensor(f32, 0, (2 ** 40,), (0,))})))


def test_not_a_dict_of_tensors(tmp_path):
    f32 = Storage('0', np.arange(6, dtype=np.float32))
    with pytest.raises(PthError, match='not a dict of tensors'):
        pth.load(write(tmp_path, zip_pth([Tensor(f32, 0, (6,), (1,))])))
    # torch.save(model) pickles the model's classes: refused by name, never imported
    with pytest.raises(PthError, match='models.networks.ResnetGenerator.*refused'):
        pth.load(write(tmp_path, legacy_pth({}, body=dumps({'net': ModuleSource()}, True))))


@pytest.mark.parametrize('data, reason', [
    (b'', 'not a .pth'),
    (b'\x89PNG\r\n\x1a\n' + bytes(100), 'not a .pth'),
    (b'plain text, nothing else\n', 'not a .pth'),
    (pickle.dumps({'a': 1}, 2), 'not a .pth'),  # a pickle, but no magic number
    (pickle.dumps(pth.LEGACY_MAGIC, 2) + pickle.dumps(999, 2), 'protocol'),
])
def test_not_a_pth_file(tmp_path, data, reason):
    path = write(tmp_path, data, 'photo.pth')
    with pytest.raises(PthError, match=reason) as error:
        pth.load(path)
    assert str(error.value).startswith(str(path)) and '\n' not in str(error.value)


def test_zip_without_data_pkl(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as zf:
        zf.writestr('images/a.txt', 'hello')
    with pytest.raises(PthError, match='data.pkl'):
        pth.load(write(tmp_path, buffer.getvalue()))


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_truncated_files(tmp_path, fmt):
    state, _ = example()
    data = zip_pth(state) if fmt == 'zip' else legacy_pth(state)
    for cut in (len(data) - 1, len(data) - 40, len(data) // 2, 30, 3):
        with pytest.raises(PthError):
            pth.load(write(tmp_path, data[:cut]))


# ---------------------------------------------------------------------------
# The official networks (../shared/fixtures/torch_reference), saved by torch.

def test_fixtures_both_formats_hold_equal_tensors(fixtures_dir):
    folder = fixtures_dir / 'torch_reference'
    index = json.loads((folder / 'index.json').read_text())
    for case in CASES:
        new, old = pth.load(folder / f'{case}.pth'), pth.load(folder / f'{case}.legacy.pth')
        assert list(new) == list(old), case
        for key in new:
            assert new[key].dtype == old[key].dtype and np.array_equal(new[key], old[key]), key
        assert len(new) == index[case]['state_dict_keys'], case
        params = sum(v.size for k, v in new.items() if not k.endswith(RUNNING_STATS))
        assert params == index[case]['params'], case


def test_fixture_shapes_as_documented(fixtures_dir):
    folder = fixtures_dir / 'torch_reference'
    resnet = pth.load(folder / 'resnet_6blocks_ngf8.pth')
    assert resnet['model.1.weight'].shape == (8, 3, 7, 7)  # conv: [out, in, kh, kw]
    assert resnet['model.10.conv_block.1.weight'].shape == (32, 32, 3, 3)
    assert resnet['model.16.weight'].shape == (32, 16, 3, 3)  # transposed: [in, out, kh, kw]
    assert resnet['model.1.weight'].dtype == np.float32
    unet = pth.load(folder / 'unet_128_ngf8_batch.legacy.pth')
    assert unet['model.model.0.weight'].shape == (8, 1, 4, 4)
    assert unet['model.model.1.model.2.running_var'].shape == (16,)
    assert unet['model.model.1.model.2.num_batches_tracked'].dtype == np.int64
    old = pth.load(folder / 'resnet_6blocks_ngf8_old_instance_stats.legacy.pth')
    assert 'model.10.conv_block.2.running_mean' in old
    assert set(resnet) < set(old)


def test_fixture_truncated(fixtures_dir, tmp_path):
    for name in ('pixel_ndf8.pth', 'pixel_ndf8.legacy.pth'):
        data = (fixtures_dir / 'torch_reference' / name).read_bytes()
        with pytest.raises(PthError):
            pth.load(write(tmp_path, data[:len(data) - 100]))
