"""Shared test fixtures: a fresh graph per test, the sample data, tiny configs."""

import contextlib
import http.server
import os
import pathlib
import re
import threading
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parents[1]
tf.compat.v1.disable_eager_execution()

# Tiny real images committed with the tests (tests/data/README.md).
SAMPLE_DATA = ROOT / 'tests' / 'data'
# ../shared/fixtures holds reference files too large for the repository
# (official PyTorch networks and outputs, the FID Inception weights).
SHARED_FIXTURES = pathlib.Path(os.environ.get('CYCLEGAN_SHARED_FIXTURES',
                                              ROOT.parent / 'shared' / 'fixtures'))


def prepare(cfg, split='train'):
    """datasets.prepare of ``cfg`` with its model's layout (registry.py), as train.py calls it."""
    from cyclegan_tf import registry
    from cyclegan_tf.data import datasets

    return datasets.prepare(cfg, split, layout=registry.of(cfg).data)


def train_pipeline(cfg, split='train', *, root=None, **kwargs):
    """pipeline.input_pipeline of ``cfg``'s dataset as train.py builds it:
    its folder from datasets.prepare (``root`` to give one), its layout the
    model's (registry.py)."""
    from cyclegan_tf import registry
    from cyclegan_tf.data import pipeline

    root = prepare(cfg, split) if root is None else root
    return pipeline.input_pipeline(cfg, split, root=root, layout=registry.of(cfg).data, **kwargs)


@pytest.fixture
def graph():
    """A fresh default graph, so no test sees another's variables."""
    g = tf.Graph()
    with g.as_default():
        yield g


@pytest.fixture
def sample_data():
    """tests/data: horse2zebra_tiny (unaligned, 48x48), facades_tiny (aligned,
    64x32 A|B) and misc/ (an RGBA PNG, a non-square JPEG). Read only: build
    archives or other layouts from it under tmp_path."""
    return SAMPLE_DATA


@pytest.fixture
def fixtures_dir():
    """``../shared/fixtures``: skips the test where it is absent, with a
    reason naming it, and fails instead when CI=true (CI always has it)."""
    if not SHARED_FIXTURES.is_dir():
        message = (f'reference fixtures not found at {SHARED_FIXTURES} '
                   f'(../shared/fixtures, too large for the repository)')
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_FIXTURES


# ---------------------------------------------------------------------------
# A local file server on 127.0.0.1 with Range support and scripted
# misbehaviour: downloads are tested against it, never the network.

class FileHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (url path -> bytes). Per path, ``server.tricks``
    may hold: 'cut_once' (send only that many bytes, once), 'cut_always' (at
    most that many bytes per response), 'extra_length'
    (announce more bytes than sent), 'ignore_range', 'stall' (seconds),
    'redirect' (a URL to send a 302 to)."""

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get('Range')))
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        tricks = server.tricks.get(self.path, {})
        time.sleep(tricks.get('stall', 0))
        if 'redirect' in tricks:
            self.send_response(302)
            self.send_header('Location', tricks['redirect'])
            self.end_headers()
            return
        start, wanted = 0, self.headers.get('Range')
        if wanted and not tricks.get('ignore_range'):
            start = int(re.fullmatch(r'bytes=(\d+)-', wanted).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header('Content-Range', f'bytes */{len(body)}')
                self.end_headers()
                return
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{len(body) - 1}/{len(body)}')
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header('Content-Length', str(len(chunk) + tricks.get('extra_length', 0)))
        self.end_headers()
        cut = tricks.pop('cut_once', tricks.get('cut_always'))
        try:
            self.wfile.write(chunk[:cut] if cut is not None else chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a test of stalls and timeouts): not the server's error

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def file_server(files=None):
    """A FileHandler server on a free port of 127.0.0.1: ``.files`` (url path
    -> bytes), ``.tricks``, ``.requests`` ((path, Range header) of each GET),
    ``.url``."""
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), FileHandler)
    httpd.daemon_threads = True
    httpd.files, httpd.tricks, httpd.requests = dict(files or {}), {}, []
    httpd.url = f'http://127.0.0.1:{httpd.server_address[1]}'
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def server():
    """A file_server for one test."""
    with file_server() as httpd:
        yield httpd
