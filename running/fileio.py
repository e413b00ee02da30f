"""Writing files so that a reader sees the old version or the new, never half.

One helper for every file the project writes itself (config.json, host
states, sample PNGs, sample.py's images and index.html)::

    with fileio.atomic_write(path, 'w') as f:
        f.write(text)

TensorFlow-free, so runs.py and config.py can use it before TensorFlow is
imported.
"""

import contextlib
import os

_TEMP_ATTEMPTS = 100


def _temp_name(folder, name):
    return os.path.join(folder, f'.{name}.{os.urandom(4).hex()}.tmp')


def make_temp_dir(folder, name):
    """A new, empty folder beside ``name`` in ``folder``, for files that are
    renamed into place as a whole. Created as os.mkdir creates folders
    (0777 minus the umask), not private as tempfile.mkdtemp's."""
    for _ in range(_TEMP_ATTEMPTS):
        path = _temp_name(folder, name)
        try:
            os.mkdir(path, 0o777)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f'no free temporary folder name for {name} in {folder}')


def _create_temp(folder, name):
    """(fd, path) of a new, empty file beside ``name`` in ``folder``.

    Created as open() creates files, with mode 0666 minus the umask (0644
    for the usual umask 022), like the checkpoints and event files that
    TensorFlow writes beside ours: whoever can read those can read these.
    (tempfile.mkstemp makes 0600 files: other users could read a run's
    checkpoints but not its config.json.)
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    for _ in range(_TEMP_ATTEMPTS):
        path = _temp_name(folder, name)
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f'no free temporary file name for {name} in {folder}')


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Yields a file object to write ``path`` through, atomically.

    The data go to a temporary file in the same folder (created if needed),
    which is flushed, fsynced and renamed over ``path`` when the block ends.
    If the block raises (KeyboardInterrupt included), the temporary file is
    removed and ``path`` is left as it was. ``mode`` is 'wb' or 'w' (text,
    UTF-8).
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f"atomic_write writes with mode 'wb' or 'w', not {mode!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = _create_temp(folder, os.path.basename(path))
    try:
        try:
            f = os.fdopen(fd, mode, **({'encoding': 'utf-8'} if mode == 'w' else {}))
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
