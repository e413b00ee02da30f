"""Imports networks of the official PyTorch CycleGAN, pix2pix and CUT as a run:

    python import_torch.py --pretrained horse2zebra
    python import_torch.py --pth latest_net_G_A.pth [--pth_B latest_net_G_B.pth] --netG ...
    python import_torch.py --from_checkpoints checkpoints/horse2zebra_cyclegan [--epoch 200]

Makes the run folder <runs_dir>/<name> (config.json, checkpoints/model.ckpt-0,
imported.json) that sample.py and train.py use like any other run:

- --pretrained NAME: a published model, downloaded (resumable, size-checked)
  from the official server or --download_url. Each name's architecture and
  direction are known; the file is one generator, imported as G_A (CycleGAN,
  translating as the name says: horse2zebra is horse -> zebra) or G
  (pix2pix, CUT). sat2map and map2sat exist for both: --model pix2pix picks
  pix2pix's. The six CUT and FastCUT models (horse2zebra_cut,
  horse2zebra_fastcut, cat2dog_..., cityscapes_...) come in one archive,
  downloaded once into $XDG_CACHE_HOME/cyclegan-tf/CUT/ and kept for the
  others; each import extracts its generator only. Default --name:
  NAME_pretrained (for CUT the official checkpoints folder's name).
- --pth FILE: a state dict of one generator (G_A, or pix2pix's and CUT's G),
  with the architecture flags of train.py (--model, --netG, --ngf, --norm, --input_nc,
  --output_nc, --no_dropout ...); --pth_B FILE adds CycleGAN's G_B, --pth_D
  FILE the discriminator D (pix2pix, CUT), --pth_F FILE CUT's patch sampler F.
  Default --name: the file's name without .pth.
- --from_checkpoints DIR: a training folder of the official code: the
  architecture and training settings from DIR/train_opt.txt, and every
  network it holds (<epoch>_net_G_A.pth, _G_B, _D_A, _D_B; pix2pix _G, _D;
  --epoch, default latest), so training can go on here with train.py.
  Default --name: the experiment's name. Flags given override train_opt.txt,
  except the architecture's.

Networks not imported keep their fresh initialization; imported.json lists
those imported (runs.imported_networks), so that a direction whose generator
was not imported can be refused. The training state starts anew: step 0, a
fresh optimizer, empty image pools, the learning-rate schedule at epoch 1.
Everything is written into a temporary folder renamed into place at the end;
an existing run folder is never touched.

Exit status: 0 imported; 2 a bad command line, file, download or run folder
(one line on stderr, nothing written).
"""

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile

from absl import flags

from cyclegan_tf import config, registry
from cyclegan_tf.data import archives, datasets, download, layouts
from cyclegan_tf.interop import pth
from cyclegan_tf.running import commands, runs, session

