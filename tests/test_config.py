"""The config classes: defaults, overrides, validation, flags, JSON round trip."""

import json

import pytest
from absl import flags

import config


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
    cfg.save(str(path))
    assert json.loads(path.read_text())['model'] == 'pix2pix'
    assert config.load(str(path)) == cfg
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
        config.load(str(path))
    with pytest.raises(config.ConfigError, match='no config'):
        config.load(str(tmp_path / 'missing.json'))


def test_flags_are_registered_with_types_from_defaults():
    fv = config.define_flags(flags.FlagValues())
    config.define_flags(fv)  # idempotent
    assert isinstance(fv['no_flip'], flags.BooleanFlag)
    assert fv['ngf'].value == 64 and fv['lr'].value == 0.0002
    assert 'enum' in fv['norm'].flag_type()
    assert 'pix2pix: unet_256' in fv['netG'].help


def test_from_flags_takes_the_models_defaults_and_explicit_flags():
    cfg = config.from_flags(flags.FlagValues(), ['train.py', '--model', 'pix2pix',
                                                 '--ngf', '16', '--no_flip'])
    assert isinstance(cfg, config.Pix2PixConfig)
    assert (cfg.ngf, cfg.no_flip, cfg.netG) == (16, True, 'unet_256')
    cfg = config.from_flags(flags.FlagValues(), ['train.py', '--lambda_identity=0'])
    assert isinstance(cfg, config.CycleGANConfig) and cfg.lambda_identity == 0.0


@pytest.mark.parametrize('argv, message', [
    (['--bogus', '1'], "Unknown command line flag 'bogus'"),
    (['--ngf', 'many'], 'ngf'),
    (['--norm', 'layer'], 'norm'),
    (['--lambda_L1', '10'], '--lambda_L1 does not apply to --model cycle_gan'),
])
def test_bad_flags_are_one_clear_error(argv, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_flags(flags.FlagValues(), ['train.py'] + argv)
