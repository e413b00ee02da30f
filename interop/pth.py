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
a stride; the array returned is C-contiguous and shares no memory with
another (the storage's own when the tensor is all of it, else a copy), but
for a tensor pickled once and referenced twice: one array, as torch shares it. float32, float16 and
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

A hostile file is read in bounded time and memory. The pickle is run by the
pure-Python unpickler (the C one grows its memo to any index a 6-byte PUT
names) on the opcodes torch.save writes, and each limit below is checked
before the work it bounds: the pickle's bytes, its operations (at most one
object each), the nesting of what it built and the values a walk of it
visits, a value shared by reference counted each time it is reached (a
40-level DAG of two references is a 600-byte pickle and 2 ** 40 values).
Dict keys are plain values (str, int, float, bool, None, bytes), each once. A
tensor's size, stride and offset must lie within its storage, a stride 0 only
where the size is 1 (torch's expand() is refused: no state dict needs it);
the storages' declared sizes must fit in the file, the zip entries' inflated
sizes within MAX_INFLATE times it, and the tensors' bytes within
MAX_EXPANSION times their storages' (tied weights are 2). Every malformed
file raises one PthError: one line, naming the file and what is wrong.

What :func:`load` returns: the pickled object must be a dict (as a
``state_dict()`` is). It comes back as an OrderedDict in the file's order,
its tensors as numpy arrays; nested dicts (a checkpoint such as
``{'state_dict': {...}, 'epoch': 3}``) come back as nested OrderedDicts, with
plain values (numbers, strings, lists) as they were: picking the state dict
out of such a checkpoint is the caller's business. A state dict's
``_metadata`` attribute (module versions) is dropped.
"""

import collections
import contextlib
import dataclasses
import functools
import io
import math
import os
import pickle
import pickletools
import struct
import tarfile
import zipfile
import zlib

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c  # the first pickle of a legacy file
LEGACY_PROTOCOL = 1001  # the second

# Limits on what a file may make this module do. A state dict's pickle takes
# about 30 operations and 120 bytes a tensor (the FID Inception's 566
# tensors: 17,370 operations, 66 KB), walks to 2 values a tensor and nests 2
# to 5 deep: each limit is 30 times that or more, and keeps the worst file
# within them to about a second and 150 MB (an operation builds at most one
# object, of about 100 bytes, and takes about 2 us).
MAX_PICKLE_BYTES = 16 << 20
MAX_PICKLE_OPS = 1 << 19
MAX_NODES = 1 << 19  # values visited walking the loaded object, shared ones each time
MAX_DEPTH = 32  # containers nested in containers
MAX_DIMS = 32  # a tensor's dimensions (numpy 1.x's limit)
MAX_EXPANSION = 4  # the tensors' bytes over their storages' (tied weights: 2)
MAX_INFLATE = 16  # a zip's entries' bytes over the file's; torch.save stores them (1)
ALLOWANCE = 1 << 20  # bytes any file may inflate or materialize beyond those ratios
MAX_INT = 2 ** 63 - 1  # a size, stride, offset or element count (torch's int64)

# Storage type -> numpy dtype; 'bfloat16' is read as uint16 and widened.
STORAGE_DTYPES = {
    'FloatStorage': 'float32', 'DoubleStorage': 'float64', 'HalfStorage': 'float16',
    'BFloat16Storage': 'bfloat16', 'LongStorage': 'int64', 'IntStorage': 'int32',
    'ShortStorage': 'int16', 'CharStorage': 'int8', 'ByteStorage': 'uint8',
    'BoolStorage': 'bool', 'ComplexFloatStorage': 'complex64',
    'ComplexDoubleStorage': 'complex128',
}
# The dict keys a file may use: plain values, whose hash is quick.
PLAIN_KEYS = (str, int, float, bool, type(None), bytes)


class PthError(ValueError):
    """A file that is not a readable .pth of tensors, or one that asks to run
    code; the message is one line."""


def _short(value):
    """A few words for a value of the file, in bounded time: a repr of a
    small scalar or of a short tuple of them, else its type (a repr of a
    shared structure can take 2 ** 40 steps)."""
    if type(value) in (int, bool) and abs(value) < 2 ** 64:
        return repr(value)
    if type(value) in (str, bytes, float, type(None)):
        text = repr(value[:60] if type(value) in (str, bytes) else value)
        return text + ('...' if type(value) in (str, bytes) and len(value) > 60 else '')
    if type(value) is tuple and len(value) <= 8 and all(type(v) in (int, str) for v in value):
        return '(' + ', '.join(_short(v) for v in value) + (',)' if len(value) == 1 else ')')
    if type(value) is int:
        return f'an int of {value.bit_length()} bits'
    return f'a {_type_name(value)}'


def _printable(text):
    """A name of the file (a key, an entry) in a message: as it is if short
    and printable, else the repr of its start (a message is one line)."""
    return text if text.isprintable() and len(text) <= 100 else repr(text[:100])


def _type_name(value):
    """The name of ``value``'s type, without this module's underscores."""
    return type(value).__name__.strip('_')


class _Sealed:
    """A stand-in that pickle can call but never modify (BUILD is refused)."""

    __slots__ = ()


class _StorageType(_Sealed):
    """A storage type (torch.FloatStorage ...): only its element type matters."""

    __slots__ = ('name', 'dtype', 'itemsize')

    def __init__(self, name):
        kind = STORAGE_DTYPES[name]
        object.__setattr__(self, 'name', name)
        object.__setattr__(self, 'dtype', np.dtype('uint16' if kind == 'bfloat16' else kind))
        # What an element takes once read (bfloat16 becomes float32).
        object.__setattr__(self, 'itemsize', 4 if kind == 'bfloat16' else self.dtype.itemsize)

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
    """A tensor as pickled, checked against its storage: rebuilt into an
    array once every storage is read."""

    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    @property
    def nbytes(self):
        """The bytes of its array."""
        return math.prod(self.size) * self.storage.type.itemsize


def _check_int(value, what):
    """``value``, a tensor's ``what``, if it is an int of 0 ... MAX_INT."""
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise PthError(f'a tensor has a bad {what} {_short(value)}')
    return value


def _rebuild_tensor(*args):
    """torch._utils._rebuild_tensor_v2 and _rebuild_tensor: (storage,
    storage_offset, size, stride, ...), checked (the array is made in
    :func:`_array`). requires_grad, backward hooks and metadata are ignored."""
    if len(args) < 4:
        raise PthError(f'a tensor is rebuilt from {len(args)} arguments, not 4 or more')
    storage, offset, size, stride = args[:4]
    if not isinstance(storage, _Storage):
        raise PthError(f'a tensor is rebuilt from {_type_name(storage)}, not a storage')
    if type(size) is not tuple or type(stride) is not tuple or len(size) != len(stride):
        raise PthError(f'a tensor has a bad size {_short(size)} or stride {_short(stride)}')
    if len(size) > MAX_DIMS:
        raise PthError(f'a tensor has {len(size)} dimensions, more than {MAX_DIMS}')
    tensor = _Tensor(storage, _check_int(offset, 'storage offset'),
                     tuple(_check_int(n, 'size') for n in size),
                     tuple(_check_int(s, 'stride') for s in stride))
    _check_geometry(tensor)
    return tensor


def _check_geometry(tensor):
    """Refuses a tensor that reaches beyond its storage, repeats elements
    through a stride 0, or that numpy cannot represent."""
    size, itemsize = list(tensor.size), tensor.storage.type.itemsize
    if math.prod(n or 1 for n in size) * itemsize > MAX_INT:
        raise PthError(f'a tensor of size {size} is too large for any array')
    for n, s in zip(tensor.size, tensor.stride):
        if s == 0 and n > 1:
            raise PthError(f'a tensor of size {size} has stride 0 in a dimension of size {n} '
                           f'(an expanded tensor): refused, a state dict never needs one')
    if 0 in size:
        return
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride))
    if last >= tensor.storage.numel:
        raise PthError(f'a tensor of size {size} reaches element {last} of a storage of '
                       f'{tensor.storage.numel}')


