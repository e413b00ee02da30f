"""Datasets by name or by folder: find, download or generate one, return its folder.

:func:`prepare` turns ``cfg.dataset`` into the folder that the input pipeline
(data.py) reads:

* a PATH (anything containing a path separator or starting with ``.`` or
  ``~``) is used as it is, once its layout is checked;
* ``shapes2stripes``, the built-in default, is generated on first use into
  ``<data_root>/shapes2stripes`` (paired models: ``shapes2stripes_paired``);
* the official CycleGAN and pix2pix sets (:data:`CYCLEGAN_DATASETS`,
  :data:`PIX2PIX_DATASETS`) are downloaded on first use into
  ``<data_root>/<name>``;
* any other name is ``<data_root>/<name>``, else a folder of that name in the
  working directory.

Layouts, as the official implementation reads them::

    unaligned (cycle_gan):   trainA/ trainB/ testA/ testB/   any image files
    aligned (pix2pix):       train/ test/ (or val/)          each file A|B side by side
    colorization:            train/ test/                    RGB images; an unaligned
                                                             folder works too (both
                                                             domains are read)

Downloads (urllib only) go to ``<data_root>/.<name>.<ext>.part`` and are
renamed to ``<data_root>/<name>.<ext>`` only once complete and of the size the
server announced (Content-Length, or the total of a Content-Range). A ``.part``
file is only ever a prefix of the server's file: when the connection drops the
transfer resumes at once with an HTTP Range request (up to
``DOWNLOAD_ATTEMPTS`` requests; a server that ignores Range answers 200 and the
transfer restarts from zero); when the network fails outright or the process is
stopped, or when every attempt continued the part but the connection kept
dropping, the ``.part`` stays and the next run resumes it. When the server's
answers contradict each other (more bytes than announced, a Content-Range
that does not continue the part or announces another size, 416 for a resume)
the ``.part`` is deleted. Archives are checked entry by entry before anything is
extracted (no absolute paths, no ``..``, no links leaving the archive, no
device files; in all no more than ``MAX_EXPANSION`` times the archive's size
plus ``EXPANSION_ALLOWANCE``, and at most ``MAX_ENTRIES`` entries), extracted
into a temporary folder inside data_root, checked against the layout and
renamed into place; the archive is deleted afterwards, like the official
scripts do. One process at a time fetches a set into a
data_root (:func:`download_lock`): a second one waits, then uses the set the
first one fetched.
"""

import colorsys
import contextlib
import dataclasses
import http.client
import logging
import math
import os
import posixpath
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile

import numpy as np
import tqdm
from PIL import Image, ImageDraw

import config

try:
    import fcntl
except ImportError:  # Windows: no download lock
    fcntl = None

logger = logging.getLogger(__name__)


class DatasetError(Exception):
    """A dataset that cannot be found, downloaded, extracted or read; the
    message is one line, meant to be printed without a traceback."""


IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')  # any letter case

DEFAULT_URL = 'http://efrosgans.eecs.berkeley.edu'
URL_VARIABLE = 'CYCLEGAN_DATASETS_URL'
BUILTIN = 'shapes2stripes'
DOWNLOAD_ATTEMPTS = 5
TIMEOUT = 60.0  # seconds, per socket operation
# Archives are refused, before anything is extracted, when their entries
# declare more than MAX_EXPANSION times the archive's size plus
# EXPANSION_ALLOWANCE (an 875 KB zip of zeros declared 201 MB), or more than
# MAX_ENTRIES entries. The official sets are JPEG and PNG files, which do not
# compress: they expand by about 1.0 to 1.1, and the largest, edges2handbags,
# has about 139,000 files.
MAX_EXPANSION = 20
EXPANSION_ALLOWANCE = 64 << 20  # bytes
MAX_ENTRIES = 500_000
_USER_AGENT = 'cyclegan-tf-datasets'

UNALIGNED, ALIGNED, COLORIZATION, ANY = 'unaligned', 'aligned', 'colorization', 'any'
_LAYOUT_HINTS = {
    UNALIGNED: '{trainA,trainB,testA,testB}/',
    ALIGNED: '{train,test}/ (each image A|B side by side)',
    COLORIZATION: '{train,test}/ (RGB images)',
    ANY: '(a folder of images)',
}
# Which layouts of the known sets each model's layout can read.
_READABLE = {UNALIGNED: (UNALIGNED, ANY), ALIGNED: (ALIGNED,),
             COLORIZATION: (COLORIZATION, UNALIGNED, ANY)}
