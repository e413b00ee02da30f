"""The config classes: defaults, overrides, validation, flags, JSON round trip."""

import json
import os
import re

import pytest
from absl import flags

from cyclegan_tf import config, registry
from cyclegan_tf.running import runs


def test_defaults_are_the_papers():
    cfg = config.CycleGANConfig()
    assert (cfg.netG, cfg.netD, cfg.n_layers_D) == ('resnet_9blocks', 'basic', 3)
    assert (cfg.ngf, cfg.ndf, cfg.norm, cfg.no_dropout) == (64, 64, 'instance', True)
    assert (cfg.gan_mode, cfg.lr, cfg.beta1) == ('lsgan', 0.0002, 0.5)
    assert (cfg.lambda_A, cfg.lambda_B, cfg.lambda_identity, cfg.pool_size) == (10, 10, 0.5, 50)
    assert (cfg.n_epochs, cfg.n_epochs_decay, cfg.batch_size) == (100, 100, 1)
    assert (cfg.load_size, cfg.crop_size, cfg.input_nc, cfg.output_nc) == (286, 256, 3, 3)
    assert (cfg.init_type, cfg.init_gain) == ('normal', 0.02)


def test_subclass_overrides_only_what_differs_and_keeps_help():
    p2p = config.Pix2PixConfig()
    assert (p2p.netG, p2p.norm, p2p.gan_mode, p2p.no_dropout) == ('unet_256', 'batch',
                                                                  'vanilla', False)
    assert p2p.lambda_L1 == 100.0
    assert config.Pix2PixConfig.options()['netG'].help == \
        config.CycleGANConfig.options()['netG'].help
    assert 'lambda_L1' not in config.CycleGANConfig.options()


def test_keyword_overrides_are_checked():
    cfg = config.CycleGANConfig(crop_size=32, lr=1)
    assert cfg.crop_size == 32 and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    with pytest.raises(config.ConfigError, match='unknown option.*crop_sise'):
        config.CycleGANConfig(crop_sise=32)
    with pytest.raises(config.ConfigError, match='ngf must be of type int'):
        config.CycleGANConfig(ngf=1.5)
    with pytest.raises(config.ConfigError, match='no_flip must be of type bool'):
        config.CycleGANConfig(no_flip=1)
    with pytest.raises(config.ConfigError, match='norm must be one of'):
        config.CycleGANConfig(norm='layer')
    with pytest.raises(TypeError):
        config.CycleGANConfig(64)  # never positional


def test_config_is_frozen_and_replace_makes_a_new_one():
    cfg = config.CycleGANConfig()
    with pytest.raises(AttributeError):
        cfg.ngf = 32
    smaller = cfg.replace(ngf=32)
    assert smaller.ngf == 32 and cfg.ngf == 64 and smaller != cfg


def test_a_subclass_cannot_invent_a_setting_without_declaring_it():
    with pytest.raises(TypeError, match='overrides no option'):
        class Broken(config.CycleGANConfig):
            ngff = 32


def test_save_and_load_round_trip(tmp_path):
    cfg = config.Pix2PixConfig(ngf=8, crop_size=128, name='x')
    path = tmp_path / 'run' / 'config.json'
    runs.save_config(cfg, str(path))
    assert json.loads(path.read_text())['model'] == 'pix2pix'
    assert runs.read_config(str(path)) == cfg
    assert [p.name for p in path.parent.iterdir()] == ['config.json']  # no temp files left


@pytest.mark.parametrize('text, message', [
    ('{"ngf": 8}', 'not a config'),
    ('{"model": "cycle_gan", "ngf": 8, "bogus": 1}', 'unknown option'),
    ('{"model": "stylegan"}', 'unknown model'),
    ('{not json', 'cannot read config'),
])
def test_load_rejects_foreign_files(tmp_path, text, message):
    path = tmp_path / 'config.json'
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        runs.read_config(str(path))
    with pytest.raises(config.ConfigError, match='no config'):
        runs.read_config(str(tmp_path / 'missing.json'))


def test_flags_are_registered_with_types_from_defaults():
    fv = registry.define_flags(flags.FlagValues())
    registry.define_flags(fv)  # idempotent
    assert isinstance(fv['no_flip'], flags.BooleanFlag)
    assert fv['ngf'].value == 64 and fv['lr'].value == 0.0002
    assert 'enum' in fv['norm'].flag_type()
    assert 'pix2pix: unet_256' in fv['netG'].help