def _rebuild_parameter(*args):
    """torch._utils._rebuild_parameter(_with_state): a Parameter is its tensor."""
    if not args:
        raise PthError('a parameter is rebuilt from 0 arguments')
    if not isinstance(args[0], _Tensor):
        raise PthError(f'a parameter is rebuilt from {_type_name(args[0])}, not a tensor')
    return args[0]


def _set_item(target, key, value):
    """``target[key] = value`` for a dict of the pickle: a plain key, once."""
    if type(target) not in (dict, collections.OrderedDict):
        raise PthError(f'the pickle sets an item of a {_type_name(target)}: refused')
    if type(key) not in PLAIN_KEYS:
        raise PthError(f'a dict key of type {_type_name(key)}: refused (keys are strings, '
                       f'numbers or None)')
    if key in target:
        raise PthError(f'a dict holds the key {_short(key)} twice')
    target[key] = value


def _ordered_dict(*args):
    """collections.OrderedDict() or, as Python 2 pickled it, of [[key, value] ...]."""
    if len(args) > 1:
        raise PthError(f'OrderedDict called with {len(args)} arguments')
    result = collections.OrderedDict()
    for pair in args[0] if args else ():
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise PthError('OrderedDict called with items that are not a list of pairs')
        _set_item(result, *pair)
    return result


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
_FUNCTIONS['collections', 'OrderedDict'] = _Function('collections.OrderedDict', _ordered_dict)