# The published models (scripts/download_cyclegan_model.sh and
# download_pix2pix_model.sh of the official repository): name -> (dataset,
# direction), such that the model's A is the name's source domain (CycleGAN
# sets: A is the first domain of the set's name; monet2photo's B, photos, are
# the style models' input; facades and maps hold photos as A). The dataset is
# where train.py and sample.py (without --input) read images.
PRETRAINED_CYCLEGAN = {
    'apple2orange': ('apple2orange', 'AtoB'), 'orange2apple': ('apple2orange', 'BtoA'),
    'summer2winter_yosemite': ('summer2winter_yosemite', 'AtoB'),
    'winter2summer_yosemite': ('summer2winter_yosemite', 'BtoA'),
    'horse2zebra': ('horse2zebra', 'AtoB'), 'zebra2horse': ('horse2zebra', 'BtoA'),
    'monet2photo': ('monet2photo', 'AtoB'), 'style_monet': ('monet2photo', 'BtoA'),
    'style_cezanne': ('cezanne2photo', 'BtoA'), 'style_ukiyoe': ('ukiyoe2photo', 'BtoA'),
    'style_vangogh': ('vangogh2photo', 'BtoA'),
    'sat2map': ('maps', 'AtoB'), 'map2sat': ('maps', 'BtoA'),
    'cityscapes_photo2label': ('cityscapes', 'AtoB'),
    'cityscapes_label2photo': ('cityscapes', 'BtoA'),
    'facades_photo2label': ('facades', 'AtoB'), 'facades_label2photo': ('facades', 'BtoA'),
    'iphone2dslr_flower': ('iphone2dslr_flower', 'AtoB'),
}
PRETRAINED_PIX2PIX = {
    'edges2shoes': ('edges2shoes', 'AtoB'), 'sat2map': ('maps', 'AtoB'),
    'map2sat': ('maps', 'BtoA'), 'facades_label2photo': ('facades', 'BtoA'),
    'day2night': ('night2day', 'BtoA'),
}
# The published CUT and FastCUT models (taesungp/contrastive-unpaired-translation
# b3ac297: README.md "Pretrained models", experiments/pretrained_launcher.py), named
# as their checkpoints folders without _pretrained: name -> (dataset, direction,
# CUT_mode). All six are one archive, checkpoints/<name>_pretrained/latest_net_G.pth
# each; the launcher gives them the official defaults but these. Deviation: the
# launcher's phase val for cityscapes_cut is its test run's (on CUT's resized val
# set): here phase stays train, the split train.py would fine-tune on.
PRETRAINED_CUT = {
    'cityscapes_cut': ('cityscapes', 'BtoA', 'CUT'),  # labels -> photos
    'cityscapes_fastcut': ('cityscapes', 'BtoA', 'FastCUT'),
    'horse2zebra_cut': ('horse2zebra', 'AtoB', 'CUT'),
    'horse2zebra_fastcut': ('horse2zebra', 'AtoB', 'FastCUT'),
    'cat2dog_cut': ('cat2dog', 'AtoB', 'CUT'),  # AFHQ's cats and dogs: not on the servers
    'cat2dog_fastcut': ('cat2dog', 'AtoB', 'FastCUT'),
}
PRETRAINED = {'cycle_gan': PRETRAINED_CYCLEGAN, 'pix2pix': PRETRAINED_PIX2PIX,
              'cut': PRETRAINED_CUT}
# Their architecture: the official defaults of each model (ngf 64).
PRETRAINED_ARCHITECTURE = {
    'cycle_gan': dict(netG='resnet_9blocks', ngf=64, norm='instance', no_dropout=True,
                      input_nc=3, output_nc=3),
    'pix2pix': dict(netG='unet_256', ngf=64, norm='batch', no_dropout=False, input_nc=3,
                    output_nc=3),
    'cut': dict(netG='resnet_9blocks', ngf=64, normG='instance', no_dropout=True,
                no_antialias=False, no_antialias_up=False, input_nc=3, output_nc=3),
}
PRETRAINED_PATH = {'cycle_gan': 'cyclegan/pretrained_models/{}.pth',
                   'pix2pix': 'pix2pix/models-pytorch/{}.pth',
                   'cut': 'CUT/pretrained_models.tar'}
# CUT's archive is downloaded once into the cache folder (download.cache_dir,
# under its path on the server) and kept for the other names; each import
# extracts its generator only, of at most PRETRAINED_MEMBER_LIMIT bytes (the
# published ones have about 46 MB: 11.4 M float32).
PRETRAINED_MEMBER = 'checkpoints/{}_pretrained/latest_net_G.pth'
PRETRAINED_MEMBER_LIMIT = 256 << 20

# The official networks of each model, as <epoch>_net_<name>.pth.
NETWORKS = {'cycle_gan': ('G_A', 'G_B', 'D_A', 'D_B'), 'pix2pix': ('G', 'D'),
            'colorization': ('G', 'D'), 'cut': ('G', 'D', 'F')}
