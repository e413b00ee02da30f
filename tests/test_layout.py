"""The package's layout: folders by purpose, imports that only go down, no
import cycle, no import hook, short functions."""

import ast
import pathlib
import re

import pytest

from cyclegan_tf import registry

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ('data', 'evaluation', 'interop', 'models', 'running')
# Every file of models/ is a model (a layer of its own): found, not listed.
MODELS = sorted(f'models.{p.stem}' for p in (ROOT / 'models').glob('*.py')
                if p.stem != '__init__')
SCRIPTS = ('train', 'sample', 'evaluate', 'export', 'bench', 'import_torch', 'demo')
# The layers, bottom first: a module imports only modules of its own layer
# or below (the package __init__.py's table says the same).
LAYERS = [
    ['config', 'running.fileio'],
    ['data.layouts', 'data.download', 'data.archives', 'data.shapes', 'data.pipeline'],
    ['ops'], ['modules'], ['model'], MODELS,
    ['registry'],
    ['data.datasets', 'running.session', 'running.runs', 'running.checkpoints',
     'running.commands', 'running.cluster', 'running.replicas', 'interop.pth',
     'interop.torch_weights', 'evaluation.visuals', 'evaluation.metrics',
     'evaluation.inception', 'evaluation.streaming', 'evaluation.tiling'],
    ['inference'], ['interop.to_onnx'],
    ['evaluation.sampling', 'evaluation.video', 'interop.exporting'],
    list(SCRIPTS),
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def product_modules():
    """module name ('config', 'data.pipeline') -> path, for every module of the package."""
    paths = [*ROOT.glob('*.py'), *(p for f in FOLDERS for p in (ROOT / f).glob('*.py'))]
    modules = {}
    for path in paths:
        name = '.'.join(path.relative_to(ROOT).with_suffix('').parts)
        modules[name.removesuffix('.__init__') if name != '__init__' else ''] = path
    return modules


def imports_of(path, modules):
    """The package modules ``path`` imports, anywhere in it (functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f'{node.module}.{alias.name}' for alias in node.names]
        for name in names:
            if name.startswith('cyclegan_tf.'):
                name = name[len('cyclegan_tf.'):]
                if name in modules and name not in FOLDERS:
                    found.add(name)
    return found


def import_graph():
    """module -> the package modules it imports (folders' __init__.py are docs only)."""
    modules = product_modules()
    graph = {name: imports_of(path, modules) for name, path in modules.items()
             if name and name not in FOLDERS}
    # The registry imports each model class by name (Spec.model_class).
    graph['registry'] |= {spec.model.rsplit('.', 1)[0].lstrip('.')
                          for spec in registry.MODELS.values()}
    return graph


def test_every_module_has_a_layer_and_imports_only_go_down():
    graph = import_graph()
    assert set(graph) - {''} == set(LAYER), 'a module without a layer, or a layer without it'
    for name, imported in graph.items():
        for other in imported:
            assert LAYER[other] <= LAYER[name], f'{name} imports {other}, a layer above it'


def test_no_import_cycle():
    graph = import_graph()
    done, path = set(), []

    def visit(name):
        if name in path:
            raise AssertionError('import cycle: ' + ' -> '.join(path[path.index(name):] + [name]))
        if name in done:
            return
        path.append(name)
        for other in sorted(graph[name]):
            visit(other)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_graph_code_knows_nothing_of_processes_run_folders_or_downloads():
    graph = import_graph()
    below = {'ops', 'modules', 'model', *MODELS}
    reached, todo = set(), set(below)
    while todo:  # everything the graph code imports, directly or not
        name = todo.pop()
        reached.add(name)
        todo |= graph[name] - reached
    assert not reached & {'running.cluster', 'running.session', 'running.runs',
                          'running.checkpoints', 'running.replicas', 'data.datasets',
                          'data.download', 'registry'}


def test_at_most_16_modules_at_the_root_and_each_folder_says_what_lives_there():
    assert len(list(ROOT.glob('*.py'))) <= 16
    for folder in FOLDERS:
        doc = ast.get_docstring(ast.parse((ROOT / folder / '__init__.py').read_text()))
        assert doc and len(doc.splitlines()) >= 3, folder
        for path in (ROOT / folder).glob('*.py'):  # each module of the folder is named there
            assert path.name == '__init__.py' or path.name in doc, (folder, path.name)
    for name in ('runs', 'datasets', 'results'):  # the default output folders
        assert name not in FOLDERS


@pytest.mark.parametrize('name', sorted(set(product_modules()) - {''}))
def test_no_import_hook_and_loggers_named_by_the_package(name):
    text = product_modules()[name].read_text()
    assert not re.search(r'sys\.(path|meta_path)\b', text), name
    assert re.findall(r'getLogger\(([^)]*)\)', text) in ([], ['__name__']), name
    assert 'noqa: E402' not in text, name


def test_scripts_are_leaves():
    graph = import_graph()
    for name, imported in graph.items():
        assert not imported & set(SCRIPTS), f'{name} imports a script'


def test_no_function_is_longer_than_50_lines():
    for name, path in product_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 50, f'{name}.{node.name}: {length} lines'
