"""Prints the flag tables of README.md from config.py, the single source of
defaults: ``python tools/flags_table.py``. A test checks that the README
lists every flag."""

from cyclegan_tf import config, registry


def table(options, groups=None):
    """A markdown table of ``options`` (name -> Option), in the order of
    ``groups`` (config.GROUPS) when given, with a row naming each group."""
    rows = ['| flag | default | meaning |', '|---|---|---|']
    order = [(group, names) for group, names in groups.items()] if groups else [(None, options)]
    for group, names in order:
        present = [name for name in names if name in options]
        if group and present:
            rows.append(f'| **{group}** | | |')
        for name in present:
            option = options[name]
            default = f"'{option.default}'" if option.type is str else option.default
            choices = f'; choices: {", ".join(option.choices)}' if option.choices else ''
            text = (option.help_with_range() + choices).replace('<', '&lt;').replace('|', '\\|')
            twin = config._positive_twin(name) if option.type is bool else None
            if twin:
                rows.append(f'| `--{twin}` | `{not option.default}` | {text} |')
                text = f'the official spelling: `--no_{twin}` is `--no{twin}`'
            rows.append(f'| `--{name}` | `{default}` | {text} |')
    return '\n'.join(rows)


def official_table():
    """The official implementation's option names that train.py accepts
    besides its own (config.ALIASES, registry.NOTES, --dataset_mode)."""
    rows = ['| flag | meaning |', '|---|---|']
    rows += [f'| `--{alias}` | the official name of `--{name}` |'
             for alias, name in config.ALIASES.items()]
    rows.append('| `--dataset_mode` | checked against the model\'s data: unaligned, aligned, '
                'colorization |')
    rows += [f'| `--{name}` | accepted, with one line: {line} |'
             for name, (_, line) in registry.NOTES.items()]
    return '\n'.join(rows).replace('<', '&lt;')


if __name__ == '__main__':
    from cyclegan_tf import import_torch

    # _flag_options: every model's settings, as `python train.py --help` shows them.
    print('#### train.py\n\n' + table(registry.flag_options(), config.GROUPS) + '\n')
    print('#### train.py: the official implementation\'s names\n\n' + official_table() + '\n')
    print('#### sample.py\n\n' + table(config.SampleConfig.options()) + '\n')
    print('#### evaluate.py\n\n' + table(config.EvaluateConfig.options()) + '\n')
    print('#### export.py\n\n' + table(config.ExportConfig.options()) + '\n')
    print('#### import_torch.py (besides the model flags of train.py)\n\n'
          + table(import_torch.ImportSettings.options()) + '\n')
    print('#### bench.py (besides the model flags of train.py)\n\n'
          + table(config.BenchConfig.options()) + '\n')
    print('#### demo.py\n\n' + table(config.DemoConfig.options()))