# Settings read from an official train_opt.txt (same names here), besides the
# architecture (registry.Spec.architecture), whose values must all be understood.
# Older official versions called n_epochs and n_epochs_decay niter and niter_decay.
TRAINING_OPTIONS = ('direction', 'batch_size', 'lr', 'beta1', 'n_epochs', 'n_epochs_decay',
                    'lr_policy', 'lr_decay_iters', 'gan_mode', 'lambda_A', 'lambda_B',
                    'lambda_identity', 'pool_size', 'lambda_L1', 'load_size', 'crop_size',
                    'preprocess', 'no_flip', 'serial_batches', 'init_type', 'init_gain',
                    'CUT_mode', 'lambda_GAN', 'lambda_NCE', 'nce_idt', 'nce_T', 'num_patches',
                    'flip_equivariance', 'nce_includes_all_negatives_from_minibatch')
OLD_NAMES = {'niter': 'n_epochs', 'niter_decay': 'n_epochs_decay'}


class ImportSettings(config.Settings):
    """Settings of import_torch.py, besides the model's (--model, --netG, --name ...)."""

    pretrained = config.Option('', 'import a published model: ' + ', '.join(
        sorted(set().union(*PRETRAINED.values()))))
    pth = config.Option('', "a .pth state dict of one generator (CycleGAN's G_A, pix2pix's G), "
                            'with the architecture flags of train.py')
    pth_B = config.Option('', "with --pth: a .pth state dict of CycleGAN's G_B")
    pth_D = config.Option('', "with --pth: a .pth state dict of the discriminator D (pix2pix, "
                              'CUT), to go on training')
    pth_F = config.Option('', "with --pth: a .pth state dict of CUT's patch sampler F "
                              '(latest_net_F.pth), to go on training')
    from_checkpoints = config.Option('', 'a checkpoints folder of the official training code '
                                         '(train_opt.txt and <epoch>_net_*.pth)')
    epoch = config.Option('latest', 'with --from_checkpoints: the epoch whose networks to import')


class Plan:
    """What to import: the config, the state dicts (network name -> dict), where they come
    from (for imported.json), a downloaded file to delete once imported, and the files
    to delete when the state dicts prove unusable (a published download: the next try
    fetches it again)."""

    def __init__(self, cfg, states, source, downloaded=None, unusable=()):
        self.cfg, self.states, self.source = cfg, states, source
        self.downloaded, self.unusable = downloaded, tuple(unusable)


def _discard(paths):
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # maybe another process's doing
            os.remove(path)


def parse(argv):
    """(ImportSettings, flag values, names of the model flags given) of ``argv``."""
    flag_values = registry.define_flags(flags.FlagValues())
    model_flags = list(flag_values)
    config.define_flags(flag_values, ImportSettings.options())
    config.parse_argv(flag_values, argv)
    settings = config.settings_from_flags(ImportSettings, flag_values)
    modes = [m for m in ('pretrained', 'pth', 'from_checkpoints') if getattr(settings, m)]
    if len(modes) != 1:
        raise config.ConfigError('give one of --pretrained NAME, --pth FILE or '
                                 '--from_checkpoints DIR' + (f' (not --{" and --".join(modes)})'
                                                             if modes else ''))
    for extra in ('pth_B', 'pth_D', 'pth_F'):
        if getattr(settings, extra) and not settings.pth:
            raise config.ConfigError(f'--{extra} goes with --pth')
    if flag_values['epoch'].present and not settings.from_checkpoints:
        raise config.ConfigError('--epoch goes with --from_checkpoints')
    if not re.fullmatch(r'latest|\d+', settings.epoch):
        raise config.ConfigError(f'--epoch is a number or latest, not {settings.epoch!r}')
    given = [name for name in model_flags if flag_values[name].present]
    return settings, flag_values, given


def _given_values(flag_values, given):
    return {name: flag_values[name].value for name in given}


