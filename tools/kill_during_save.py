"""Kills train.py (SIGKILL) at random moments of a run that saves at every
step, over and over, and checks after each kill that nothing saved is lost:

* the newest complete checkpoint on disk (checkpoints.complete_checkpoints)
  reads whole: every value, global_step equal to its step, all finite, and
  its host state loads (or is absent);
* the next train.py resumes from exactly that checkpoint, and removes the
  leftovers of the killed save (runs.leftovers) before it saves again;
* at the end, after a last SIGTERM, no leftover remains.

Not part of the test suite (minutes); tests/test_train.py kills twice.

    python tools/kill_during_save.py --kills 25      # prints a summary, exit 0 if all held

Run it from the repository root (or anywhere: it finds train.py beside it).
"""

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from cyclegan_tf.data import shapes
from cyclegan_tf.running import checkpoints, runs, session

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = ['--crop_size=32', '--load_size=32', '--ngf=8', '--ndf=8', '--netG=resnet_6blocks',
        '--pool_size=4', '--save_freq=1', '--keep_checkpoints=3', '--max_steps=100000',
        '--print_freq=1', '--summary_freq=0', '--display_freq=0']


class Train:
    """train.py in a subprocess; its stdout lines collected with their times."""

    def __init__(self, args):
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        self.process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip('\n')))

    def wait_for(self, pattern, count=1, timeout=600):
        """The times of the first ``count`` lines matching ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [(t, line) for t, line in list(self.lines) if re.search(pattern, line)]
            if len(found) >= count:
                return found[:count]
            if self.process.poll() is not None:
                time.sleep(0.2)
                if len([1 for _, line in self.lines if re.search(pattern, line)]) < count:
                    break
            time.sleep(0.01)
        raise RuntimeError(f'train.py printed no {pattern!r}:\n' + '\n'.join(
            line for _, line in self.lines[-30:]))


def check_newest(directory):
    """The newest complete checkpoint, read whole; raises AssertionError if it is not."""
    import tensorflow as tf

    complete, incomplete = checkpoints.complete_checkpoints(directory)
    assert complete, f'no complete checkpoint in {directory}: {incomplete}'
    newest = complete[-1]
    reader = tf.compat.v1.train.load_checkpoint(newest)
    values = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    assert int(values['global_step']) == runs.step_of(newest), newest
    assert all(np.all(np.isfinite(v)) for v in values.values()
               if np.issubdtype(np.asarray(v).dtype, np.floating)), newest
    host = runs.load_host_state(newest)  # raises CheckpointError if unreadable
    assert host is None or 'model/pool_A/rng' in host, sorted(host)
    return newest, [p for p, _ in incomplete]


def main(argv=None):
    session.quiet_tensorflow()  # before anything imports TensorFlow
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kills', type=int, default=25)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workdir', default='', help='default: a temporary folder')
    options = parser.parse_args(argv)
    rng = random.Random(options.seed)
    work = options.workdir or tempfile.mkdtemp(prefix='kill_during_save-')
    data_root = os.path.join(work, 'data')
    shapes.generate_shapes2stripes(os.path.join(data_root, shapes.BUILTIN), n_train=2,
                                   n_test=1)
    args = [f'--runs_dir={os.path.join(work, "runs")}', f'--data_root={data_root}',
            '--name=k', *TINY]
    directory = runs.checkpoint_dir(os.path.join(work, 'runs', 'k'))
    expected, stats = None, {'kills': 0, 'left_leftovers': 0, 'left_incomplete': 0,
                             'state_named_another': 0, 'leftover_kinds': set()}
    for kill in range(options.kills + 1):
        train = Train(args)
        if expected is not None:  # resumes from the newest complete checkpoint of the last kill
            (_, line), = train.wait_for(r'^Resuming ', 1)
            assert f'from {expected} ' in line, (line, expected)
        if kill == options.kills:
            train.wait_for(r'^saved ', 1)
            train.process.terminate()  # SIGTERM: saves and exits 0
            assert train.process.wait(timeout=300) == 0, train.lines[-5:]
            break
        # A step and its save take T, the save last: kill at a random moment
        # of the next T, every other time in its last 40%, where the save is.
        (first, _), (second, _) = train.wait_for(r'^saved ', 2)
        period = second - first
        time.sleep(rng.uniform(0.0, period) if kill % 2 else rng.uniform(0.6, 1.0) * period)
        train.process.kill()
        train.process.wait()
        stats['kills'] += 1
        left = runs.leftovers(directory)
        newest, incomplete = check_newest(directory)
        named, _ = checkpoints.named_checkpoint(directory)
        stats['left_leftovers'] += bool(left)
        stats['left_incomplete'] += bool(incomplete)
        stats['state_named_another'] += named != newest
        stats['leftover_kinds'].update(re.sub(r'\d+', 'N', name) for name in left)
        notes = [f'newest complete {os.path.basename(newest)}']
        if named != newest:
            notes.append(f'checkpoints/checkpoint names {os.path.basename(named or "nothing")}')
        if left:
            notes.append('leftovers ' + ', '.join(left))
        print(f'kill {kill + 1}: ' + '; '.join(notes), flush=True)
        expected = newest
        for name in left:  # the next start removes them
            assert os.path.exists(os.path.join(directory, name))
    assert not runs.leftovers(directory), runs.leftovers(directory)
    stats['leftover_kinds'] = sorted(stats['leftover_kinds'])
    print(f'all held: {stats}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
