"""Downloading a file over HTTP(S), resumably, the lock that keeps two
processes from fetching the same dataset at once, and the cache folder of
downloads kept for every run (:func:`cache_dir`, :func:`cached_download`).

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
the ``.part`` is deleted.
"""

import contextlib
import http.client
import logging
import os
import re
import socket
import urllib.error
import urllib.request

import tqdm

from cyclegan_tf import config
from cyclegan_tf.data.layouts import DatasetError

try:
    import fcntl
except ImportError:  # Windows: no download lock
    fcntl = None

logger = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 5
TIMEOUT = 60.0  # seconds, per socket operation
_USER_AGENT = 'cyclegan-tf-datasets'
CACHE_FOLDER = 'cyclegan-tf'


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


def reason(error):
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
                logger.warning('download of %s cut off (%s)', desc, reason(e))
        return f.tell()


def _remove(path):
    if os.path.exists(path):
        os.remove(path)


def _announced(response, offset, expected):
    """(the offset the response's body starts at, the file's size or None)
    of a response to a request from ``offset``; None when a 206 does not
    continue the part, or announces another size than ``expected``."""
    if response.status == 206:
        first, total = _content_range(response.headers.get('Content-Range')) or (-1, None)
        if first != offset or None not in (expected, total) and total != expected:
            return None
        return offset, total
    length = response.headers.get('Content-Length')  # 200: the whole file, asked for or not
    return 0, int(length) if length and length.isdigit() else None


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
            raise DatasetError(f'could not download {url} ({reason(e)}){hint}') from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            kept = f' (partial download kept in {part}; run again to resume)' if offset else ''
            raise DatasetError(f'could not download {url} ({reason(e)}){kept}{hint}') from None
        with response:
            announced = _announced(response, offset, expected)
            if announced is None:  # not the continuation of the part, or of another file
                _remove(part)
                contradicted, expected = True, None
                continue
            offset, expected = announced
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
# The cache folder.

def cache_dir():
    """``$XDG_CACHE_HOME/cyclegan-tf``, by default ``~/.cache/cyclegan-tf``."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, CACHE_FOLDER)


def cached_download(url, path, *, hint=''):
    """``path``, downloaded from ``url`` first (:func:`download`) unless it is
    there; one process at a time downloads it (:func:`download_lock`), and a
    process that waited for another uses the other's file."""
    if os.path.isfile(path):
        return path
    folder, name = os.path.split(path)
    with download_lock(folder, name):
        if not os.path.isfile(path):
            download(url, path, hint=hint)
    return path