def _build_config(cls, values, fixed, given_values, what):
    """``cls`` with ``values``, then the flags given, except that the settings
    ``fixed`` (the architecture of a file) may only be repeated, not changed."""
    for name, value in given_values.items():
        if name in fixed and name in cls.options() and fixed[name] != value:
            raise config.ConfigError(f'{what} has --{name}={fixed[name]}: drop --{name}={value}')
    foreign = sorted(n for n in given_values if n not in cls.options() and n != 'model')
    if foreign:
        raise config.ConfigError(f'--{foreign[0]} does not apply to --model {cls.model}')
    merged = {**values, **{k: v for k, v in given_values.items() if k != 'model'}}
    return cls(**merged)


def _pretrained_config(name, flag_values, given):
    """The config of the published model ``name``, with the flags ``given``."""
    models = [model for model, table in PRETRAINED.items() if name in table]
    if not models:
        known = sorted(set().union(*PRETRAINED.values()))
        raise config.ConfigError(f'no published model {name!r}; choose one of '
                                 f'{", ".join(known)}')
    model = models[0]
    if 'model' in given:
        model = flag_values['model'].value
        if model not in models:
            raise config.ConfigError(f'{name} is a published {" and ".join(models)} model, '
                                     f'not {model}')
    dataset, direction = PRETRAINED[model][name][:2]
    architecture = PRETRAINED_ARCHITECTURE[model]
    values = dict(architecture, dataset=dataset, direction=direction, name=f'{name}_pretrained')
    if model == 'cut':
        values['CUT_mode'] = PRETRAINED_CUT[name][2]
    return _build_config(registry.get(model).config, values, architecture,
                         _given_values(flag_values, given), f'the published {name}')


def _load_published(source, unusable):
    """The state dict of the published file ``source`` (a path or a file
    object); the files ``unusable`` are deleted when it is none."""
    try:
        return pth.load(source)
    except pth.PthError:
        _discard(unusable)  # the next try downloads it again
        raise


def _fetch_file(url, path):
    """The published .pth at ``url``, downloaded to ``path`` (resumed if
    interrupted): its (state dict, record, files to delete if unusable, name)."""
    if not os.path.isfile(path):
        print(f'Downloading {url}')
        download.download(url, path, hint='; or download it yourself and import it with '
                                          '--pth FILE and the architecture flags')
    return _load_published(path, (path,)), _file_record(path, url), (path,), url


def _fetch_member(url, name):
    """The generator of the published CUT model ``name``, read from the
    archive at ``url``, downloaded into the cache folder unless it is there,
    as _fetch_file. An archive that is unsafe, invalid or lacks the file is
    deleted; a good one is kept for the other names."""
    archive = os.path.join(download.cache_dir(), PRETRAINED_PATH['cut'])
    member = PRETRAINED_MEMBER.format(name)
    print(f'Using {archive}, downloaded before' if os.path.isfile(archive) else
          f'Downloading {url} into {archive}, for every published CUT model')
    hint = f'; or download it yourself and import its {member} with --model cut --pth FILE'
    download.cached_download(url, archive, hint=hint)
    try:
        data = archives.read_member(archive, member, max_size=PRETRAINED_MEMBER_LIMIT)
    except layouts.DatasetError as e:
        _discard([archive])
        raise layouts.DatasetError(f'{e} (deleted it: the next try downloads it '
                                   f'again)') from None
    where = f'{member} of {url}'
    buffer = io.BytesIO(data)
    buffer.name = where  # for pth's errors
    state = _load_published(buffer, (archive,))
    record = {'url': url, 'member': member, 'sha256': hashlib.sha256(data).hexdigest()}
    return state, record, (archive,), where


