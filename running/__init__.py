"""Running the commands: TensorFlow's set-up, checkpoints, run folders, and
training on several devices and machines.

    commands.py     exit statuses, errors as one line, --help, --flagfile presets
    session.py      TensorFlow's log level, GPUs, graph mode, session settings
    checkpoints.py  saving checkpoints whole, restoring the newest complete one
    runs.py         run folders: config.json, checkpoint files, the run lock, best
    fileio.py       atomic writes
    replicas.py     the graph side of data parallelism and loss scaling: wraps a model
    cluster.py      the process side: strategies, TF_CONFIG workers, their sessions
"""