class _Bounded:
    """The next ``limit`` bytes of a binary file, as an unpickler reads them:
    a read or a line past them raises PthError(``message``) unread."""

    def __init__(self, file, limit, message):
        self.file, self.left, self.message = file, limit, message

    def read(self, n):
        if n > self.left:
            raise PthError(self.message)
        data = self.file.read(n)
        self.left -= len(data)
        return data

    def readline(self):
        line = self.file.readline(self.left + 1)
        if len(line) > self.left:
            raise PthError(self.message)
        self.left -= len(line)
        return line


class _Dispatch(dict):
    """An unpickler's opcode -> loader table that refuses the opcodes it lacks."""

    def __missing__(self, code):
        name = _OPCODE_NAMES.get(code, f'{code:#04x}')
        raise PthError(f'the pickle uses opcode {name}, which torch.save never writes: refused')


_OPCODE_NAMES = {op.code.encode('latin-1')[0]: op.name for op in pickletools.opcodes}
# What torch.save writes (protocol 2, or 4 when asked), with Python 2's strings.
_OPCODES = ('PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE BININT BININT1 '
            'BININT2 LONG1 LONG4 BINFLOAT BINUNICODE SHORT_BINUNICODE SHORT_BINSTRING BINSTRING '
            'SHORT_BINBYTES BINBYTES EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST APPEND '
            'APPENDS EMPTY_DICT SETITEM SETITEMS GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID '
            'BINGET LONG_BINGET BINPUT LONG_BINPUT MEMOIZE').split()
_OVERRIDDEN = ('REDUCE', 'BUILD', 'SETITEM', 'SETITEMS', 'APPEND', 'APPENDS')  # _Unpickler's


