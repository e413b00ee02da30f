"""Re-measures the numbers README.md states about the quick start, on the
code of this checkout: ``python tools/readme_numbers.py [--max_steps N]``.

Runs the Quick start's training (presets/quickstart.flags) in a temporary
folder, then sample.py on it, and prints the commit, the training time and
iterations/s, and sample.py's scores (A->B and B->A L1 and PSNR, and the
output = input baseline), as the README quotes them. The machine is shared:
the time depends on what else runs; the scores on the code and the seed.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, cwd):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    if done.returncode:
        sys.exit(f'{" ".join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}')
    return done.stdout, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--max_steps', type=int, default=0, help='0: the preset (2000)')
    options = parser.parse_args()
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix='readme-numbers-') as work:
        steps = [f'--max_steps={options.max_steps}'] if options.max_steps else []
        train, seconds = run([os.path.join(ROOT, 'train.py'), '--flagfile',
                              os.path.join(ROOT, 'presets', 'quickstart.flags'), *steps], work)
        total = int(re.findall(r'Done: (\d+) steps', train)[-1])
        sample, _ = run([os.path.join(ROOT, 'sample.py'), '--run', 'runs/quickstart'], work)
    print(f'commit {commit}: {total} iterations in {seconds / 60:.1f} minutes '
          f'({total / seconds:.2f} iterations/s, dataset generation and start-up included)')
    for line in sample.splitlines():
        if re.match(r'\s+(A->B|B->A): L1', line):
            print(line.strip())


if __name__ == '__main__':
    main()