def plan_pretrained(settings, flag_values, given):
    name = settings.pretrained
    cfg = _pretrained_config(name, flag_values, given)
    check_new_run(cfg)
    url = f'{datasets.base_url(cfg)}/{PRETRAINED_PATH[cfg.model].format(name)}'
    downloaded = None
    if cfg.model == 'cut':
        fetched = _fetch_member(url, name)
    else:
        os.makedirs(cfg.runs_dir, exist_ok=True)
        downloaded = os.path.join(cfg.runs_dir, f'{cfg.run_name}.pth')
        fetched = _fetch_file(url, downloaded)
    state, record, unusable, where = fetched
    network = 'G_A' if cfg.model == 'cycle_gan' else 'G'
    source = {'kind': 'pretrained', 'name': name, 'model': cfg.model, 'url': url,
              'files': {network: record}}
    return Plan(cfg, {network: (state, where)}, source, downloaded=downloaded,
                unusable=unusable)


def plan_pth(settings, flag_values, given):
    cfg = registry.from_flags(flag_values)
    if not isinstance(cfg, config.ImageConfig):
        raise config.ConfigError(f'{cfg.model} has no networks of the official code')
    if 'name' not in given:
        stem = os.path.splitext(os.path.basename(settings.pth))[0]
        cfg = cfg.replace(name=stem)
    check_new_run(cfg)
    files = {'G_A' if cfg.model == 'cycle_gan' else 'G': settings.pth}
    if settings.pth_B:
        if cfg.model != 'cycle_gan':
            raise config.ConfigError(f'--pth_B: {cfg.model} has one generator')
        files['G_B'] = settings.pth_B
    for network in ('D', 'F'):
        path = getattr(settings, f'pth_{network}')
        if path:
            if network not in NETWORKS.get(cfg.model, ()):
                raise config.ConfigError(f'--pth_{network}: {cfg.model} has no network '
                                         f'{network}')
            files[network] = path
    states = {net: (_read(path), path) for net, path in files.items()}
    source = {'kind': 'pth', 'files': {net: _file_record(path) for net, path in files.items()}}
    return Plan(cfg, states, source)


def read_train_opt(path):
    """{name: value string} of an official train_opt.txt (``name: value``
    lines, each maybe followed by ``[default: ...]``)."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise runs.RunError(f'no {os.path.basename(path)} in {os.path.dirname(path)}: not a '
                            f'checkpoints folder of the official training code') from None
    except (OSError, UnicodeDecodeError) as e:
        raise runs.RunError(f'cannot read {path} ({runs.one_line(e)})') from None
    options = {}
    for line in lines:
        match = re.fullmatch(r'\s*(\w+):\s*(.*?)\s*(\[default:.*\])?\s*', line)
        if match:
            options[match.group(1)] = match.group(2)
    if 'model' not in options:
        raise runs.RunError(f'{path} names no model: not an official train_opt.txt')
    return options


def _option_value(option, text):
    """``text`` as ``option``'s type, or None if it is not one."""
    kind = option.type
    try:
        value = {bool: {'True': True, 'False': False}.get, int: int, float: float,
                 str: str}[kind](text)
    except ValueError:
        return None
    if value is None or option.choices is not None and value not in option.choices:
        return None
    return value