class _Unpickler(pickle._Unpickler):
    """The pure-Python unpickler on the opcodes of _OPCODES, each counted
    against MAX_PICKLE_OPS, calling only the stand-ins of this module and
    setting items only of dicts (plain keys, once) and lists."""

    def __init__(self, file, persistent_load=None):
        super().__init__(file, encoding='utf-8')  # as torch.load, for Python 2 pickles
        self._persistent = persistent_load
        self.ops = 0

    def find_class(self, module, name):
        if (module, name) in _FUNCTIONS:
            return _FUNCTIONS[module, name]
        if module == 'torch' and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise PthError(f'the pickle asks for {_printable(f"{module}.{name}")}, which a file of '
                       f'tensors never needs: refused (not loaded, nothing run)')

    def persistent_load(self, pid):
        if self._persistent is None:
            raise PthError('unexpected persistent id in a header pickle')
        return self._persistent(pid)

    def load_reduce(self):
        args = self.stack.pop()
        function = self.stack[-1]
        if not isinstance(function, _Function):
            raise PthError(f'the pickle calls a {_type_name(function)}: refused')
        if type(args) is not tuple:
            raise PthError(f'{function!r} is called with a {_type_name(args)}, not a tuple')
        self.stack[-1] = function(*args)

    def load_build(self):
        self.stack.pop()  # an OrderedDict's attributes (a state dict's _metadata): dropped
        target = self.stack[-1]
        if type(target) is not collections.OrderedDict:
            raise PthError(f'the pickle sets the state of a {_type_name(target)}: refused')

    def load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        _set_item(self.stack[-1], key, value)

    def load_setitems(self):
        items = self.pop_mark()
        if len(items) % 2:
            raise PthError('the pickle sets a key without a value')
        for i in range(0, len(items), 2):
            _set_item(self.stack[-1], items[i], items[i + 1])

    def load_append(self):
        value = self.stack.pop()
        _a_list(self.stack[-1]).append(value)

    def load_appends(self):
        items = self.pop_mark()
        _a_list(self.stack[-1]).extend(items)


def _a_list(target):
    """``target``, which the pickle appends to, if it is a list."""
    if type(target) is not list:
        raise PthError(f'the pickle appends to a {_type_name(target)}: refused')
    return target


def _counted(load):
    """``load`` (an opcode's), refused past MAX_PICKLE_OPS operations."""
    def counted(unpickler):
        unpickler.ops += 1
        if unpickler.ops > MAX_PICKLE_OPS:
            raise PthError(f'the pickle takes more than {MAX_PICKLE_OPS} operations: refused '
                           f'(a state dict takes about 30 a tensor)')
        load(unpickler)
    return counted


def _dispatch():
    """The opcodes of _OPCODES -> their loaders, counted; the others refused."""
    table = _Dispatch()
    for name in _OPCODES:
        code = getattr(pickle, name)[0]
        load = getattr(_Unpickler, f'load_{name.lower()}') if name in _OVERRIDDEN else \
            pickle._Unpickler.dispatch[code]
        table[code] = _counted(load)
    return table


_Unpickler.dispatch = _dispatch()


def _unpickle(file, persistent_load=None):
    """The next pickle of ``file``; whatever is wrong with it, a PthError."""
    try:
        return _Unpickler(file, persistent_load).load()
    except (PthError, MemoryError):
        raise
    except EOFError:
        raise PthError('the file ends too early (truncated?)') from None
    except Exception as e:  # a corrupt pickle can raise almost anything
        raise PthError(f'corrupt pickle ({_error(e)})') from None


def _error(e):
    """An exception in a few words on one line."""
    return f'{type(e).__name__}: {" ".join(str(e).split())[:120]}'


def _storage_args(pid, length):
    """(storage type, key, element count) of a storage's persistent id, a
    tuple of ``length``."""
    if type(pid) is not tuple or len(pid) != length or pid[0] != 'storage':
        raise PthError(f'unexpected persistent id {_short(pid)}')
    storage_type, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(storage_type, _StorageType):
        raise PthError(f'unexpected storage type {_short(storage_type)}')
    if type(key) is not str:
        raise PthError(f'a storage key is {_short(key)}, not a string')
    if type(numel) is not int or not 0 <= numel <= MAX_INT:
        raise PthError(f'bad storage size {_short(numel)}')
    return storage_type, key, numel


