"""Reads PyTorch ``.pth`` files without torch: ``pth.load(path) -> {name: numpy array}``.

Both formats of ``torch.save`` are read:

* the zip format (torch >= 1.6): ``<archive>/data.pkl``, the pickle of the
  object, whose storages live in ``<archive>/data/<key>``, plus
  ``<archive>/byteorder`` ('little' or 'big'; little when absent). The
  archive's top folder may have any name.
* the legacy format (torch < 1.6; the published CycleGAN and pix2pix models):
  five consecutive pickles -- the magic number, the protocol version 1001,
  a dict of system information (byte order), the object, the list of storage
  keys -- then each storage in that order as an int64 element count followed
  by its raw bytes. Storages may be views (an element offset into another).

A tensor is rebuilt as torch does: its storage, an element offset, a size and
a stride; the array returned is a C-contiguous copy. float32, float16 and
float64 storages keep their type; int64 (``num_batches_tracked``), the other
integer types, bool and complex too; bfloat16 becomes float32 (numpy has no
bfloat16; the conversion is exact).

Pickle runs code: an ordinary unpickler calls whatever function the file
names. This one resolves only ``collections.OrderedDict``, torch's
tensor-rebuild functions (``torch._utils._rebuild_tensor_v2``,
``_rebuild_tensor``, ``_rebuild_parameter``) and the storage types
(``torch.FloatStorage`` ...), each to a harmless stand-in of this module;
any other global (``os.system``, ``torch.storage._load_from_bytes``, which
unpickles nested bytes, a model class of a whole pickled ``nn.Module``) is
refused with a :class:`PthError` naming it, before anything is called.

What :func:`load` returns: the pickled object must be a dict (as a
``state_dict()`` is). It comes back as an OrderedDict in the file's order,
its tensors as numpy arrays; nested dicts (a checkpoint such as
``{'state_dict': {...}, 'epoch': 3}``) come back as nested OrderedDicts, with
plain values (numbers, strings, lists) as they were: picking the state dict
out of such a checkpoint is the caller's business. A state dict's
``_metadata`` attribute (module versions) is dropped.
"""

import collections
import dataclasses
import io
import math
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c  # the first pickle of a legacy file
LEGACY_PROTOCOL = 1001  # the second

# Storage type -> numpy dtype; 'bfloat16' is read as uint16 and widened.
STORAGE_DTYPES = {
    'FloatStorage': 'float32', 'DoubleStorage': 'float64', 'HalfStorage': 'float16',
    'BFloat16Storage': 'bfloat16', 'LongStorage': 'int64', 'IntStorage': 'int32',
    'ShortStorage': 'int16', 'CharStorage': 'int8', 'ByteStorage': 'uint8',
    'BoolStorage': 'bool', 'ComplexFloatStorage': 'complex64',
    'ComplexDoubleStorage': 'complex128',
}


class PthError(ValueError):
    """A file that is not a readable .pth of tensors, or one that asks to run
    code; the message is one line."""


class _Sealed:
    """A stand-in that pickle can call but never modify (BUILD is refused)."""

    __slots__ = ()

    def __setstate__(self, state):
        raise PthError(f'the pickle sets the state of a {type(self).__name__.strip("_")}: '
                       f'refused')


class _StorageType(_Sealed):
    """A storage type (torch.FloatStorage ...): only its element type matters."""

    __slots__ = ('name', 'dtype')

    def __init__(self, name):
        object.__setattr__(self, 'name', name)
        kind = STORAGE_DTYPES[name]
        object.__setattr__(self, 'dtype', np.dtype('uint16' if kind == 'bfloat16' else kind))

    def __setattr__(self, name, value):
        raise AttributeError('read-only')

    def __repr__(self):
        return f'torch.{self.name}'


_STORAGE_TYPES = {name: _StorageType(name) for name in STORAGE_DTYPES}


