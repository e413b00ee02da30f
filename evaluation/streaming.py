"""Translating many files in flat memory: a writer thread, resuming, progress.

sampling.translate reads the images through the tf.data pipeline (its own
threads decode ahead, a bounded prefetch), translates them in the calling
thread and hands the files to write to a :class:`Writer`, a thread behind a
bounded queue: decoding, translating and writing overlap, and what is held
at once does not grow with the number of files.

Resuming (sample.py): every image is written to a temporary name and renamed
(fileio.atomic_write), so a file under its own name is whole. A rerun into
the same folder skips the images whose files are all there, made by the same
settings from the same source file: :func:`resume` keeps a record of both in
``<out>/.sample.json`` and removes the files of images made otherwise before
any new one is written, so a killed run never leaves an old file that a
later one would take as done.
"""

import contextlib
import json
import os
import queue
import sys
import threading

import tqdm

from cyclegan_tf.running import fileio

RECORD = '.sample.json'
QUEUE_DEPTH = 8  # images waiting to be written, at most


class Writer:
    """Runs ``function(*args)`` calls (the files to write) in a thread of
    its own, in order, behind a queue of QUEUE_DEPTH: :meth:`put` blocks
    while it is full. The first error of a call is raised by the next
    :meth:`put` or by :meth:`close` (the calls after it are dropped)."""

    def __init__(self, depth=QUEUE_DEPTH):
        self.queue, self.error = queue.Queue(depth), None
        self.thread = threading.Thread(target=self._work, name='image-writer', daemon=True)
        self.thread.start()

    def _work(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    item[0](*item[1])
                except BaseException as e:  # raised in the caller's thread
                    self.error = e

    def _raise(self):
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def put(self, function, *args):
        self._raise()
        self.queue.put((function, args))

    def close(self):
        """Waits for the queued calls; raises the first error of one."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        self._raise()

    def __enter__(self):
        return self

    def __exit__(self, kind, *exc_info):
        if kind is None:
            self.close()
        else:  # the caller's error is the one to see; what was queued is still written
            with contextlib.suppress(Exception):
                self.close()


def progress_bar(total, desc, enabled=None, unit='img'):
    """A tqdm bar on stderr: count, rate (images/s), elapsed and ETA.
    ``enabled`` None shows it on a terminal only."""
    return tqdm.tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                     mininterval=0.5, smoothing=0.1,
                     disable=None if enabled is None else not enabled)


def source_id(path):
    """What identifies the input file ``path``: its real path, size and mtime."""
    stat = os.stat(path)
    return [os.path.realpath(path), stat.st_size, stat.st_mtime_ns]


def resume(out, settings, rows):
    """The rows already written completely in ``out`` by ``settings``.

    Args:
      out: the results folder.
      settings: a JSON-able dict of what the images depend on besides their
        sources (checkpoint, mode, sizes).
      rows: dict key -> ([source files], [image paths relative to ``out``]).
        ``key`` names a row in every run (its first image's path).
    Returns:
      the set of keys whose images are all there, made from the same source
      files with the same settings. The files of the other rows (but those
      that a kept row shares) are removed, then the record is written,
      before any new image is.
    """
    path = os.path.join(out, RECORD)
    record = read_json_object(path)
    known = record.get('sources', {}) if record.get('settings') == settings else {}
    sources = {key: [source_id(s) for s in files] for key, (files, _) in rows.items()}
    done = {key for key, (_, images) in rows.items()
            if known.get(key) == sources[key]
            and all(os.path.isfile(os.path.join(out, image)) for image in images)}
    kept = {image for key in done for image in rows[key][1]}
    for key, (_, images) in rows.items():
        if key in done:
            continue
        for image in set(images) - kept:  # made otherwise, or part of a row cut short
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out, image))
    with fileio.atomic_write(path, 'w') as f:
        json.dump({'settings': settings, 'sources': {**known, **sources}}, f)
    return done


def read_json_object(path):
    """The JSON object in the file ``path``; {} if it is missing, unreadable or not one."""
    try:
        with open(path) as f:
            record = json.load(f)
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}