def test_from_flags_takes_the_models_defaults_and_explicit_flags():
    cfg = registry.from_flags(flags.FlagValues(), ['train.py', '--model', 'pix2pix',
                                                   '--ngf', '16', '--no_flip'])
    assert isinstance(cfg, config.Pix2PixConfig)
    assert (cfg.ngf, cfg.no_flip, cfg.netG) == (16, True, 'unet_256')
    cfg = registry.from_flags(flags.FlagValues(), ['train.py', '--lambda_identity=0'])
    assert isinstance(cfg, config.CycleGANConfig) and cfg.lambda_identity == 0.0


@pytest.mark.parametrize('argv, message', [
    (['--bogus', '1'], "Unknown command line flag 'bogus'"),
    (['--ngf', 'many'], 'ngf'),
    (['--norm', 'layer'], 'norm'),
    (['--lambda_L1', '10'], '--lambda_L1 does not apply to --model cycle_gan'),
])
def test_bad_flags_are_one_clear_error(argv, message):
    with pytest.raises(config.ConfigError, match=message):
        registry.from_flags(flags.FlagValues(), ['train.py'] + argv)


# ------------------------------------------------------------------ ranges

# Every settings class, and every numeric setting of each: (class, name).
SETTINGS_CLASSES = [spec.config for spec in registry.MODELS.values()] + [
    config.SampleConfig, config.EvaluateConfig, config.BenchConfig]
NUMERIC = [(cls, name) for cls in SETTINGS_CLASSES for name, option in cls.options().items()
           if option.type in (int, float)]


def _out_of_range(option):
    """Values just outside ``option``'s range, and nan and infinities for floats."""
    kind = option.type
    step = 1 if kind is int else 0.5
    values = []
    if option.min is not None:
        values.append(kind(option.min - step))
    if option.min_exclusive is not None:
        values.append(kind(option.min_exclusive))
    if option.max is not None:
        values.append(kind(option.max + step))
    if option.max_exclusive is not None:
        values.append(kind(option.max_exclusive))
    if kind is float:
        values += [float('nan'), float('inf'), float('-inf')]
    return values


def test_every_numeric_setting_has_a_lower_bound_in_its_help():
    assert len(NUMERIC) > 60
    for cls, name in NUMERIC:
        option = cls.options()[name]
        assert option.min is not None or option.min_exclusive is not None, (cls, name)
        assert option.range_text() in config.define_flags(
            flags.FlagValues(), cls.options())[name].help, (cls, name)


@pytest.mark.parametrize('cls, name', NUMERIC,
                         ids=[f'{cls.__name__}.{name}' for cls, name in NUMERIC])
def test_numeric_settings_outside_their_range_are_config_errors(cls, name):
    option = cls.options()[name]
    for value in _out_of_range(option):
        with pytest.raises(config.ConfigError, match=rf'^{name} must be .*, got '):
            cls(**{name: value})
    for bound in (option.min, option.max):  # inclusive bounds are in range
        if bound is not None:
            assert getattr(cls(**{name: bound}), name) == bound


def test_range_messages_and_help():
    with pytest.raises(config.ConfigError, match=r'^batch_size must be an integer >= 1, got 0$'):
        config.CycleGANConfig(batch_size=0)
    with pytest.raises(config.ConfigError, match=r'^lr must be a finite number > 0, got nan$'):
        config.CycleGANConfig(lr=float('nan'))
    with pytest.raises(config.ConfigError, match=r'^beta1 must be a number in \[0, 1\), got 1'):
        config.CycleGANConfig(beta1=1.0)
    fv = registry.define_flags(flags.FlagValues())
    assert fv['batch_size'].help.endswith('(an integer >= 1)')
    assert '(a finite number > 0)' in fv['lr'].help


@pytest.mark.parametrize('argv, message', [
    (['--batch_size=0'], 'flag --batch_size=0: must be an integer >= 1'),
    (['--lr=nan'], 'flag --lr=nan: must be a finite number > 0'),
    (['--lr=inf'], 'flag --lr=inf: must be a finite number > 0'),
    (['--model=toy_gan', '--toy_mode_std=0'], 'flag --toy_mode_std=0.0: must be a finite'),
])
def test_flags_outside_their_range_are_one_clear_error(argv, message):
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        registry.from_flags(flags.FlagValues(), ['train.py'] + argv)


def test_a_settings_file_outside_the_ranges_is_refused(tmp_path):
    path = tmp_path / 'config.json'
    path.write_text('{"model": "cycle_gan", "pool_size": -1}')
    with pytest.raises(config.ConfigError, match='pool_size must be an integer >= 0'):
        runs.read_config(str(path))
    path.write_text('{"model": "cycle_gan", "lambda_A": NaN}')
    with pytest.raises(config.ConfigError, match='lambda_A must be a finite number >= 0'):
        runs.read_config(str(path))