def _read_storage(storage, byteorder, fill):
    """Fills the root ``storage`` with its elements: ``fill(buffer)`` writes
    the file's bytes into a writeable buffer of their size; the array is
    made native in place (bfloat16 widened), so that a tensor that is its
    whole storage needs no copy."""
    dtype = storage.type.dtype.newbyteorder('<' if byteorder == 'little' else '>')
    array = np.empty(storage.numel, dtype)
    fill(memoryview(array).cast('B'))
    if not dtype.isnative:
        array = array.byteswap(inplace=True).view(dtype.newbyteorder('='))
    if storage.type.name == 'BFloat16Storage':  # the upper half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    storage.data[:] = [array]


_CONTAINERS = (dict, collections.OrderedDict, list, tuple)


@dataclasses.dataclass
class _Survey:
    """What a walk of the loaded object found: its distinct tensors (id ->
    tensor) and each container's (values visited walking it, levels of
    containers from it down), by id."""

    tensors: dict = dataclasses.field(default_factory=dict)
    containers: dict = dataclasses.field(default_factory=dict)


def _survey(value, survey, depth=1):
    """(values a walk of ``value`` visits, a shared one each time it is
    reached; levels of containers) computed once per distinct container (a
    DAG of 2 ** 40 paths costs 40 steps). Refuses more than MAX_NODES values,
    containers nested deeper than MAX_DEPTH (a cycle too), a bare storage or
    function."""
    if type(value) not in _CONTAINERS:
        if isinstance(value, _Tensor):
            survey.tensors[id(value)] = value
        elif isinstance(value, _Sealed):
            raise PthError(f'the file holds a bare {_type_name(value)}, not a tensor')
        return 1, 0
    cost, height = survey.containers.get(id(value), (None, 1))
    if depth + height - 1 > MAX_DEPTH:
        raise PthError(f'the pickle holds containers nested more than {MAX_DEPTH} deep (or a '
                       f'cycle): refused')
    if cost is not None:
        return cost, height
    cost = 1
    for child in value.values() if isinstance(value, dict) else value:
        child_cost, child_height = _survey(child, survey, depth + 1)
        cost, height = cost + child_cost, max(height, child_height + 1)
        if cost > MAX_NODES:
            raise PthError(f'the pickle holds more than {MAX_NODES} values, a shared one '
                           f'counted each time it is referenced: refused (a reference bomb?)')
    survey.containers[id(value)] = cost, height
    return cost, height


def _check_expansion(tensors, storages):
    """Refuses tensors that would take more than MAX_EXPANSION times the
    bytes of the file's storages (overlapping views), before any is made."""
    tensor_bytes = sum(tensor.nbytes for tensor in tensors)
    storage_bytes = sum(storage.numel * storage.type.itemsize for storage in storages)
    if tensor_bytes > MAX_EXPANSION * storage_bytes + ALLOWANCE:
        raise PthError(f'its tensors would materialize {tensor_bytes} bytes from storages of '
                       f'{storage_bytes}, more than {MAX_EXPANSION} times: refused (overlapping '
                       f'views?)')


def _array(tensor, sole):
    """The C-contiguous array of a checked tensor whose storage is read: the
    storage's own array where the tensor is all of it, in order, and the
    only tensor of it (``sole``), else a copy."""
    data = tensor.storage.array()
    if 0 in tensor.size:
        return np.zeros(tensor.size, data.dtype)
    if sole and tensor.storage.root is None and tensor.offset == 0 and \
            math.prod(tensor.size) == len(data) and _in_order(tensor):
        return data.reshape(tensor.size)
    strides = [s * data.itemsize if n > 1 else 0 for n, s in zip(tensor.size, tensor.stride)]
    view = np.lib.stride_tricks.as_strided(data[tensor.offset:], tensor.size, strides,
                                           writeable=False)
    return np.array(view, order='C')