def plan_checkpoints(settings, flag_values, given):
    folder = settings.from_checkpoints
    if not os.path.isdir(folder):
        raise runs.RunError(f'no folder {folder}')
    options = read_train_opt(os.path.join(folder, 'train_opt.txt'))
    for old, new in OLD_NAMES.items():
        if old in options and new not in options:
            options[new] = options[old]
    model = options['model']
    if model not in NETWORKS:
        raise runs.RunError(f'{folder} holds a {model} model; import_torch.py knows '
                            f'{", ".join(NETWORKS)}')
    if 'model' in given and flag_values['model'].value != model:
        raise config.ConfigError(f'{folder} holds a {model} model: drop '
                                 f'--model={flag_values["model"].value}')
    cls = registry.get(model).config
    shape = registry.get(model).architecture
    architecture, values = {}, {}
    for name in shape + TRAINING_OPTIONS:
        if name == 'model' or name not in cls.options() or name not in options:
            continue
        value = _option_value(cls.options()[name], options[name])
        if name in shape:
            if value is None:
                raise runs.RunError(f'{folder}/train_opt.txt: {name} {options[name]!r} is not '
                                    f'one this project builds')
            architecture[name] = value
        elif value is not None:  # a setting of the official code only (lr_policy plateau)
            values[name] = value
    dataroot = options.get('dataroot', '')
    if dataroot and dataroot != 'None':
        values['dataset'] = os.path.basename(os.path.normpath(dataroot))
    values['name'] = options.get('name') or os.path.basename(os.path.normpath(folder))
    cfg = _build_config(cls, {**values, **architecture}, architecture,
                        _given_values(flag_values, given), f'{folder}/train_opt.txt')
    check_new_run(cfg)
    files = {net: os.path.join(folder, f'{settings.epoch}_net_{net}.pth')
             for net in NETWORKS[model]}
    files = {net: path for net, path in files.items() if os.path.isfile(path)}
    first = NETWORKS[model][0]
    if first not in files:
        raise runs.RunError(f'no {settings.epoch}_net_{first}.pth in {folder} (see --epoch)')
    states = {net: (_read(path), path) for net, path in files.items()}
    source = {'kind': 'from_checkpoints', 'folder': os.path.abspath(folder),
              'epoch': settings.epoch,
              'files': {net: _file_record(path) for net, path in files.items()}}
    return Plan(cfg, states, source)


def _read(path):
    if not os.path.isfile(path):
        raise runs.RunError(f'no file {path}')
    return pth.load(path)


def _file_record(path, url=None):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    record = {'path': os.path.abspath(path), 'sha256': digest.hexdigest()}
    if url:
        record = {'url': url, 'sha256': record['sha256']}
    return record


def check_new_run(cfg):
    if os.path.lexists(cfg.run_dir):
        raise runs.RunError(f'{cfg.run_dir} exists: import_torch.py makes new runs only; give '
                            f'another --name or --runs_dir')


def check_fit(plan):
    """Converts each state dict for its network built alone in a throwaway
    graph: a file that does not fit, or whose weights are not finite or
    beyond the divergence bound, fails in a second or two, before the
    training graph (ten times slower to build) exists, and a published file
    that fails is deleted. write_run converts again for the model's own
    networks, so this only saves time."""
    import tensorflow as tf

    from cyclegan_tf import modules
    from cyclegan_tf.interop import torch_weights

    cfg = plan.cfg
    model = registry.of(cfg).model_class
    channels = {'G_A': (cfg.input_nc, cfg.output_nc), 'G_B': (cfg.output_nc, cfg.input_nc),
                'D_A': (cfg.output_nc,), 'D_B': (cfg.input_nc,)}
    with tf.Graph().as_default():
        for name, (state, where) in plan.states.items():
            if name in ('G', 'D'):  # the model's own: pix2pix's conditional D, CUT's networks
                network = model.generator(cfg) if name == 'G' else model.discriminator(cfg)
            elif name in channels and name.startswith('G'):
                inputs, outputs = channels[name]
                network = modules.define_G(cfg, name, input_nc=inputs, output_nc=outputs)
            elif name in channels:
                network = modules.define_D(cfg, name, input_nc=channels[name][0])
            else:  # CUT's F: made from G's features, checked with the whole model
                continue
            try:
                network(tf.compat.v1.placeholder(tf.float32, [None, None, None,
                                                              network.input_nc]))
            except ValueError as e:  # a shape constraint of the networks
                raise config.ConfigError(str(e)) from None
            try:
                torch_weights.convert(state, network, source=where)
            except torch_weights.WeightsError:
                _discard(plan.unusable)  # unusable as published: the next try downloads it again
                raise