def test_a_schedule_without_epochs_is_refused():
    with pytest.raises(config.ConfigError, match='n_epochs \\+ n_epochs_decay must be >= 1'):
        config.CycleGANConfig(n_epochs=0, n_epochs_decay=0)
    config.CycleGANConfig(n_epochs=0)  # linear decay from the first epoch is fine
    config.CycleGANConfig(n_epochs=0, lr_policy='cosine')  # over n_epochs + n_epochs_decay


def test_toy_targets_must_be_finite():
    with pytest.raises(config.ConfigError, match='toy_mean must be 2 finite numbers'):
        config.ToyGANConfig(toy_mean='nan,1')
    with pytest.raises(config.ConfigError, match='toy_cov must be 4 finite numbers'):
        config.ToyGANConfig(toy_cov='inf,0,0,1')


# ------------------------------------------------------------------ names

@pytest.mark.parametrize('name', ['../x', '/abs/path', '.', '..', 'a/b', 'a\x00b', 'x/'])
def test_a_run_name_is_one_folder_inside_runs_dir(name):
    with pytest.raises(config.ConfigError, match=r'^name must be one folder name'):
        config.CycleGANConfig(name=name)
    with pytest.raises(config.ConfigError, match=r'^name must be one folder name'):
        config.ToyGANConfig(name=name)


def test_good_names_and_default_names_stay_inside_runs_dir():
    for name in ('x', '.x', 'a b', 'x..y', 'horse2zebra_cycle_gan'):
        assert config.CycleGANConfig(name=name, runs_dir='r').run_dir == os.path.join('r', name)
    for dataset in ('..', '.', '/', 'a/b/', '~/data/h2z'):
        cfg = config.CycleGANConfig(dataset=dataset, runs_dir='r')
        assert os.path.dirname(cfg.run_dir) == 'r' and cfg.run_name not in ('', '.', '..')


@pytest.mark.parametrize('text, message', [
    ('{"model": ["cycle_gan"]}', 'model must be a string'),
    ('{"model": {"a": 1}}', 'model must be a string'),
    ('{"model": null}', 'model must be a string'),
    ('{"model": 7}', 'model must be a string'),
    ('{"model": "cycle_gan", "ngf": "64"}', 'ngf must be of type int'),
    ('{"model": "cycle_gan", "name": ["x"]}', 'name must be of type str'),
    ('[' * 100000 + ']' * 100000, 'cannot read config'),
    ('\xff\xfe', 'cannot read config'),
], ids=['list', 'dict', 'null', 'number', 'int-as-string', 'name-list', 'deep', 'not-utf8'])
def test_load_turns_any_malformed_content_into_one_config_error(tmp_path, text, message):
    from cyclegan_tf.running import runs

    path = tmp_path / 'run' / 'config.json'
    path.parent.mkdir()
    path.write_bytes(text.encode('latin-1'))
    with pytest.raises(config.ConfigError, match=message) as error:
        runs.read_config(str(path))
    assert '\n' not in str(error.value)
    with pytest.raises(runs.RunError, match=message):
        runs.load_config(str(path.parent))


# ------------------------------------------------------------------ URLs

@pytest.mark.parametrize('url, message', [
    ('file:///etc/passwd#', 'must be an http:// or https:// URL'),
    ('ftp://example.com/mirror', 'must be an http:// or https:// URL'),
    ('not a url', 'must be an http:// or https:// URL'),
    ('http://', 'must be an http:// or https:// URL'),
    ('http://[::1', 'is not a valid URL'),
    ('http://host:99999/', 'is not a valid URL'),
    ('http://host/mirror#', 'without ?query or #fragment'),
    ('http://host/mirror?x=1', 'without ?query or #fragment'),
])
def test_download_url_is_an_http_base_url(url, message):
    with pytest.raises(config.ConfigError, match=r'^download_url .*' + re.escape(message)):
        config.CycleGANConfig(download_url=url)


def test_good_download_urls():
    for url in ('', 'http://h', 'https://mirror.example.org:8443/cyclegan/', 'HTTP://[::1]:80'):
        assert config.CycleGANConfig(download_url=url).download_url == url
    assert '(http or https)' in registry.define_flags(flags.FlagValues())['download_url'].help


def test_text_settings_must_be_utf8():
    """A path given as bytes that are not UTF-8 (argv turns them into
    surrogates) could not be printed, logged or written to index.html."""
    for name in ('runs_dir', 'name', 'data_root', 'dataset'):
        with pytest.raises(config.ConfigError, match=f'^{name} must be valid UTF-8 text'):
            config.CycleGANConfig(**{name: os.fsdecode(b'r\xff')})
    with pytest.raises(config.ConfigError, match='^input must be valid UTF-8'):
        config.SampleConfig(input=os.fsdecode(b'r\xff.png'))