@dataclasses.dataclass(frozen=True, eq=False)
class _Storage(_Sealed):
    """One storage: ``numel`` elements of ``type``, or a view of ``numel``
    elements from element ``start`` of ``root``. ``data`` is filled with the
    file's bytes as a 1-D array once they are read."""

    type: _StorageType
    numel: int
    root: '_Storage' = None
    start: int = 0
    data: list = dataclasses.field(default_factory=list)  # [array] once read

    def array(self):
        if self.root is not None:
            return self.root.array()[self.start:self.start + self.numel]
        if not self.data:
            raise PthError('a storage of the file has no data')
        return self.data[0]


@dataclasses.dataclass(frozen=True, eq=False)
class _Tensor(_Sealed):
    """A tensor as pickled: rebuilt into an array once every storage is read."""

    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


def _check_int(value, what):
    if type(value) is not int or value < 0:
        raise PthError(f'a tensor has a bad {what}: {value!r}')
    return value


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2 and _rebuild_tensor (checks only; the
    array is made in :func:`_materialize`). requires_grad, backward hooks and
    metadata are ignored."""
    if not isinstance(storage, _Storage):
        raise PthError(f'a tensor is rebuilt from {type(storage).__name__}, not a storage')
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride):
        raise PthError(f'a tensor has a bad size {size!r} or stride {stride!r}')
    return _Tensor(storage, _check_int(storage_offset, 'storage offset'),
                   tuple(_check_int(s, 'size') for s in size),
                   tuple(_check_int(s, 'stride') for s in stride))


def _rebuild_parameter(data, *_ignored):
    """torch._utils._rebuild_parameter(_with_state): a Parameter is its tensor."""
    if not isinstance(data, _Tensor):
        raise PthError(f'a parameter is rebuilt from {type(data).__name__}, not a tensor')
    return data


class _Function(_Sealed):
    __slots__ = ('name', 'function')

    def __init__(self, name, function):
        object.__setattr__(self, 'name', name)
        object.__setattr__(self, 'function', function)

    def __setattr__(self, name, value):
        raise AttributeError('read-only')

    def __call__(self, *args):
        return self.function(*args)

    def __repr__(self):
        return self.name


_FUNCTIONS = {
    ('torch._utils', name): _Function(f'torch._utils.{name}', function)
    for name, function in (('_rebuild_tensor_v2', _rebuild_tensor),
                           ('_rebuild_tensor', _rebuild_tensor),
                           ('_rebuild_parameter', _rebuild_parameter),
                           ('_rebuild_parameter_with_state', _rebuild_parameter))}


class _Unpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of a state dict."""

    def __init__(self, file, persistent_load=None):
        super().__init__(file, encoding='utf-8')  # as torch.load, for Python 2 pickles
        self._persistent = persistent_load

    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'):
            return collections.OrderedDict
        if (module, name) in _FUNCTIONS:
            return _FUNCTIONS[module, name]
        if module == 'torch' and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise PthError(f'the pickle asks for {module}.{name}, which a file of tensors never '
                       f'needs: refused (not loaded, nothing run)')

    def persistent_load(self, pid):
        if self._persistent is None:
            raise PthError('unexpected persistent id in a header pickle')
        return self._persistent(pid)


def _unpickle(file, persistent_load=None):
    try:
        return _Unpickler(file, persistent_load).load()
    except PthError:
        raise
    except EOFError:
        raise PthError('the file ends too early (truncated?)') from None
    except Exception as e:  # a corrupt pickle can raise almost anything
        raise PthError(f'corrupt pickle ({type(e).__name__}: {e})') from None


def _storage_args(pid, length):
    if not isinstance(pid, tuple) or len(pid) != length or pid[0] != 'storage':
        raise PthError(f'unexpected persistent id {str(pid)[:80]}')
    storage_type = pid[1]
    if not isinstance(storage_type, _StorageType):
        raise PthError(f'unexpected storage type {storage_type!r}')
    numel = pid[4]
    if type(numel) is not int or numel < 0:
        raise PthError(f'bad storage size {numel!r}')
    return storage_type, str(pid[2]), numel


