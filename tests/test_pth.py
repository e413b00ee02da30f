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
import random
import resource
import struct
import subprocess
import sys
import time
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


def state_dict_pth(state, legacy=False):
    """Bytes of a .pth holding ``state`` ({key: numpy array}), one storage per tensor."""
    tensors = collections.OrderedDict()
    for i, (key, value) in enumerate(state.items()):
        value = np.ascontiguousarray(value)
        strides = [s // max(value.itemsize, 1) for s in value.strides]
        tensors[key] = Tensor(Storage(str(i), value.reshape(-1)), 0, value.shape, strides)
    return legacy_pth(tensors) if legacy else zip_pth(tensors)


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
        ('unit_dims', Tensor(f32, 3, (1, 2, 1), (0, 1, 7))),  # any stride where the size is 1
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
    with pytest.raises(PthError, match='stride 0'):  # stride 0 cannot make it allocate 4 TB
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
# Hostile files: bounded time and memory, and one PthError whatever is wrong.

def dag(kind, levels):
    """A value of ``levels`` levels, each holding two references to the one
    below: a few bytes pickled (the memo shares them), 2 ** levels leaves walked."""
    value = {'list': [], 'tuple': (), 'dict': collections.OrderedDict()}[kind]
    for _ in range(levels):
        if kind == 'dict':
            value = collections.OrderedDict(a=value, b=value)
        else:
            value = type(value)([value, value])
    return value


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def refused(tmp_path, data, match):
    """pth.load of ``data`` raises one PthError line naming the file and matching ``match``."""
    path = write(tmp_path, data)
    with pytest.raises(PthError, match=match) as error:
        pth.load(path)
    assert str(error.value).startswith(f'{path}: ') and '\n' not in str(error.value)
    return str(error.value)


@pytest.mark.parametrize('kind', ['list', 'tuple', 'dict'])
def test_shared_references_are_counted_each_time_they_are_walked(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(pth, 'MAX_NODES', 1000)
    refused(tmp_path, zip_pth({}, data_pkl=pickle.dumps({'x': dag(kind, 10)}, 2)),
            'more than 1000 values')
    small = pth.load(write(tmp_path, zip_pth({}, data_pkl=pickle.dumps({'x': dag(kind, 8)}, 2))))
    assert small['x'] == dag(kind, 8)


def test_nesting_depth_and_cycles(tmp_path):
    refused(tmp_path, zip_pth({}, data_pkl=pickle.dumps({'x': nested(pth.MAX_DEPTH)}, 2)),
            f'nested more than {pth.MAX_DEPTH} deep')
    loop = []
    loop.append(loop)
    refused(tmp_path, zip_pth({}, data_pkl=pickle.dumps({'x': loop}, 2)), 'nested more than')
    deep = nested(pth.MAX_DEPTH - 2)
    assert pth.load(write(tmp_path, zip_pth({}, data_pkl=pickle.dumps({'x': deep}, 2))))['x'] \
        == deep


def test_pickle_operations_and_size_are_capped(tmp_path, monkeypatch):
    state, _ = example()
    monkeypatch.setattr(pth, 'MAX_PICKLE_OPS', 100)
    for data in (zip_pth(state), legacy_pth(state)):
        refused(tmp_path, data, 'more than 100 operations')
    monkeypatch.setattr(pth, 'MAX_PICKLE_OPS', 10 ** 6)
    monkeypatch.setattr(pth, 'MAX_PICKLE_BYTES', 2000)
    text = {'notes': 'x' * 3000}
    refused(tmp_path, zip_pth(text), 'data.pkl of 30.. bytes, above 2000')
    refused(tmp_path, legacy_pth(text), 'pickles are larger than 2000 bytes')
    check_example(pth.load(write(tmp_path, legacy_pth(state))), example()[1])


def hand_pickle(*ops):
    """A protocol-2 pickle of raw opcodes (bytes), ending with STOP."""
    return b'\x80\x02' + b''.join(ops) + b'.'


def text(value):
    data = value.encode()
    return b'X' + struct.pack('<I', len(data)) + data


class Call:
    """A call of a global with any arguments, as pickle writes it."""

    def __init__(self, module, name, *args):
        self.function, self.args = Global(module, name), args

    def __reduce__(self):
        return self.function, self.args


def dict_pickle(key, value):
    """A pickle of {key: value}, written without building the dict (nor hashing ``key``)."""
    data = pickle.dumps([key, value], 2)
    assert data[2:3] == b']' and data[-2:] == b'e.'
    return data[:2] + b'}' + data[3:-2] + b'u.'


def test_duplicate_keys_and_keys_that_are_not_plain(tmp_path):
    twice = hand_pickle(b'}(', text('w'), b'K\x01', text('w'), b'K\x02u')
    refused(tmp_path, zip_pth({}, data_pkl=twice), "the key 'w' twice")
    pairs = dumps({'x': Call('collections', 'OrderedDict', [['w', 1], ['w', 2]])})
    refused(tmp_path, zip_pth({}, data_pkl=pairs), "the key 'w' twice")  # Python 2's form
    refused(tmp_path, zip_pth({}, data_pkl=dict_pickle(dag('tuple', 40), 1)),
            'a dict key of type tuple')  # hashing it would take 2 ** 40 steps
    refused(tmp_path, zip_pth({}, data_pkl=dumps({Global('torch', 'FloatStorage'): 1})),
            'a dict key of type StorageType')
    loaded = pth.load(write(tmp_path, zip_pth({}, data_pkl=pickle.dumps(
        {'epoch': 3, 7: 'seven', None: 1.5, b'raw': True}, 4))))  # 4: bytes and frames
    assert loaded == {'epoch': 3, 7: 'seven', None: 1.5, b'raw': True}


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_zero_strides_and_overlaps_cannot_multiply_the_storages(tmp_path, fmt):
    save = zip_pth if fmt == 'zip' else legacy_pth
    f32 = Storage('0', np.arange(2048, dtype=np.float32))
    refused(tmp_path, save({'w': Tensor(f32, 0, (3, 2), (0, 1))}),
            r'stride 0 in a dimension of size 3')
    refused(tmp_path, save({'w': Tensor(f32, 0, (1024, 1024), (1, 1))}),
            r'would materialize 4194304 bytes from storages of 8192')
    whole = Storage('1', np.zeros(2 ** 18, np.float32))  # 1 MiB, viewed whole 6 times
    refused(tmp_path, save({f'w{i}': Tensor(whole, 0, (2 ** 18,), (1,)) for i in range(6)}),
            'would materialize 6291456 bytes')
    tied = Tensor(whole, 0, (2 ** 18,), (1,))
    loaded = pth.load(write(tmp_path, save({'a': tied, 'b': Tensor(whole, 0, (2 ** 18,), (1,)),
                                            'c': tied})))
    assert loaded['a'] is loaded['c'] and loaded['a'] is not loaded['b']  # as torch shares
    loaded['b'][0] = 1  # two tensors of one storage: two arrays
    assert loaded['a'][0] == 0 and loaded['b'][0] == 1


def test_a_stored_entry_is_checked_against_its_crc(tmp_path):
    state, _ = example()
    data = bytearray(zip_pth(state))
    values = state['transposed'].args[0].values.tobytes()  # storage 0: float64 -3.0 ...
    at = bytes(data).index(values)
    data[at + 3] ^= 0x10
    refused(tmp_path, bytes(data), r'archive/data/0 is truncated or corrupt \(its CRC differs\)')


@pytest.mark.parametrize('size, stride, offset, reason', [
    ((0, 2 ** 62, 2 ** 62), (1, 1, 1), 0, 'too large'),
    ((0, 2 ** 70), (1, 1), 0, 'bad size'),
    ((1,) * 100, (1,) * 100, 0, '100 dimensions'),
    ((1,), (1,), 2 ** 70, 'bad storage offset'),
    ((2,), (2 ** 62,), 0, 'reaches element'),
    ((-1,), (1,), 0, 'bad size -1'),
    ((2.0,), (1,), 0, 'bad size 2.0'),
    ((True,), (1,), 0, 'bad size True'),
    ([2], [1], 0, 'bad size'),
    ((2, 3), (1,), 0, 'bad size'),
])
def test_bad_tensor_geometry(tmp_path, size, stride, offset, reason):
    f32 = Storage('0', np.arange(6, dtype=np.float32))
    tensor = Tensor(f32, offset, (), ())
    tensor.args = (f32, offset, size, stride)
    for data in (zip_pth({'w': tensor}), legacy_pth({'w': tensor})):
        refused(tmp_path, data, reason)


def test_any_stride_where_the_size_is_one(tmp_path):
    f32 = Storage('0', np.arange(6, dtype=np.float32))
    loaded = pth.load(write(tmp_path, zip_pth({'w': Tensor(f32, 2, (1, 3), (2 ** 62, 1))})))
    assert np.array_equal(loaded['w'], [[2, 3, 4]])


def test_calls_with_wrong_arguments(tmp_path):
    f32 = Storage('0', np.arange(6, dtype=np.float32))
    rebuild = ('torch._utils', '_rebuild_tensor_v2')
    for value, reason in [
            (Call(*rebuild, f32, 0), 'rebuilt from 2 arguments'),
            (Call(*rebuild, 7, 0, (6,), (1,)), 'rebuilt from int, not a storage'),
            (Call(*rebuild, f32, 'zero', (6,), (1,)), "bad storage offset 'zero'"),
            (Call('torch._utils', '_rebuild_parameter', 'weights'), 'from str, not a tensor'),
            (Call('torch._utils', '_rebuild_parameter'), 'from 0 arguments'),
            (Call('collections', 'OrderedDict', [], []), 'OrderedDict called with 2 arguments'),
            (Call('collections', 'OrderedDict', [(1, 2, 3)]), 'not a list of pairs')]:
        refused(tmp_path, zip_pth({'w': value, 'ok': Tensor(f32, 0, (6,), (1,))}), reason)
    calls_a_list = hand_pickle(b'}(', text('w'), b']', b')Ru')
    refused(tmp_path, zip_pth({}, data_pkl=calls_a_list), 'calls a list')
    refused(tmp_path, zip_pth({}, data_pkl=hand_pickle(b']', b'}b')), 'sets the state of a list')
    refused(tmp_path, zip_pth({}, data_pkl=hand_pickle(b'N', text('k'), b'K\x01s')),
            'sets an item of a NoneType')
    refused(tmp_path, zip_pth({}, data_pkl=hand_pickle(b'c__builtin__\nset\n)R')), 'refused')
    refused(tmp_path, zip_pth({}, data_pkl=b'\x80\x02\x8f.'), 'opcode EMPTY_SET')  # protocol 4


def test_storage_sizes_are_checked_before_reading(tmp_path):
    f32 = Storage('0', np.arange(6, dtype=np.float32))
    huge = Tensor(f32, 0, (6,), (1,))
    data = legacy_pth({'w': huge})
    pid = b'K\x06Nt'  # the storage's element count, its view (None), TUPLE
    assert data.count(pid) == 1
    refused(tmp_path, data.replace(pid, b'\x8a\x06\x00\x00\x00\x00\x00\x01Nt'),
            r'declares 4398046511104 bytes of storage, the file has \d+')
    legacy_with_short_data = legacy_pth({'w': huge}, roots={'0': Storage('0', f32.values[:5])})
    refused(tmp_path, legacy_with_short_data, 'holds 5 elements, its tensors say 6')


def test_names_from_the_file_stay_on_one_line(tmp_path):
    f32 = Storage('line\nbreak' + 'x' * 300, np.arange(6, dtype=np.float32))
    data = zip_pth({'w': Tensor(f32, 0, (6,), (1,))})
    check = pth.load(write(tmp_path, data))['w']  # a key is any string
    assert np.array_equal(check, np.arange(6))
    missing = zip_pth({}, data_pkl=dumps({'w': Tensor(f32, 0, (6,), (1,))}))
    message = refused(tmp_path, missing, r"the archive has no 'archive/data/line\\nbreakxx")
    assert len(message) < len(str(tmp_path)) + 200
    with pytest.raises(PthError, match='asks for .*refused') as error:
        pth.load(io.BytesIO(zip_pth({}, data_pkl=hand_pickle(
            text('os\nsystem'), text('x' * 10 ** 5), b'\x93'))))  # STACK_GLOBAL
    assert '\n' not in str(error.value) and len(str(error.value)) < 300


def deflated(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_zip_entries_that_inflate_far_beyond_the_file(tmp_path):
    state, expected = example()
    normal = zipfile.ZipFile(io.BytesIO(zip_pth(state)))
    check_example(pth.load(write(tmp_path, deflated(
        {n: normal.read(n) for n in normal.namelist()}))), expected)  # deflate is read
    zeros = Storage('0', np.zeros(2 ** 21, np.float32))  # 8 MiB, deflated to 8 KB
    members = {n: normal.read(n) for n in normal.namelist() if '/data/' not in n}
    members['archive/data.pkl'] = dumps({'w': Tensor(zeros, 0, (2 ** 21,), (1,))})
    members['archive/data/0'] = zeros.values.tobytes()
    data = deflated(members)
    assert len(data) < 20000
    refused(tmp_path, data, f'data/0 would inflate to 8388608 bytes, beyond 16 times the '
            f'file.s {len(data)}')


def load_each_limited(paths, memory=1 << 30, timeout=120):
    """[(outcome, message, seconds)] of pth.load of each path, in a child
    Python whose address space is limited to ``memory`` bytes (an allocation
    beyond it fails there, as a MemoryError, not in the test process), and its
    peak RSS in MiB. outcome: 'ok', 'PthError' or the exception's type."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([here, os.path.dirname(here)]))
    child = subprocess.run(
        [sys.executable, '-c', 'import sys, test_pth; test_pth.report_loads(sys.argv[1:])',
         *map(str, paths)], env=env, preexec_fn=limit, capture_output=True, text=True,
        timeout=timeout)
    assert child.returncode == 0, child.stderr[-2000:]
    *results, peak = [json.loads(line) for line in child.stdout.splitlines()]
    return results, peak


def report_loads(paths):
    """The child of load_each_limited: one JSON line per path, then the peak RSS."""
    for path in paths:
        start = time.perf_counter()
        try:
            pth.load(path)
            outcome, message = 'ok', ''
        except PthError as e:
            outcome, message = 'PthError', str(e)
        except BaseException as e:  # what the test reports
            outcome, message = type(e).__name__, str(e)[:300]
        print(json.dumps([outcome, message, time.perf_counter() - start]), flush=True)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def test_bombs_are_refused_in_bounded_time_and_memory(tmp_path):
    """The files that probing found (a few KB each), at full size: each
    refused in well under a second, the child never near 1 GiB."""
    one = Storage('0', np.zeros(1, np.complex128), 'ComplexDoubleStorage')
    expand = {f'w{i}': Tensor(one, 0, (2 ** 24,), (0,)) for i in range(48)}  # 12 GiB
    wide = Storage('0', np.zeros(2 ** 15, np.float64))
    bad_size = Tensor(wide, 0, (), ())
    bad_size.args = (wide, 0, dag('list', 40), (1,))
    cases = {
        'dag_list': (zip_pth({}, data_pkl=pickle.dumps({'x': dag('list', 40)}, 2)), 'deep'),
        'dag_tuple': (zip_pth({}, data_pkl=pickle.dumps({'x': dag('tuple', 28)}, 2)), 'values'),
        'dag_dict': (zip_pth({}, data_pkl=pickle.dumps({'x': dag('dict', 28)}, 2)), 'values'),
        'dag_key': (zip_pth({}, data_pkl=dict_pickle(dag('tuple', 40), 1)), 'key'),
        'dag_size': (zip_pth({'w': bad_size}), 'bad size'),
        'expand_zip': (zip_pth(expand), 'stride 0'),
        'expand_legacy': (legacy_pth(expand), 'stride 0'),
        'overlap': (zip_pth({'w': Tensor(wide, 0, (2 ** 14, 2 ** 14), (1, 1))}), 'materialize'),
        'memo_put': (zip_pth({}, data_pkl=hand_pickle(b'}r\xff\xff\xff\x7f')), None),
        'long_line': (legacy_pth({}, body=b'\x80\x02c' + b'x' * (2 ** 25)), 'larger than'),
    }
    paths = [write(tmp_path, data, f'{name}.pth') for name, (data, _) in cases.items()]
    results, peak = load_each_limited(paths)
    for (name, (_, reason)), (outcome, message, seconds) in zip(cases.items(), results):
        assert outcome == ('ok' if reason is None else 'PthError'), (name, message)
        assert reason is None or reason in message, (name, message)
        assert seconds < 1, (name, seconds)
    assert peak < 400  # MiB: Python, numpy and pytest (the 'long_line' file is 32 MiB)


def mutants(data, rng, count):
    """``count`` corruptions of ``data``: truncated, bits flipped, bytes
    overwritten, inserted or deleted, a slice repeated."""
    for _ in range(count):
        cut, other = sorted(rng.randrange(len(data) + 1) for _ in range(2))
        kind = rng.randrange(5)
        if kind == 0:
            yield data[:cut]
        elif kind == 1:
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            yield bytes(flipped)
        elif kind == 2:
            yield data[:cut] + bytes([rng.randrange(256)]) + data[cut + 1:]
        elif kind == 3:
            yield data[:cut] + bytes(rng.randrange(256) for _ in range(4)) + data[other:]
        else:
            yield data[:other] + data[cut:other] + data[other:]


def test_fuzzed_fixtures_load_or_raise_one_pth_error(fixtures_dir, tmp_path):
    """Both formats of a real torch.save, corrupted at random (fixed seed): the
    whole file, and the zip format's pickle alone (re-zipped, so the zip's CRCs
    hold and the unpickler sees it)."""
    rng = random.Random(1950)
    folder = fixtures_dir / 'torch_reference'
    new, old = (folder / 'pixel_ndf8.pth').read_bytes(), (folder / 'pixel_ndf8.legacy.pth')
    archive = zipfile.ZipFile(io.BytesIO(new))
    members = {n: archive.read(n) for n in archive.namelist()}
    pickle_name = next(n for n in members if n.endswith('/data.pkl'))
    files = list(mutants(new, rng, 150)) + list(mutants(old.read_bytes(), rng, 150))
    for data_pkl in mutants(members[pickle_name], rng, 200):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, 'w') as zf:
            for name, data in members.items():
                zf.writestr(name, data_pkl if name == pickle_name else data)
        files.append(buffer.getvalue())
    paths = [write(tmp_path, data, f'{i}.pth') for i, data in enumerate(files)]
    results, _ = load_each_limited(paths)
    outcomes = collections.Counter(outcome for outcome, _, _ in results)
    raw = [(path.name, r) for path, r in zip(paths, results) if r[0] not in ('ok', 'PthError')]
    assert not raw, raw[:5]
    assert outcomes['PthError'] > 300 and outcomes['ok'] > 10, outcomes
    for path, (outcome, message, seconds) in zip(paths, results):
        assert outcome == 'ok' or message.startswith(f'{path}: ') and '\n' not in message
        assert seconds < 1, (path.name, seconds)


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
