"""Prints the flag tables of README.md from config.py, the single source of
defaults: ``python tools/flags_table.py``. A test checks that the README
lists every flag."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import config  # noqa: E402


def table(options):
    rows = ['| flag | default | meaning |', '|---|---|---|']
    for name, option in options.items():
        default = f"'{option.default}'" if option.type is str else option.default
        choices = f'; choices: {", ".join(option.choices)}' if option.choices else ''
        text = (option.help_with_range() + choices).replace('<', '&lt;').replace('|', '\\|')
        rows.append(f'| `--{name}` | `{default}` | {text} |')
    return '\n'.join(rows)


if __name__ == '__main__':
    # _flag_options: every model's settings, as `python train.py --help` shows them.
    print('#### train.py\n\n' + table(config._flag_options()) + '\n')
    print('#### sample.py\n\n' + table(config.SampleConfig.options()) + '\n')
    print('#### bench.py (besides the model flags of train.py)\n\n'
          + table(config.BenchConfig.options()))