def _as_array(raw, storage_type, byteorder):
    """1-D native array of the bytes ``raw`` holding elements of ``storage_type``."""
    dtype = storage_type.dtype.newbyteorder('<' if byteorder == 'little' else '>')
    array = np.frombuffer(raw, dtype).astype(storage_type.dtype.newbyteorder('='))
    if storage_type.name == 'BFloat16Storage':  # the upper half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _materialize(value):
    """``value`` with tensors as arrays and dicts as OrderedDicts."""
    if isinstance(value, _Tensor):
        data = value.storage.array()
        if math.prod(value.size) > max(len(data), 2 ** 24):  # only stride 0 repeats elements
            raise PthError(f'a tensor of size {list(value.size)} is far larger than its '
                           f'storage of {len(data)} elements')
        if 0 in value.size:
            return np.zeros(value.size, data.dtype)
        last = value.offset + sum((n - 1) * s for n, s in zip(value.size, value.stride))
        if last >= len(data):
            raise PthError(f'a tensor of size {list(value.size)} reaches element {last} of a '
                           f'storage of {len(data)}')
        view = np.lib.stride_tricks.as_strided(
            data[value.offset:], value.size, [s * data.itemsize for s in value.stride],
            writeable=False)
        return np.array(view, order='C')
    if type(value) in (dict, collections.OrderedDict):
        return collections.OrderedDict((k, _materialize(v)) for k, v in value.items())
    if type(value) in (list, tuple):
        return type(value)(_materialize(v) for v in value)
    if isinstance(value, (_Storage, _Sealed)):
        raise PthError(f'the file holds a bare {type(value).__name__.strip("_")}, not a tensor')
    return value


def _load_zip(f):
    try:
        archive = zipfile.ZipFile(f)
        names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise PthError(f'truncated or corrupt zip archive ({e})') from None
    pickles = [n for n in names if n.count('/') == 1 and n.endswith('/data.pkl')]
    if len(pickles) != 1:
        if any(n.endswith('/constants.pkl') for n in names):
            raise PthError('a TorchScript archive (torch.jit.save), not a state dict: save '
                           'model.state_dict() with torch.save instead')
        raise PthError('a zip archive without <archive>/data.pkl: not a file of torch.save')
    prefix = pickles[0][:-len('data.pkl')]
    byteorder = 'little'
    try:
        if prefix + 'byteorder' in names:
            byteorder = archive.read(prefix + 'byteorder').decode('ascii').strip()
        if byteorder not in ('little', 'big'):
            raise PthError(f'unknown byte order {byteorder[:20]!r}')
        storages = {}

        def persistent_load(pid):
            storage_type, key, numel = _storage_args(pid, 5)
            if key not in storages:
                name = f'{prefix}data/{key}'
                if name not in names:
                    raise PthError(f'the archive has no {name}')
                size = archive.getinfo(name).file_size  # checked before reading anything
                if size != numel * storage_type.dtype.itemsize:
                    raise PthError(f'{name} holds {size} bytes, not the {numel} elements '
                                   f'of a {storage_type!r}')
                raw = archive.read(name)
                storages[key] = _Storage(storage_type, numel,
                                         data=[_as_array(raw, storage_type, byteorder)])
            return storages[key]

        return _unpickle(io.BytesIO(archive.read(pickles[0])), persistent_load)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        if isinstance(e, PthError):
            raise
        raise PthError(f'truncated or corrupt zip archive ({e})') from None


