"""How the commands run: exit statuses, errors of the user's making as one
line, --help, presets.

Every script (train.py, sample.py, ...) runs its body through
:func:`run_command`, as ``python train.py`` in a checkout, ``python -m
cyclegan_tf.train`` or the installed ``cyclegan-train`` (setup.cfg points it
at train.main). A relative ``--flagfile`` path that is not in the current
folder but is in the package is read from the package, so the README's
``--flagfile presets/quickstart.flags`` works from any folder. This module
imports no TensorFlow.
"""

import contextlib
import os
import re
import signal
import sys

from cyclegan_tf import config
from cyclegan_tf.data import layouts
from cyclegan_tf.running import runs

# Errors of the user's making: one line on stderr, exit status 2.
USER_ERRORS = (config.ConfigError, layouts.DatasetError, runs.RunError)


HELP_FLAGS = ('-h', '-help', '--help', '--helpshort', '--helpfull')
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # cyclegan_tf's folder


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# TensorFlow's errors of the machine's or the input's making, not of the
# code's: a file missing or unreadable, a disk or memory full.
INPUT_OP_ERRORS = ('NotFoundError', 'PermissionDeniedError', 'DataLossError',
                   'ResourceExhaustedError')


def print_help(doc, settings):
    """A tool's --help: its docstring ``doc``, then the flags of its Settings class."""
    print(doc)
    print(config.help_text(settings.options(), grouped=False))
    return EXIT_OK


def wants_help(argv):
    """Whether the command line ``argv`` asks for help."""
    return any(arg in HELP_FLAGS for arg in argv[1:])


def tensorflow_error_line(error):
    """The one line to show for a TensorFlow error that is the input's or the
    machine's fault, or None for any other exception (a bug: its traceback
    shows). Those are a USER_ERRORS exception raised inside the graph (by a
    tf.numpy_function of the input pipeline: it arrives as UnknownError) and
    INPUT_OP_ERRORS (a file missing or unreadable, a disk or memory full)."""
    tf = sys.modules.get('tensorflow')
    if tf is None or not isinstance(error, tf.errors.OpError):
        return None
    text = error.message or ''
    names = '|'.join(cls.__name__ for cls in USER_ERRORS)
    inner = re.search(rf'^(?:[\w.]+\.)?(?:{names}): (.+)$', text, re.M)
    if inner:
        return inner.group(1).strip()
    kind = type(error).__name__
    if kind not in INPUT_OP_ERRORS:
        return None
    lines = [re.sub(r'\{\{function_node [^}]*\}\}\s*', '', line).strip()
             for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(
        ('Graph execution error', 'Detected at node', '[[', 'Traceback'))]
    line = ' '.join((lines[0] if lines else kind).split())
    if kind == 'ResourceExhaustedError' and 'OOM' in text:
        line += ' (out of memory: try a smaller --batch_size, --crop_size or --ngf)'
    return f'{line} ({kind})'


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within this context SIGTERM raises KeyboardInterrupt, as Ctrl-C does:
    what a command removes when interrupted (a temporary folder) it removes
    when terminated too, and it exits 130."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(program, body, argv):
    """Runs ``body(argv)`` as the command ``program``; returns its exit status.

    The statuses of every script: what ``body`` returns (0 done); 2 and one
    line on stderr for an error of the user's making (USER_ERRORS, or an
    OSError such as a folder that cannot be written) or TensorFlow's of the
    input or the machine (tensorflow_error_line); 130 for Ctrl-C before the
    body handles it itself. Any other exception is a bug and shows its
    traceback. The lines name the command as it was called (``argv[0]``:
    cyclegan-train for the installed command), else ``program``.
    """
    if argv and argv[0] and not argv[0].startswith('-'):
        program = os.path.basename(argv[0])
    try:
        return body(argv[:1] + resolve_flagfiles(argv[1:]))
    except USER_ERRORS + (OSError,) as e:
        print(f'{program}: error: {runs.one_line(e)}', file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f'{program}: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        line = tensorflow_error_line(e)
        if line is None:
            raise
        print(f'{program}: error: {line}', file=sys.stderr)
        return EXIT_USAGE


def package_path(path):
    """``path`` (a --flagfile value) as a file of the package if it is relative,
    missing from the current folder and present in the package; else ``path``."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    installed = os.path.join(PACKAGE, path)
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
