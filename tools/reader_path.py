"""The lines a reader goes through to see how a model's graph is built: every
top-level function, class and constant of the package that the model's class
refers to, directly or through what it refers to (its base class, the
networks, their ops, the losses, whatever they call), by file, except the
input pipeline (the data layer feeds the graph; it is not the model).

    python tools/reader_path.py [models/cycle_gan.py:CycleGAN]

Names are followed through the module's imports (``from cyclegan_tf.x import
y`` and ``y.name``) and within a module; TensorFlow, numpy and the standard
library are not followed. Prints lines per file and the total."""

import ast
import collections
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SKIP = ('tests', 'tools', 'venv', '.venv', 'build', 'runs', 'datasets')


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def load():
    """module -> (its top-level definitions name -> node, its imports alias -> module)."""
    modules = {}
    for path in ROOT.rglob('*.py'):
        if path.relative_to(ROOT).parts[0] in SKIP:
            continue
        tree = ast.parse(path.read_text())
        defs, imports = {}, {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defs[node.name] = node
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        defs[target.id] = node
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    imports[alias.asname or alias.name] = (alias.name.removeprefix('cyclegan_tf.'),
                                                           None)
            if isinstance(node, ast.ImportFrom) and node.module:
                base = node.module.removeprefix('cyclegan_tf').lstrip('.')
                for alias in node.names:
                    full = f'{base}.{alias.name}'.lstrip('.')
                    imports[alias.asname or alias.name] = (full, None) if not base or \
                        (ROOT / (full.replace('.', '/') + '.py')).exists() else (base, alias.name)
        modules[module_name(path)] = (defs, imports, path)
    return modules


def references(node):
    """(alias, attribute) and (name, None) pairs that ``node`` mentions."""
    for child in ast.walk(node):
        if isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name):
            yield child.value.id, child.attr
        elif isinstance(child, ast.Name):
            yield child.id, None


def reader_path(start_module, start_name, *, skip=()):
    """file -> lines of the definitions reached from ``start_name`` of
    ``start_module``, not following into the modules ``skip``."""
    modules = load()
    seen, todo = set(), [(start_module, start_name)]
    while todo:
        module, name = todo.pop()
        if (module, name) in seen or module not in modules or name not in modules[module][0] \
                or module in skip:
            continue
        seen.add((module, name))
        defs, imports, _ = modules[module]
        for head, attr in references(defs[name]):
            if head in defs:
                todo.append((module, head))
            elif head in imports:
                target, member = imports[head]
                todo.append((target, member) if member else (target, attr))
    lines = collections.Counter()
    for module, name in seen:
        node = modules[module][0][name]
        lines[str(modules[module][2].relative_to(ROOT))] += node.end_lineno - node.lineno + 1
    return lines


if __name__ == '__main__':
    where, _, name = (sys.argv[1] if len(sys.argv) > 1 else 'models/cycle_gan.py:CycleGAN') \
        .partition(':')
    data = {name for name in load() if name.split('.')[0] in ('data', 'datasets')}
    lines = reader_path(module_name(ROOT / where), name, skip=data)
    for path, count in sorted(lines.items()):
        print(f'{count:6d}  {path}')
    print(f'{sum(lines.values()):6d}  in {len(lines)} files')