def _load_legacy(f):
    if _unpickle(f) != LEGACY_MAGIC:
        raise PthError('not a .pth file (neither a zip archive nor the legacy magic number)')
    protocol = _unpickle(f)
    if protocol != LEGACY_PROTOCOL:
        raise PthError(f'unknown legacy protocol version {protocol!r}')
    info = _unpickle(f)
    little = info.get('little_endian', True) if isinstance(info, dict) else True
    roots, views = {}, {}

    def persistent_load(pid):
        if isinstance(pid, tuple) and pid and pid[0] == 'module':
            raise PthError('the file holds a whole pickled model (torch.save(model)), not a '
                           'state dict: save model.state_dict() instead')
        storage_type, key, numel = _storage_args(pid, 6)
        if key not in roots:
            roots[key] = _Storage(storage_type, numel)
        root = roots[key]
        if root.type is not storage_type or root.numel != numel:
            raise PthError(f'storage {key} is described twice, differently')
        view = pid[5]
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3):
            raise PthError(f'bad storage view {view!r}')
        view_key, start, view_numel = view
        if type(start) is not int or type(view_numel) is not int or start < 0 or \
                view_numel < 0 or start + view_numel > numel:
            raise PthError(f'storage view {view!r} outside its storage of {numel} elements')
        key = str(view_key)
        if key not in views:
            views[key] = _Storage(storage_type, view_numel, root=root, start=start)
        return views[key]

    result = _unpickle(f, persistent_load)
    keys = _unpickle(f)
    if not isinstance(keys, list):
        raise PthError('corrupt legacy file: no list of storage keys after the object')
    order = '<' if little else '>'
    here = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(here)
    for key in keys:
        storage = roots.get(str(key))
        if storage is None:
            raise PthError(f'corrupt legacy file: data for an unknown storage {key!r}')
        header = f.read(8)
        if len(header) < 8:
            raise PthError('the file ends too early (truncated?)')
        count, = struct.unpack(order + 'q', header)
        if count != storage.numel:
            raise PthError(f'corrupt legacy file: storage {key} holds {count} elements, '
                           f'its tensors say {storage.numel}')
        size = count * storage.type.dtype.itemsize
        if size > end - f.tell():
            raise PthError('the file ends too early (truncated?)')
        raw = f.read(size)
        if len(raw) < size:
            raise PthError('the file ends too early (truncated?)')
        storage.data[:] = [_as_array(raw, storage.type, 'little' if little else 'big')]
    missing = [k for k, s in roots.items() if not s.data]
    if missing:
        raise PthError(f'corrupt legacy file: no data for storage {missing[0]}')
    return result


def _load(f):
    head = f.read(512)
    f.seek(0)
    if head.startswith(b'PK\x03\x04') or head.startswith(b'PK\x05\x06'):
        result = _load_zip(f)
    elif head.startswith(b'\x80') and len(head) > 1 and 2 <= head[1] <= 5:
        result = _load_legacy(f)
    else:
        if len(head) >= 512 and _is_tar(head):
            raise PthError('the tar format of PyTorch < 0.1.10 is not supported: load it with '
                           'torch and save it again')
        raise PthError('not a .pth file (neither a zip archive nor a legacy torch.save pickle)')
    if type(result) not in (dict, collections.OrderedDict):
        raise PthError(f'the file holds a {type(result).__name__.strip("_")}, not a dict of '
                       f'tensors (a state dict)')
    return _materialize(result)


def _is_tar(head):
    try:
        tarfile.TarInfo.frombuf(head, 'utf-8', 'surrogateescape')
        return True
    except tarfile.TarError:
        return False


def load(path_or_fileobj):
    """The dict a .pth file holds (see the module docstring), tensors as numpy arrays.

    ``path_or_fileobj``: a path, or a binary file object (seekable, or read
    whole into memory). Raises PthError (one line, naming the file) for a
    file that is not a .pth of tensors, is truncated or corrupt, or whose
    pickle asks for anything but tensors; OSError when it cannot be read.
    """
    if isinstance(path_or_fileobj, (str, bytes, os.PathLike)):
        name = os.fsdecode(path_or_fileobj)
        with open(path_or_fileobj, 'rb') as f:
            return _named(name, f)
    f = path_or_fileobj
    name = str(getattr(f, 'name', '<file object>'))
    if not (hasattr(f, 'seekable') and f.seekable()):
        f = io.BytesIO(f.read())
    return _named(name, f)


def _named(name, f):
    try:
        return _load(f)
    except PthError as e:
        raise PthError(f'{name}: {e}') from None
    except RecursionError:
        raise PthError(f'{name}: corrupt pickle (nested too deeply)') from None