_DESCRIPTIONS = {UNALIGNED: 'an unaligned (CycleGAN) dataset',
                 ALIGNED: 'a paired (pix2pix) dataset',
                 COLORIZATION: 'a colorization dataset', ANY: 'a folder of test photos'}
_LAYOUT_FOLDERS = ('train', 'test', 'val', 'trainA', 'trainB', 'testA', 'testB', 'valA', 'valB')
_JUNK = ('__MACOSX',)  # folders some zip tools add; never images


# ---------------------------------------------------------------------------
# Known datasets.

@dataclasses.dataclass(frozen=True)
class KnownDataset:
    """A set of the official servers: where it lives and what it holds.

    ``counts`` (folder -> number of images) and ``image_size`` (width, height
    of each file) are filled only where known; a count that differs after a
    download is logged as a warning, not an error.
    """

    name: str
    layout: str   # UNALIGNED, ALIGNED, COLORIZATION or ANY
    archive: str  # path under the base URL
    counts: tuple = ()
    image_size: tuple = None

    def url(self, base):
        return f'{base.rstrip("/")}/{self.archive}'

    @property
    def extension(self):
        return '.tar.gz' if self.archive.endswith('.tar.gz') else '.zip'


def _cyclegan(name, layout=UNALIGNED, **known):
    return KnownDataset(name, layout, f'cyclegan/datasets/{name}.zip', **known)


def _pix2pix(name, **known):
    return KnownDataset(name, ALIGNED, f'pix2pix/datasets/{name}.tar.gz', **known)


# The lists of the official datasets/download_cyclegan_dataset.sh and
# download_pix2pix_dataset.sh. The official mini_pix2pix and mini_colorization
# are zips on the CycleGAN server (its test script downloads them with the
# CycleGAN script), so they are listed here, not with pix2pix.
CYCLEGAN_DATASETS = {d.name: d for d in (
    _cyclegan('ae_photos', ANY),  # photos for testing the pretrained style models
    _cyclegan('apple2orange'),
    _cyclegan('summer2winter_yosemite'),
    _cyclegan('horse2zebra', counts=(('trainA', 1067), ('trainB', 1334),
                                     ('testA', 120), ('testB', 140)),
              image_size=(256, 256)),
    _cyclegan('monet2photo'),
    _cyclegan('cezanne2photo'),
    _cyclegan('ukiyoe2photo'),
    _cyclegan('vangogh2photo'),
    _cyclegan('maps', image_size=(600, 600)),
    _cyclegan('facades'),
    _cyclegan('iphone2dslr_flower'),
    _cyclegan('mini'),
    _cyclegan('mini_pix2pix', ALIGNED),
    _cyclegan('mini_colorization', COLORIZATION),
)}
PIX2PIX_DATASETS = {d.name: d for d in (
    _pix2pix('facades', counts=(('train', 400), ('val', 100), ('test', 106)),
             image_size=(512, 256)),
    _pix2pix('maps', image_size=(1200, 600)),
    _pix2pix('edges2shoes', image_size=(512, 256)),
    _pix2pix('edges2handbags', image_size=(512, 256)),
    _pix2pix('night2day'),
)}
# Listed by the official scripts but not downloadable.
UNAVAILABLE = {
    'cityscapes': 'cityscapes cannot be downloaded from the CycleGAN servers (license): get '
                  'gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from '
                  'https://cityscapes-dataset.com and combine them with the official '
                  'datasets/prepare_cityscapes_dataset.py',
}


def known_names():
    """Every name :func:`prepare` knows, sorted, the built-in first."""
    return [BUILTIN] + sorted(set(CYCLEGAN_DATASETS) | set(PIX2PIX_DATASETS) | set(UNAVAILABLE))


def layout_of(cfg):
    """The folder layout the model of ``cfg`` reads, UNALIGNED, ALIGNED or
    COLORIZATION: the ``data`` of its entry in registry.py."""
    import registry  # registry.py imports this module's layouts

    layout = registry.of(cfg).data
    if layout not in _LAYOUT_HINTS:
        raise DatasetError(f'the {cfg.model} model reads no dataset')
    return layout


def base_url(cfg):
    """The dataset server: ``cfg.download_url``, else $CYCLEGAN_DATASETS_URL, else
    official. Raises DatasetError for a URL that is not http or https."""
    for source, url in (('--download_url', cfg.download_url),
                        (f'${URL_VARIABLE}', os.environ.get(URL_VARIABLE))):
        if url:
            problem = config.url_problem(url, base=True)
            if problem:
                raise DatasetError(f'{source} {problem}, got {url!r}')
            return url.rstrip('/')
    return DEFAULT_URL


