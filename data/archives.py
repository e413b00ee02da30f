"""Extracting a downloaded dataset archive (zip or tar) safely.

Archives are checked entry by entry before anything is
extracted (no absolute paths, no ``..``, no links leaving the archive, no
device files; in all no more than ``MAX_EXPANSION`` times the archive's size
plus ``EXPANSION_ALLOWANCE``, and at most ``MAX_ENTRIES`` entries), extracted
into a temporary folder inside data_root, checked against the layout and
renamed into place; the archive is deleted afterwards, like the official
scripts do. :func:`read_member` reads one file of a tar (a model of
an archive of several) after the same checks of every entry.
"""

import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile

from cyclegan_tf.data.download import reason
from cyclegan_tf.data.layouts import (
    LAYOUT_FOLDERS,
    LAYOUT_HINTS,
    DatasetError,
    is_hidden,
    layout_problem,
    list_images,
)

logger = logging.getLogger(__name__)

# Archives are refused, before anything is extracted, when their entries
# declare more than MAX_EXPANSION times the archive's size plus
# EXPANSION_ALLOWANCE (an 875 KB zip of zeros declared 201 MB), or more than
# MAX_ENTRIES entries. The official sets are JPEG and PNG files, which do not
# compress: they expand by about 1.0 to 1.1, and the largest, edges2handbags,
# has about 139,000 files.
MAX_EXPANSION = 20
EXPANSION_ALLOWANCE = 64 << 20  # bytes
MAX_ENTRIES = 500_000


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


def _checked_tar_members(tar, archive):
    """The entries of the open ``tar`` (the file ``archive``), once each is
    safe to extract and they are not too many or too large."""
    members = tar.getmembers()
    for member in members:
        problem = _tar_problem(member)
        if problem:
            raise DatasetError(f'unsafe entry {member.name!r} in {archive} ({problem})')
    _check_expansion(archive, [member.size for member in members])
    return members


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
            members = _checked_tar_members(tar, archive)
            # The 'data' filter (Python >= 3.10.12) checks the same again.
            safety = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
            tar.extractall(folder, members=members, **safety)


def _content_root(folder):
    """The dataset inside an extracted archive: the official ones wrap it in
    a top folder ``<name>/``; others put trainA/ ... at the top."""
    entries = [e for e in os.listdir(folder) if not is_hidden(e)]
    if (len(entries) == 1 and entries[0] not in LAYOUT_FOLDERS
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
            raise DatasetError(f'{archive} is not a valid archive ({reason(e)})') from None
        root = _content_root(scratch)
        problem = layout_problem(root, layout)
        if problem:
            problem = problem.replace(root, target)
            raise DatasetError(f'{archive} does not hold the expected layout '
                               f'{LAYOUT_HINTS[layout]}: {problem}')
        if known is not None:
            _warn_counts(root, known)
        _move_into_place(root, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _checked_member(tar, archive, name, max_size):
    """The regular file ``name`` of the open ``tar``, once every entry passed
    the checks of :func:`extract` and the file is at most ``max_size`` bytes."""
    members = _checked_tar_members(tar, archive)
    # Written ./name by some tar tools; of two entries of one name, tar -x keeps the last.
    found = [member for member in members if posixpath.normpath(member.name) == name]
    if not found:
        raise DatasetError(f'{archive} holds no {name}')
    member = found[-1]
    if not member.isfile():
        raise DatasetError(f'{name} in {archive} is not a regular file')
    if member.size > max_size:
        raise DatasetError(f'{name} in {archive} has {_mib(member.size)}, more than '
                           f'{_mib(max_size)}: refused')
    return member


def read_member(archive, name, *, max_size):
    """The bytes of the file ``name`` of the tar ``archive`` (gzip and the
    like too), reading only that file. Raises DatasetError for an invalid
    archive, an unsafe entry anywhere in it (see :func:`extract`), no such
    file, or one of more than ``max_size`` bytes."""
    try:
        with tarfile.open(archive, 'r:*') as tar:
            member = _checked_member(tar, archive, name, max_size)
            with tar.extractfile(member) as f:
                return f.read(member.size)
    except (tarfile.TarError, EOFError, ValueError) as e:
        raise DatasetError(f'{archive} is not a valid archive ({reason(e)})') from None