def _in_order(tensor):
    """Whether the tensor's strides are C order's (any where the size is 1)."""
    expected = 1
    for n, s in zip(reversed(tensor.size), reversed(tensor.stride)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _materialize(value, made, sole):
    """``value`` (surveyed) with tensors as arrays and dicts as OrderedDicts;
    ``made``: id of a container or tensor -> what it became, so that a
    shared one is made once and stays shared; ``sole``: the ids of the root
    storages that one tensor uses."""
    if type(value) not in _CONTAINERS and not isinstance(value, _Tensor):
        return value
    result = made.get(id(value))
    if result is None:
        if isinstance(value, _Tensor):
            result = _array(value, id(value.storage) in sole)
        elif isinstance(value, dict):
            result = collections.OrderedDict((k, _materialize(v, made, sole))
                                             for k, v in value.items())
        else:
            result = type(value)(_materialize(v, made, sole) for v in value)
        made[id(value)] = result
    return result


# Errors of zipfile and its decompressors on a corrupt archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
               zlib.error, struct.error, NotImplementedError)


class _Entries:
    """The members of a zip archive of ``size`` bytes, each checked before it
    is read: stored or deflated, unencrypted, within the file, and all read
    together inflating to at most MAX_INFLATE times the file."""

    def __init__(self, archive, size):
        self.archive, self.size, self.inflated = archive, size, 0
        self.infos = {info.filename: info for info in archive.infolist()}

    def check(self, name, expected=None):
        """The ZipInfo of ``name``, its bytes added to the inflated total;
        ``expected``: the size it must have."""
        info = self.infos.get(name)
        if info is None:
            raise PthError(f'the archive has no {_printable(name)}')
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or \
                info.flag_bits & 0x1:
            raise PthError(f'{_printable(name)} is encrypted or compressed by method '
                           f'{info.compress_type} (torch.save stores its entries)')
        if info.header_offset + info.compress_size > self.size:
            raise PthError(f'{_printable(name)} reaches past the end of the file (truncated?)')
        if expected is not None and info.file_size != expected:
            raise PthError(f'{_printable(name)} holds {info.file_size} bytes, not the '
                           f'{expected} its tensors say')
        self.inflated += info.file_size
        if self.inflated > MAX_INFLATE * self.size + ALLOWANCE:
            raise PthError(f"{_printable(name)} would inflate to {info.file_size} bytes, beyond "
                           f"{MAX_INFLATE} times the file's {self.size}: refused (a zip bomb?)")
        return info

    def filler(self, name):
        """A function that writes the checked entry ``name`` into a buffer
        of its size: a stored one straight from the file, its CRC checked."""
        info = self.infos[name]
        if info.compress_type != zipfile.ZIP_STORED:
            def inflate(buffer):
                buffer[:] = self.archive.read(name)
            return inflate

        def copy(buffer):
            f = self.archive.fp
            f.seek(info.header_offset)
            header = f.read(30)
            if len(header) < 30 or header[:4] != b'PK\x03\x04' or \
                    info.compress_size != info.file_size:
                raise PthError(f'{_printable(name)}: a corrupt zip entry')
            name_length, extra_length = struct.unpack('<HH', header[26:])
            f.seek(info.header_offset + 30 + name_length + extra_length)
            if f.readinto(buffer) != len(buffer) or zlib.crc32(buffer) != info.CRC:
                raise PthError(f'{_printable(name)} is truncated or corrupt (its CRC differs)')
        return copy


@contextlib.contextmanager
def _zip_errors():
    """zipfile's errors (and its decompressors') as a PthError."""
    try:
        yield
    except PthError:
        raise
    except _ZIP_ERRORS as e:
        raise PthError(f'truncated or corrupt zip archive ({_error(e)})') from None


def _load_zip(f):
    """(object, its storages, a function that reads them) of a zip archive."""
    size = f.seek(0, io.SEEK_END)
    f.seek(0)
    with _zip_errors():
        return _load_entries(_Entries(zipfile.ZipFile(f), size))