def find_known(name, layout):
    """The known set ``name`` for a model reading ``layout``, or None.

    facades and maps exist on both servers: paired models get the pix2pix
    version. Deviation: colorization reads plain RGB images, so it prefers the
    CycleGAN version of those two (whose domains are plain photos) to the
    pix2pix one (whose files are A|B pairs).
    """
    tables = (PIX2PIX_DATASETS, CYCLEGAN_DATASETS) if layout == ALIGNED else (
        CYCLEGAN_DATASETS, PIX2PIX_DATASETS)
    for table in tables:
        if name in table:
            return table[name]
    return None


# ---------------------------------------------------------------------------
# Folders and layouts.

def is_image_file(name):
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _hidden(name):
    # Deviation: the official make_dataset lists every file with an image
    # extension; we skip hidden files and folders (macOS '._x.jpg' resource
    # forks, '.ipynb_checkpoints') and __MACOSX, which are never images.
    return name.startswith('.') or name in _JUNK


def printable(path):
    """``path`` for messages: bytes of its name that are not UTF-8 shown as \\xNN."""
    return os.fsencode(path).decode('utf-8', 'backslashreplace')


def _is_utf8(path):
    try:
        path.encode('utf-8')
        return True
    except UnicodeEncodeError:  # os.walk gave its undecodable bytes as surrogates
        return False


_SKIPPED_NAMES = set()  # paths warned about once per process


def _skip_name(path):
    if path not in _SKIPPED_NAMES:
        _SKIPPED_NAMES.add(path)
        logger.warning('skipping %s: its name is not valid UTF-8 (rename it to use it)',
                       printable(path))


def _walk_images(folder):
    """Yields the image files under folder, recursively, in no particular order.

    Deviation: files and folders whose names are not valid UTF-8 are skipped
    with a warning, like unreadable images: TensorFlow's string tensors,
    index.html and the logs hold UTF-8 text only.
    """
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        for name in files:
            if not _hidden(name) and is_image_file(name):
                path = os.path.join(root, name)
                if _is_utf8(path):
                    yield path
                else:
                    _skip_name(path)


def list_images(folder, max_dataset_size=0):
    """The image files under ``folder`` (recursively), sorted; [] if it is missing.

    ``max_dataset_size`` > 0 keeps the first that many. Deviation: the official
    make_dataset truncates in os.walk order and sorts afterwards, which depends
    on the file system; we sort first, so the subset is the same everywhere.
    """
    paths = sorted(_walk_images(folder))
    return paths[:max_dataset_size] if max_dataset_size > 0 else paths


def has_images(folder):
    return next(_walk_images(folder), None) is not None


def no_images_message(folder):
    if not os.path.isdir(folder):
        return f'{folder} does not exist'
    return f'no images in {folder} (looked for {", ".join(IMAGE_EXTENSIONS)} files, any case)'


def _layout_problem(root, layout, split=None):
    """Why ``root`` does not hold ``layout`` (for one split, or all splits), or None."""
    if layout == ANY:
        return None if has_images(root) else no_images_message(root)
    if layout == UNALIGNED:
        splits = [split] if split else ['train', 'test']
        groups = [[s + 'A'] for s in splits] + [[s + 'B'] for s in splits]
    elif layout == ALIGNED:
        groups = [[split]] if split else [['train'], ['test', 'val']]
    else:  # COLORIZATION: <split>/, else both domains of an unaligned folder
        groups = [[split or 'train', (split or 'train') + 'A', (split or 'train') + 'B']]
    for group in groups:
        if not any(has_images(os.path.join(root, sub)) for sub in group):
            return no_images_message(os.path.join(root, group[0]))
    return None


def layout_hint(root, layout):
    """The folders to create by hand, e.g. 'datasets/x/{trainA,trainB,testA,testB}/'."""
    return f'{os.path.normpath(root)}/{_LAYOUT_HINTS[layout]}'


def check_folder(root, layout, split='train'):
    """Returns ``root`` if it holds images for ``split`` in ``layout``; else raises
    a DatasetError naming the empty or missing folder."""
    if not os.path.isdir(root):
        raise DatasetError(f'no dataset folder {root}')
    problem = _layout_problem(root, layout, split)
    if problem:
        raise DatasetError(f'{problem}; the {layout} layout is {layout_hint(root, layout)}')
    return root


