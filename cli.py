"""The console commands of an installed cyclegan-tf (``pip install .``).

``cyclegan-train ARGS`` is ``python train.py ARGS`` in the repository, and
likewise cyclegan-sample (sample.py), cyclegan-evaluate (evaluate.py),
cyclegan-bench (bench.py), cyclegan-export (export.py) and
cyclegan-import-torch (import_torch.py); setup.cfg declares them. Each
imports cyclegan_tf.cli, so the package's __init__.py has put the package's
folder first on sys.path: the scripts' plain imports (``import config``) find
the package's modules whatever the current folder holds. Then it calls the
script's main().

Presets: a relative ``--flagfile`` path that is not in the current folder but
is in the package is read from the package, so the README's
``--flagfile presets/quickstart.flags`` works from any folder.
"""

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def package_path(path):
    """``path`` (a --flagfile value) as a file of the package if it is relative,
    missing from the current folder and present in the package; else ``path``."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    installed = os.path.join(HERE, path)
    return installed if os.path.isfile(installed) else path


def resolve_flagfiles(args):
    """``args`` with each --flagfile value (``--flagfile=F`` or ``--flagfile F``,
    one or two dashes) passed through package_path."""
    resolved, args = [], list(args)
    while args:
        arg = args.pop(0)
        name, equals, value = arg.partition('=')
        if name in ('--flagfile', '-flagfile') and equals:
            arg = f'{name}={package_path(value)}'
        elif arg in ('--flagfile', '-flagfile') and args:
            resolved.append(arg)
            arg = package_path(args.pop(0))
        resolved.append(arg)
    return resolved


def run(script, command, args):
    """Runs ``script``.py's main() as the console command ``command`` with the
    arguments ``args``; returns its exit status."""
    try:
        module = importlib.import_module(script)
    except ModuleNotFoundError as e:
        if e.name != script:
            raise
        print(f'{command}: error: this installation has no {script}.py; install a version '
              'of cyclegan-tf that has it', file=sys.stderr)
        return 2
    return module.main([command] + resolve_flagfiles(args))


def train():
    return run('train', 'cyclegan-train', sys.argv[1:])


def sample():
    return run('sample', 'cyclegan-sample', sys.argv[1:])


def evaluate():
    return run('evaluate', 'cyclegan-evaluate', sys.argv[1:])


def bench():
    return run('bench', 'cyclegan-bench', sys.argv[1:])


def export():
    return run('export', 'cyclegan-export', sys.argv[1:])


def import_torch():
    return run('import_torch', 'cyclegan-import-torch', sys.argv[1:])