def _load_entries(entries):
    """(object, its storages, a function that reads them) of the _Entries of
    a zip archive: its pickle is read, its storages only checked."""
    names = entries.infos
    pickles = [n for n in names if n.count('/') == 1 and n.endswith('/data.pkl')]
    if len(pickles) != 1:
        if any(n.endswith('/constants.pkl') for n in names):
            raise PthError('a TorchScript archive (torch.jit.save), not a state dict: save '
                           'model.state_dict() with torch.save instead')
        raise PthError('a zip archive without <archive>/data.pkl: not a file of torch.save')
    prefix = pickles[0][:-len('data.pkl')]
    byteorder = 'little'
    if prefix + 'byteorder' in names:
        if entries.check(prefix + 'byteorder').file_size > 16:
            raise PthError(f'{_printable(prefix)}byteorder holds more than a byte order')
        byteorder = entries.archive.read(prefix + 'byteorder').decode('ascii').strip()
    if byteorder not in ('little', 'big'):
        raise PthError(f'unknown byte order {byteorder[:20]!r}')
    storages = {}

    def persistent_load(pid):
        storage_type, key, numel = _storage_args(pid, 5)
        if key not in storages:
            entries.check(f'{prefix}data/{key}', numel * storage_type.dtype.itemsize)
            storages[key] = _Storage(storage_type, numel)
        if storages[key].type is not storage_type or storages[key].numel != numel:
            raise PthError(f'storage {_printable(key)} is described twice, differently')
        return storages[key]

    def read():
        with _zip_errors():
            for key, storage in storages.items():
                _read_storage(storage, byteorder, entries.filler(f'{prefix}data/{key}'))

    size = entries.check(pickles[0]).file_size
    if size > MAX_PICKLE_BYTES:
        raise PthError(f'a data.pkl of {size} bytes, above {MAX_PICKLE_BYTES}: refused')
    data = entries.archive.read(pickles[0])
    result = _unpickle(_Bounded(io.BytesIO(data), len(data), 'the pickle runs past the end of '
                                'data.pkl (truncated?)'), persistent_load)
    return result, storages.values(), read


def _legacy_persistent_load(size):
    """The persistent_load of a legacy file of ``size`` bytes, and the root
    storages it declares (key -> storage), each checked to fit in the file."""
    roots, views = {}, {}

    def persistent_load(pid):
        if type(pid) is tuple and pid and pid[0] == 'module':
            raise PthError('the file holds a whole pickled model (torch.save(model)), not a '
                           'state dict: save model.state_dict() instead')
        storage_type, key, numel = _storage_args(pid, 6)
        if numel * storage_type.dtype.itemsize > size:
            raise PthError(f'storage {_printable(key)} declares '
                           f'{numel * storage_type.dtype.itemsize} bytes of storage, the file '
                           f'has {size}')
        root = roots.setdefault(key, _Storage(storage_type, numel))
        if root.type is not storage_type or root.numel != numel:
            raise PthError(f'storage {_printable(key)} is described twice, differently')
        view = pid[5]
        if view is None:
            return root
        if type(view) is not tuple or len(view) != 3 or type(view[0]) is not str:
            raise PthError(f'bad storage view {_short(view)}')
        view_key, start, view_numel = view
        if type(start) is not int or type(view_numel) is not int or start < 0 or \
                view_numel < 0 or start + view_numel > numel:
            raise PthError(f'storage view {_short(view)} outside its storage of {numel} '
                           f'elements')
        return views.setdefault(view_key, _Storage(storage_type, view_numel, root=root,
                                                   start=start))

    return persistent_load, roots


