"""cyclegan_tf: the repository's modules, installed by ``pip install .`` as one package.

In the repository this file does nothing: the scripts run as
``python train.py`` and import each other by their plain names
(``import config``). Installed, the same files are the package cyclegan_tf,
and importing it makes those plain imports work without a generic name
(config, data, model, train, ...) at the top level of site-packages:

- this package's folder goes first on sys.path, so ``import config`` inside
  the modules finds ours, wherever the program runs (a config.py in the
  current folder does not shadow it);
- ``cyclegan_tf.<module>`` is the module itself, not a second copy:
  ``from cyclegan_tf import inference`` and ``import cyclegan_tf.inference``
  give the object that ``import inference`` inside sample.py gets, so its
  classes and the registry's tables exist once;
- ``python -m cyclegan_tf.train ARGS`` runs train.py as ``python train.py
  ARGS`` does in the repository (the console commands are in cli.py).

The price: after ``import cyclegan_tf`` the plain names of its modules are
taken in that Python process; a program with its own module of one of those
names that is already imported gets an ImportError here, in one line.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def module_names():
    """The plain names of the package's modules: its .py files."""
    return {name[:-3] for name in os.listdir(HERE)
            if name.endswith('.py') and name != '__init__.py'}


def put_first_on_path():
    """Makes this folder sys.path[0], so the modules' plain imports find ours."""
    if sys.path[:1] != [HERE]:
        while HERE in sys.path:
            sys.path.remove(HERE)
        sys.path.insert(0, HERE)


def check_no_other_modules():
    """Raises ImportError if a module of one of our names came from elsewhere."""
    for name in sorted(module_names()):
        module = sys.modules.get(name)
        path = getattr(module, '__file__', None) or ''
        if module is not None and os.path.dirname(os.path.abspath(path)) != HERE:
            raise ImportError(f'cyclegan_tf needs the module name {name!r}, but {name!r} is '
                              f'already imported from {path or "elsewhere"}; import cyclegan_tf '
                              'before it, or rename it')


class _SameModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``cyclegan_tf.X`` as the plain module X (one object under both names)."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition('.')
        if package == __name__ and name in module_names():
            return importlib.util.spec_from_loader(
                fullname, self, origin=os.path.join(HERE, name + '.py'))
        return None

    def create_module(self, spec):
        module = importlib.import_module(spec.name.rpartition('.')[2])
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module):
        # The import machinery has set module.__spec__ to our alias spec: give the module its own.
        module.__spec__ = module.__spec__.loader_state

    def get_code(self, fullname):
        """For ``python -m cyclegan_tf.train``: train.py's code, run as __main__."""
        name = fullname.rpartition('.')[2]
        return importlib.util.find_spec(name).loader.get_code(name)


def __getattr__(name):
    """``cyclegan_tf.inference`` without importing it first."""
    if name in module_names():
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


if __package__:  # imported as the package cyclegan_tf, not as a plain module
    put_first_on_path()
    check_no_other_modules()
    if not any(isinstance(finder, _SameModule) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SameModule())