def _looks_like_path(name):
    return (os.sep in name or '/' in name or name.startswith(('.', '~'))
            or os.path.isabs(name))


def prepare(cfg, split='train'):
    """The folder of ``cfg.dataset``, downloaded or generated if needed.

    Args:
      cfg: an ImageConfig (dataset, data_root, download_url, model).
      split: the split that must hold images ('train', 'test', 'val'); a
        downloaded set is checked whole.
    Returns:
      the dataset folder (a path string) in the layout of ``layout_of(cfg)``.
    Raises:
      DatasetError: one line saying what is wrong and what to do.
    """
    layout, name = layout_of(cfg), cfg.dataset
    if _looks_like_path(name):
        return check_folder(os.path.expanduser(name), layout, split)
    if name == BUILTIN:
        return check_folder(prepare_builtin(cfg.data_root, paired=layout == ALIGNED),
                            layout, split)
    root = os.path.join(cfg.data_root, name)
    if name in UNAVAILABLE and not os.path.isdir(root):
        raise DatasetError(f'{UNAVAILABLE[name]}, into {layout_hint(root, layout)}')
    known = find_known(name, layout)
    if known is not None:
        if known.layout not in _READABLE[layout]:
            raise DatasetError(f'{name} is {_DESCRIPTIONS[known.layout]}; the {cfg.model} '
                               f'model reads {_LAYOUT_HINTS[layout]}')

        # Downloaded only when neither the split asked for (a copy by hand
        # will do) nor the whole official layout (maps has no test/) is there.
        def missing():
            return (_layout_problem(root, layout, split) is not None
                    and _layout_problem(root, known.layout) is not None)

        if missing():
            base = base_url(cfg)  # checked before anything is created
            with download_lock(cfg.data_root, name):
                if missing():  # else another process fetched it while we waited
                    fetch(known, cfg.data_root, base)
        return check_folder(root, layout, split)
    if os.path.isdir(root):
        return check_folder(root, layout, split)
    if os.path.isdir(name):
        return check_folder(name, layout, split)
    raise DatasetError(f'unknown dataset {name!r} and no folder {root}: use one of '
                       f'{", ".join(known_names())}, or the path of a folder laid out as '
                       f'{_LAYOUT_HINTS[layout]}')


# ---------------------------------------------------------------------------
# Downloading.

@contextlib.contextmanager
def download_lock(data_root, name):
    """Holds, for the context, the lock on fetching the set ``name`` into
    ``data_root``: the file ``<data_root>/.<name>.lock``, locked with flock
    and removed on release. Waits, saying so, while another process holds it.
    Without fcntl (Windows) there is no lock."""
    if fcntl is None:
        yield
        return
    os.makedirs(data_root, exist_ok=True)
    path = os.path.join(data_root, f'.{name}.lock')
    while True:
        f = open(path, 'a')
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info('waiting for another process fetching %s into %s', name, data_root)
                fcntl.flock(f, fcntl.LOCK_EX)
            # The holder before us removes the file before it unlocks: a lock
            # on a removed file locks nothing, so take the new file's.
            if _is_file_at(f, path):
                try:
                    yield
                finally:
                    os.remove(path)
                return
        finally:
            f.close()  # also unlocks


def _is_file_at(f, path):
    """Whether the open file ``f`` is the file at ``path`` now."""
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _reason(error):
    """A short, one-line reason for a network error."""
    if isinstance(error, urllib.error.HTTPError):
        return f'HTTP {error.code} {error.reason}'
    if isinstance(error, urllib.error.URLError):
        error = error.reason
    if isinstance(error, ConnectionRefusedError):
        return 'connection refused'
    if isinstance(error, (socket.timeout, TimeoutError)):
        return 'timed out'
    if isinstance(error, socket.gaierror):
        return 'host not found'
    if isinstance(error, ConnectionResetError):
        return 'connection reset'
    text = getattr(error, 'strerror', None) or str(error) or type(error).__name__
    return ' '.join(str(text).split())


def _part_path(dest):
    return os.path.join(os.path.dirname(dest), '.' + os.path.basename(dest) + '.part')


def _file_size(path):
    return os.path.getsize(path) if os.path.isfile(path) else 0


def _content_range(header):
    """(first byte, total or None) of a 'bytes first-last/total' header, or None."""
    match = re.fullmatch(r'\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*', header or '')
    if not match:
        return None
    return int(match.group(1)), None if match.group(3) == '*' else int(match.group(3))