def write_run(plan):
    """Builds the model's training graph, assigns the imported networks and
    writes the run folder through a temporary folder; returns the number of
    tensors imported per network."""
    cfg = plan.cfg
    check_fit(plan)
    os.makedirs(cfg.runs_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f'.{cfg.run_name}.importing-', dir=cfg.runs_dir)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(scratch, 0o777 & ~umask)  # mkdtemp's 0700 would hide the run from others
        counts = write_checkpoint(plan, runs.checkpoint_dir(scratch))
        runs.save_config(cfg, os.path.join(scratch, runs.CONFIG_FILE))
        record = dict(plan.source, networks=list(plan.states))
        with open(os.path.join(scratch, runs.IMPORTED_FILE), 'w') as f:
            json.dump(record, f, indent=2)
            f.write('\n')
        check_new_run(cfg)
        os.rename(scratch, cfg.run_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if plan.downloaded:
        os.remove(plan.downloaded)
    return counts


def write_checkpoint(plan, folder):
    """The model's fresh training state with the imported networks, as the
    step-0 checkpoint in ``folder``; returns the tensors imported per network."""
    from cyclegan_tf.interop import torch_weights

    tf = session.graph_mode()
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        try:
            net = registry.create(plan.cfg)
        except ValueError as e:  # a shape constraint of the networks
            raise config.ConfigError(str(e)) from None
        saver = tf1.train.Saver(save_relative_paths=True)
        init_op = tf1.global_variables_initializer()
    graph.finalize()
    counts = {}
    with tf1.Session(graph=graph) as sess:
        sess.run(init_op)
        for name, (state, where) in plan.states.items():
            counts[name] = torch_weights.load_into(sess, net.networks[name], state, source=where)
        prefix = os.path.join(folder, runs.PREFIX)
        os.makedirs(folder)
        # The state train.py keeps beside each checkpoint (its Checkpoints.save's
        # layout): the fresh model's empty image pools, the loop at step 0.
        host = {f'model/{key}': value for key, value in net.host_state().items()}
        runs.save_host_state(f'{prefix}-0', dict(host, **{'loop/epoch_start': 0}))
        saver.save(sess, prefix, global_step=0, write_meta_graph=False)
    return counts


def report(plan, counts):
    cfg = plan.cfg
    imported = ', '.join(f'{name} ({n} tensors)' for name, n in counts.items())
    norm = cfg.norm if 'norm' in cfg.options() else cfg.normG
    print(f'Imported {imported} into {cfg.run_dir} ({cfg.model}, {cfg.netG}, ngf {cfg.ngf}, '
          f'norm {norm})')
    others = [n for n in NETWORKS[cfg.model] if n not in counts]
    if others:
        print(f'  not imported, freshly initialized: {", ".join(others)}')
    if cfg.model == 'cycle_gan':
        directions = [d for d, g in (('AtoB', 'G_A'), ('BtoA', 'G_B')) if g in counts]
    else:
        directions = ['AtoB']
    print(f'  translate: python sample.py --run {cfg.run_dir} --input IMAGE_OR_FOLDER '
          f'--direction {directions[0]}' + (' --eval' if norm == 'batch' else ''))


def main(argv=None):
    session.quiet_tensorflow()  # before anything imports TensorFlow
    argv = sys.argv if argv is None else argv
    argv = argv[:1] + commands.resolve_flagfiles(argv[1:])
    if commands.wants_help(argv):
        print(__doc__)
        flag_values = registry.define_flags(flags.FlagValues())
        print(config.define_flags(flag_values, ImportSettings.options()).get_help())
        return 0
    from cyclegan_tf.interop import torch_weights

    try:
        settings, flag_values, given = parse(argv)
        planner = (plan_pretrained if settings.pretrained else
                   plan_pth if settings.pth else plan_checkpoints)
        plan = planner(settings, flag_values, given)
        counts = write_run(plan)
        report(plan, counts)
        return 0
    except (config.ConfigError, layouts.DatasetError, runs.RunError, pth.PthError,
            torch_weights.WeightsError, OSError) as e:
        print(f'import_torch.py: error: {runs.one_line(e)}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