def _load_legacy(f):
    """(object, its storages, a function that reads them) of a legacy file."""
    size = f.seek(0, io.SEEK_END)
    f.seek(0)
    pickles = _Bounded(f, min(size, MAX_PICKLE_BYTES), 'the file ends too early (truncated?)'
                       if size <= MAX_PICKLE_BYTES else
                       f'the pickles are larger than {MAX_PICKLE_BYTES} bytes: refused')
    if _unpickle(pickles) != LEGACY_MAGIC:
        raise PthError('not a .pth file (neither a zip archive nor the legacy magic number)')
    protocol = _unpickle(pickles)
    if protocol != LEGACY_PROTOCOL:
        raise PthError(f'unknown legacy protocol version {_short(protocol)}')
    info = _unpickle(pickles)
    little = info.get('little_endian', True) if type(info) is dict else True
    persistent_load, roots = _legacy_persistent_load(size)
    result = _unpickle(pickles, persistent_load)
    keys = _unpickle(pickles)
    if type(keys) is not list:
        raise PthError('corrupt legacy file: no list of storage keys after the object')
    return result, roots.values(), lambda: _read_legacy(f, keys, roots, little, size)


def _read_legacy(f, keys, roots, little, end):
    """Reads the storages that follow a legacy file's pickles, in ``keys``' order."""
    for key in keys:
        storage = roots.get(key) if type(key) is str else None
        if storage is None:
            raise PthError(f'corrupt legacy file: data for an unknown storage {_short(key)}')
        if storage.data:
            raise PthError(f'corrupt legacy file: storage {_printable(key)} is listed twice')
        header = f.read(8)
        if len(header) < 8:
            raise PthError('the file ends too early (truncated?)')
        count, = struct.unpack('<q' if little else '>q', header)
        if count != storage.numel:
            raise PthError(f'corrupt legacy file: storage {_printable(key)} holds {count} '
                           f'elements, its tensors say {storage.numel}')
        if count * storage.type.dtype.itemsize > end - f.tell():
            raise PthError('the file ends too early (truncated?)')
        _read_storage(storage, 'little' if little else 'big', functools.partial(_fill, f))
    missing = [k for k, s in roots.items() if not s.data]
    if missing:
        raise PthError(f'corrupt legacy file: no data for storage {_printable(missing[0])}')


def _fill(f, buffer):
    """Reads the next len(buffer) bytes of ``f`` into ``buffer``."""
    if f.readinto(buffer) != len(buffer):
        raise PthError('the file ends too early (truncated?)')


def _load(f):
    """The dict of the .pth file ``f`` (see load); its tensors' storages are
    read only once the object and its tensors are checked."""
    head = f.read(512)
    f.seek(0)
    if head.startswith(b'PK\x03\x04') or head.startswith(b'PK\x05\x06'):
        result, storages, read = _load_zip(f)
    elif head.startswith(b'\x80') and len(head) > 1 and 2 <= head[1] <= 5:
        result, storages, read = _load_legacy(f)
    else:
        if len(head) >= 512 and _is_tar(head):
            raise PthError('the tar format of PyTorch < 0.1.10 is not supported: load it with '
                           'torch and save it again')
        raise PthError('not a .pth file (neither a zip archive nor a legacy torch.save pickle)')
    if type(result) not in (dict, collections.OrderedDict):
        raise PthError(f'the file holds a {_type_name(result)}, not a dict of tensors (a '
                       f'state dict)')
    survey = _Survey()
    _survey(result, survey)
    _check_expansion(survey.tensors.values(), storages)
    read()
    users = collections.Counter(id(t.storage.root or t.storage) for t in survey.tensors.values())
    return _materialize(result, {}, {key for key, n in users.items() if n == 1})


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
    """_load(f), its PthError naming the file ``name`` (on one line, whatever
    the name)."""
    name = name.replace('\n', '\\n').replace('\r', '\\r')
    try:
        return _load(f)
    except PthError as e:
        raise PthError(f'{name}: {e}') from None
    except (ValueError, OverflowError, struct.error, RecursionError) as e:  # not foreseen
        raise PthError(f'{name}: corrupt file ({_error(e)})') from None