class _HTTPRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http and https URLs only (urllib's own handler
    also follows them to ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        problem = config.url_problem(newurl)
        if problem:
            raise urllib.error.HTTPError(newurl, code, f'redirect to {newurl!r} refused: the '
                                                       f'URL {problem}', headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HTTPRedirectsOnly)


def _open(url, offset, timeout):
    """Opens url, asking for the bytes from ``offset`` on when it is > 0."""
    headers = {'User-Agent': _USER_AGENT}
    if offset:
        headers['Range'] = f'bytes={offset}-'
    return _OPENER.open(urllib.request.Request(url, headers=headers), timeout=timeout)


def _transfer(response, part, offset, desc):
    """Appends the body of ``response`` to ``part`` (truncated to ``offset``
    first). Returns the size of part; a dropped connection just ends it."""
    with open(part, 'r+b' if offset else 'wb') as f:
        f.truncate(offset)
        f.seek(offset)
        length = response.headers.get('Content-Length')
        total = offset + int(length) if length and length.isdigit() else None
        with tqdm.tqdm(total=total, initial=offset, unit='B', unit_scale=True,
                       unit_divisor=1024, desc=desc, mininterval=0.5) as bar:
            try:
                while True:
                    chunk = response.read(1 << 16)
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:
                logger.warning('download of %s cut off (%s)', desc, _reason(e))
        return f.tell()


def _remove(path):
    if os.path.exists(path):
        os.remove(path)


def download(url, dest, *, timeout=TIMEOUT, attempts=DOWNLOAD_ATTEMPTS, hint=''):
    """Downloads ``url`` to ``dest`` through ``.<dest>.part`` (see the module
    docstring for resuming); returns dest. ``hint`` ends the error messages.
    Only http and https URLs are fetched, and only redirects to them followed."""
    problem = config.url_problem(url)
    if problem:
        raise DatasetError(f'cannot download {url!r}: the URL {problem}{hint}')
    part = _part_path(dest)
    size, expected = 0, None
    contradicted = False  # whether the server's answers could not all be trusted
    for _ in range(attempts):
        offset = _file_size(part)
        try:
            response = _open(url, offset, timeout)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416 and offset:  # it cannot continue the part: start again
                _remove(part)
                contradicted = True
                continue
            raise DatasetError(f'could not download {url} ({_reason(e)}){hint}') from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            kept = f' (partial download kept in {part}; run again to resume)' if offset else ''
            raise DatasetError(f'could not download {url} ({_reason(e)}){kept}{hint}') from None
        with response:
            if response.status == 206:
                first, total = _content_range(response.headers.get('Content-Range')) or (
                    -1, None)
                if first != offset or None not in (expected, total) and total != expected:
                    # Not the continuation of the part, or of another file: start again.
                    _remove(part)
                    contradicted, expected = True, None
                    continue
                expected = total
            else:  # 200: the whole file, whether or not we asked for a range
                offset = 0
                length = response.headers.get('Content-Length')
                expected = int(length) if length and length.isdigit() else None
            size = _transfer(response, part, offset, os.path.basename(dest))
        if expected is None or size == expected:
            os.replace(part, dest)
            return dest
        if size > expected:
            contradicted = True
            break
    if not contradicted and os.path.isfile(part):
        # Every attempt continued the part as the server announced: it is a
        # prefix of the file, which the next run resumes.
        raise DatasetError(f'download of {url} failed after {attempts} attempts: got {size} '
                           f'bytes, the server announced {expected} (partial download kept in '
                           f'{part}; run again to resume){hint}')
    _remove(part)
    raise DatasetError(f'download of {url} failed after {attempts} attempts: got {size} bytes, '
                       f'the server announced {expected} (deleted the partial file){hint}')


# ---------------------------------------------------------------------------
# Extracting.

def _name_problem(name):
    """Why an archive entry's name is unsafe to extract, or None."""
    norm = name.replace('\\', '/')
    if norm.startswith('/') or re.match(r'^[A-Za-z]:', norm):
        return 'absolute path'
    if '..' in norm.split('/'):
        return "'..' in its path"
    return None


def _escapes(relative):
    norm = posixpath.normpath(relative)
    return norm == '..' or norm.startswith('../') or posixpath.isabs(norm)


def _tar_problem(member):
    """Why a tar entry is unsafe to extract, or None."""
    problem = _name_problem(member.name)
    if problem:
        return problem
    if member.issym():
        target = posixpath.join(posixpath.dirname(member.name), member.linkname)
        if posixpath.isabs(member.linkname) or _escapes(target):
            return f'symbolic link to {member.linkname} outside the archive'
    elif member.islnk():
        if posixpath.isabs(member.linkname) or _escapes(member.linkname):
            return f'hard link to {member.linkname} outside the archive'
    elif not (member.isfile() or member.isdir()):
        return 'device or special file'
    return None


def _zip_problem(info):
    """Why a zip entry is unsafe to extract, or None. zipfile cannot create
    links or devices, so entries that claim to be one are refused."""
    problem = _name_problem(info.filename)
    if problem:
        return problem
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool stored no type
    if kind == stat.S_IFLNK:
        return 'symbolic link'
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return 'device or special file'
    return None


def _mib(size):
    return f'{size / (1 << 20):.1f} MiB'


def _check_expansion(archive, sizes):
    """Raises DatasetError when the entries of ``archive``, of declared
    ``sizes`` (bytes), are too many or too large (see MAX_EXPANSION)."""
    if len(sizes) > MAX_ENTRIES:
        raise DatasetError(f'{archive} has {len(sizes)} entries, more than {MAX_ENTRIES}: '
                           f'refused')
    packed, total = os.path.getsize(archive), sum(sizes)
    if total > MAX_EXPANSION * packed + EXPANSION_ALLOWANCE:
        raise DatasetError(f'{archive} would expand to {_mib(total)}, more than '
                           f'{MAX_EXPANSION} times its {_mib(packed)} plus '
                           f'{_mib(EXPANSION_ALLOWANCE)}: refused (an archive bomb?)')


def _extract_into(archive, folder):
    """Extracts ``archive`` into ``folder`` once every entry passed the checks."""
    if archive.endswith('.zip'):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                problem = _zip_problem(info)
                if problem:
                    raise DatasetError(f'unsafe entry {info.filename!r} in {archive} ({problem})')
            # zipfile reads no more than the declared size of an entry.
            _check_expansion(archive, [info.file_size for info in infos])
            zf.extractall(folder)
    else:
        with tarfile.open(archive, 'r:*') as tar:
            members = tar.getmembers()
            for member in members:
                problem = _tar_problem(member)
                if problem:
                    raise DatasetError(f'unsafe entry {member.name!r} in {archive} ({problem})')
            _check_expansion(archive, [member.size for member in members])
            # The 'data' filter (Python >= 3.10.12) checks the same again.
            safety = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
            tar.extractall(folder, members=members, **safety)


def _content_root(folder):
    """The dataset inside an extracted archive: the official ones wrap it in
    a top folder ``<name>/``; others put trainA/ ... at the top."""
    entries = [e for e in os.listdir(folder) if not _hidden(e)]
    if (len(entries) == 1 and entries[0] not in _LAYOUT_FOLDERS
            and os.path.isdir(os.path.join(folder, entries[0]))):
        return os.path.join(folder, entries[0])
    return folder


def _warn_counts(root, known):
    for sub, expected in known.counts:
        found = len(list_images(os.path.join(root, sub)))
        if found != expected:
            logger.warning('%s: %s has %d images, the official set has %d',
                           known.name, sub, found, expected)


def _move_into_place(source, target):
    """Renames ``source`` to ``target``, or, when target exists (facades and maps
    from the other server), moves in the top-level entries it lacks."""
    if not os.path.exists(target):
        os.chmod(source, 0o755)  # mkdtemp made it private
        os.rename(source, target)
        return
    for entry in os.listdir(source):
        if not os.path.exists(os.path.join(target, entry)):
            os.rename(os.path.join(source, entry), os.path.join(target, entry))


def extract(archive, target, layout, known=None):
    """Extracts ``archive`` safely into the folder ``target`` (see the module
    docstring); raises DatasetError naming an unsafe entry or a missing folder."""
    parent = os.path.dirname(os.path.abspath(target))
    scratch = tempfile.mkdtemp(prefix=f'.{os.path.basename(target)}.extract-', dir=parent)
    try:
        try:
            _extract_into(archive, scratch)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as e:
            raise DatasetError(f'{archive} is not a valid archive ({_reason(e)})') from None
        root = _content_root(scratch)
        problem = _layout_problem(root, layout)
        if problem:
            problem = problem.replace(root, target)
            raise DatasetError(f'{archive} does not hold the expected layout '
                               f'{_LAYOUT_HINTS[layout]}: {problem}')
        if known is not None:
            _warn_counts(root, known)
        _move_into_place(root, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def fetch(known, data_root, base, *, timeout=TIMEOUT):
    """Downloads and extracts a known set into ``<data_root>/<name>``; returns it.
    An archive already at ``<data_root>/<name><ext>`` is used without download."""
    os.makedirs(data_root, exist_ok=True)
    target = os.path.join(data_root, known.name)
    archive = target + known.extension
    url = known.url(base)
    hint = f'; to use your own copy, put it under {layout_hint(target, known.layout)}'
    if not os.path.isfile(archive):
        logger.info('downloading %s to %s', url, archive)
        download(url, archive, timeout=timeout, hint=hint)
    try:
        extract(archive, target, known.layout, known)
    except DatasetError as e:
        os.remove(archive)  # unusable: a later run downloads it again
        raise DatasetError(f'{e} (deleted the archive){hint}') from None
    except OSError as e:
        raise DatasetError(f'could not extract {archive} ({_reason(e)})') from None
    os.remove(archive)
    return target


# ---------------------------------------------------------------------------
# The built-in dataset shapes2stripes, a tiny horse2zebra.
#
# Domain A: one plain coloured shape (circle, square or triangle, random size,
# position, rotation and colour) on a plain light background. Domain B: the
# same kind of shape, its colour crossed by near-black zebra stripes (period
# STRIPE_PERIOD pixels, random angle within 30 degrees of vertical). 64x64 RGB
# PNGs. trainA and trainB are drawn independently (unpaired). testA/NNNN.png
# and testB/NNNN.png show the SAME shape, plain and striped: the ground truth
# of the translation A -> B (see ground_truth_pairs). The paired variant
# (shapes2stripes_paired, for pix2pix) has train/ and test/ files plain|striped
# side by side (128x64); its test files are the unpaired test pairs.

SHAPES_SEED = 20170330  # fixed, not cfg.seed: the data are the same on every machine
SHAPES_SIZE = 64
STRIPE_PERIOD = 8.0
SHAPES_TRAIN, SHAPES_TEST = 200, 50  # images per domain
_SUPERSAMPLE = 4
_SHAPE_KINDS = ('circle', 'square', 'triangle')
_STREAMS = {'trainA': 0, 'trainB': 1, 'test': 2, 'train_paired': 3}


@dataclasses.dataclass(frozen=True)
class Shape:
    """One drawing: geometry in pixels of a ``size`` image, colours in 0..255."""

    kind: str
    center: tuple
    radius: float
    rotation: float
    color: tuple
    background: tuple
    stripe_angle: float
    stripe_phase: float


def _hsv(h, s, v):
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h, s, v))


def random_shape(rng, size=SHAPES_SIZE):
    """Draws a Shape from ``rng`` (a numpy Generator), scaled to ``size``."""
    scale = size / SHAPES_SIZE
    kind = _SHAPE_KINDS[rng.integers(len(_SHAPE_KINDS))]
    radius = rng.uniform(11.0, 21.0) * scale
    margin = 1.25 * radius + 2 * scale
    center = tuple(rng.uniform(margin, size - margin, size=2))
    rotation = rng.uniform(0, 2 * math.pi)
    color = _hsv(rng.uniform(), rng.uniform(0.55, 1.0), rng.uniform(0.75, 1.0))
    background = _hsv(rng.uniform(), rng.uniform(0.0, 0.12), rng.uniform(0.86, 0.97))
    stripe_angle = rng.uniform(-math.pi / 6, math.pi / 6)
    stripe_phase = rng.uniform(0, STRIPE_PERIOD) * scale
    return Shape(kind, center, radius, rotation, color, background, stripe_angle, stripe_phase)


def _shape_mask(shape, size, ss):
    """bool [size*ss, size*ss]: the shape, drawn at ss times the resolution."""
    mask = Image.new('L', (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, r = shape.center[0] * ss, shape.center[1] * ss, shape.radius * ss
    if shape.kind == 'circle':
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        corners, reach = (4, 1.13) if shape.kind == 'square' else (3, 1.25)
        draw.polygon([(cx + reach * r * math.cos(shape.rotation + 2 * math.pi * k / corners),
                       cy + reach * r * math.sin(shape.rotation + 2 * math.pi * k / corners))
                      for k in range(corners)], fill=255)
    return np.asarray(mask) > 127


def render_shape(shape, size=SHAPES_SIZE, striped=False):
    """The PIL RGB image [size, size] of ``shape``, plain or striped; edges are
    antialiased by drawing at 4x and averaging 4x4 blocks."""
    ss = _SUPERSAMPLE
    mask = _shape_mask(shape, size, ss)
    fill = np.empty(mask.shape + (3,))
    fill[:] = shape.color
    if striped:
        y, x = (np.mgrid[0:size * ss, 0:size * ss] + 0.5) / ss
        across = x * math.cos(shape.stripe_angle) + y * math.sin(shape.stripe_angle)
        period = STRIPE_PERIOD * size / SHAPES_SIZE
        dark = np.floor((across + shape.stripe_phase) / (period / 2)) % 2 == 1
        fill[dark] = np.asarray(shape.color) * 0.12
    pixels = np.where(mask[..., None], fill, np.asarray(shape.background))
    return Image.fromarray(np.round(pixels).astype(np.uint8), 'RGB').reduce(ss)


def _shape_for(stream, index, size):
    return random_shape(np.random.default_rng([SHAPES_SEED, _STREAMS[stream], index]), size)


def _side_by_side(left, right):
    pair = Image.new('RGB', (left.width + right.width, left.height))
    pair.paste(left, (0, 0))
    pair.paste(right, (left.width, 0))
    return pair


def _write_shapes(folder, n_train, n_test, size, paired):
    """Writes the layout of generate_shapes2stripes into the existing ``folder``."""
    def save(image, sub, index):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        image.save(os.path.join(folder, sub, f'{index:04d}.png'), format='PNG')

    for i in range(n_test):
        shape = _shape_for('test', i, size)
        plain, striped = render_shape(shape, size), render_shape(shape, size, striped=True)
        if paired:
            save(_side_by_side(plain, striped), 'test', i)
        else:
            save(plain, 'testA', i)
            save(striped, 'testB', i)
    for i in range(n_train):
        if paired:
            shape = _shape_for('train_paired', i, size)
            save(_side_by_side(render_shape(shape, size), render_shape(shape, size, True)),
                 'train', i)
        else:
            save(render_shape(_shape_for('trainA', i, size), size), 'trainA', i)
            save(render_shape(_shape_for('trainB', i, size), size, True), 'trainB', i)


def generate_shapes2stripes(folder, *, n_train=None, n_test=None, size=SHAPES_SIZE,
                            paired=False):
    """Generates shapes2stripes into ``folder`` unless it exists; returns folder.

    Unpaired: trainA/, trainB/ (n_train each, default SHAPES_TRAIN), testA/,
    testB/ (n_test each, default SHAPES_TEST; pairs by file name). Paired:
    train/, test/ of plain|striped images [size, 2*size]. Deterministic: the
    same arguments give the same bytes. The files are written into a
    temporary sibling folder that is renamed into place when complete, so a
    killed run leaves no half-written dataset.
    """
    if os.path.isdir(folder):
        return folder
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f'.{os.path.basename(folder)}.tmp-', dir=parent)
    try:
        _write_shapes(scratch, SHAPES_TRAIN if n_train is None else n_train,
                      SHAPES_TEST if n_test is None else n_test, size, paired)
        os.chmod(scratch, 0o755)
        try:
            os.rename(scratch, folder)
        except OSError:
            if not os.path.isdir(folder):  # else another process finished first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def prepare_builtin(data_root, *, paired=False):
    """``<data_root>/shapes2stripes`` (or ``shapes2stripes_paired``), generated on first use."""
    folder = os.path.join(data_root, BUILTIN + ('_paired' if paired else ''))
    if not os.path.isdir(folder):
        logger.info('generating the built-in dataset %s', folder)
    return generate_shapes2stripes(folder, paired=paired)


def ground_truth_pairs(folder, split='test'):
    """[(path in <split>A, path in <split>B)] for the files of the same relative
    name in both domains, sorted.

    The scoring contract of shapes2stripes: sample.py translates
    ``testA/NNNN.png`` with G_A and compares the result with
    ``testB/NNNN.png``, the same shape striped (and testB -> testA for G_B).
    Works for any unaligned folder whose test domains share file names.
    """
    a_dir, b_dir = os.path.join(folder, split + 'A'), os.path.join(folder, split + 'B')
    b_paths = {os.path.relpath(p, b_dir): p for p in list_images(b_dir)}
    return [(a, b_paths[os.path.relpath(a, a_dir)]) for a in list_images(a_dir)
            if os.path.relpath(a, a_dir) in b_paths]
