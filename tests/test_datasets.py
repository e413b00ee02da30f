"""datasets.py: downloads from a local HTTP server, safe extraction, layouts,
the built-in shapes2stripes. No network beyond 127.0.0.1."""

import io
import logging
import os
import re
import socket
import tarfile
import threading
import time
import zipfile

import numpy as np
import pytest
from conftest import prepare
from PIL import Image

from cyclegan_tf import config
from cyclegan_tf.data import archives, datasets, download, layouts, shapes
from cyclegan_tf.data.layouts import DatasetError

H2Z_URL_PATH = '/cyclegan/datasets/horse2zebra.zip'
FACADES_URL_PATH = '/pix2pix/datasets/facades.tar.gz'


def _closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _zip_tree(folder, top=None):
    """Bytes of a zip of ``folder``, wrapped in ``top/`` when given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as zf:
        for root, _, files in os.walk(folder):
            for name in sorted(files):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, folder)
                zf.write(path, f'{top}/{rel}' if top else rel)
    return buffer.getvalue()


def _tar_tree(folder, top=None):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        for entry in sorted(os.listdir(folder)):
            tar.add(os.path.join(folder, entry), f'{top}/{entry}' if top else entry)
    return buffer.getvalue()


def _cyclegan_cfg(data_root, url, **kwargs):
    return config.CycleGANConfig(dataset='horse2zebra', data_root=str(data_root),
                                 download_url=url, **kwargs)


# ---------------------------------------------------------------------------
# Downloads.

def test_download_zip_extracts_layout_and_cleans_up(tmp_path, server, sample_data, caplog):
    server.files[H2Z_URL_PATH] = _zip_tree(sample_data / 'horse2zebra_tiny', 'horse2zebra')
    data_root = tmp_path / 'datasets'
    with caplog.at_level(logging.WARNING, logger='cyclegan_tf'):
        root = prepare(_cyclegan_cfg(data_root, server.url))
    assert root == str(data_root / 'horse2zebra')
    assert os.listdir(data_root) == ['horse2zebra']  # no archive, .part or temp folder
    for sub, count in (('trainA', 6), ('trainB', 6), ('testA', 3), ('testB', 3)):
        assert len(layouts.list_images(os.path.join(root, sub))) == count
    assert 'official set has 1067' in caplog.text  # the known counts differ: a warning
    requests = len(server.requests)
    assert prepare(_cyclegan_cfg(data_root, server.url)) == root
    assert len(server.requests) == requests  # found, not downloaded again


@pytest.mark.parametrize('top', ['facades', None], ids=['wrapped', 'unwrapped'])
def test_download_pix2pix_tar(tmp_path, server, sample_data, top):
    server.files[FACADES_URL_PATH] = _tar_tree(sample_data / 'facades_tiny', top)
    data_root = tmp_path / 'datasets'
    cfg = config.Pix2PixConfig(dataset='facades', data_root=str(data_root),
                               download_url=server.url)
    root = prepare(cfg)
    assert sorted(os.listdir(root)) == ['test', 'train']
    assert len(layouts.list_images(os.path.join(root, 'train'))) == 4
    assert os.listdir(data_root) == ['facades']
    assert server.requests == [(FACADES_URL_PATH, None)]


def test_facades_variant_follows_the_model(tmp_path, server, sample_data):
    """facades exists on both servers: pix2pix gets the tar.gz, CycleGAN the
    zip, and the second download completes the same folder."""
    server.files[FACADES_URL_PATH] = _tar_tree(sample_data / 'facades_tiny', 'facades')
    server.files['/cyclegan/datasets/facades.zip'] = _zip_tree(
        sample_data / 'horse2zebra_tiny', 'facades')
    data_root = str(tmp_path)
    prepare(config.Pix2PixConfig(dataset='facades', data_root=data_root,
                                 download_url=server.url))
    root = prepare(config.CycleGANConfig(dataset='facades', data_root=data_root,
                                         download_url=server.url))
    assert [path for path, _ in server.requests] == [FACADES_URL_PATH,
                                                     '/cyclegan/datasets/facades.zip']
    assert sorted(os.listdir(root)) == ['test', 'testA', 'testB', 'train', 'trainA', 'trainB']


def test_interrupted_download_resumes_with_range(tmp_path, server, sample_data):
    archive = _zip_tree(sample_data / 'horse2zebra_tiny', 'horse2zebra')
    server.files[H2Z_URL_PATH] = archive
    server.tricks[H2Z_URL_PATH] = {'cut_once': 5000}
    root = prepare(_cyclegan_cfg(tmp_path, server.url))
    assert server.requests == [(H2Z_URL_PATH, None), (H2Z_URL_PATH, 'bytes=5000-')]
    assert len(layouts.list_images(os.path.join(root, 'trainB'))) == 6
    assert os.listdir(tmp_path) == ['horse2zebra']


def test_part_file_of_an_earlier_run_is_resumed(tmp_path, server, sample_data):
    archive = _zip_tree(sample_data / 'horse2zebra_tiny', 'horse2zebra')
    server.files[H2Z_URL_PATH] = archive
    (tmp_path / '.horse2zebra.zip.part').write_bytes(archive[:1234])
    prepare(_cyclegan_cfg(tmp_path, server.url))
    assert server.requests == [(H2Z_URL_PATH, 'bytes=1234-')]
    assert os.listdir(tmp_path) == ['horse2zebra']


def test_a_second_process_waits_for_the_first_ones_download(tmp_path, server, sample_data,
                                                            caplog):
    server.files[H2Z_URL_PATH] = _zip_tree(sample_data / 'horse2zebra_tiny', 'horse2zebra')
    cfg = _cyclegan_cfg(tmp_path, server.url)
    found = []
    with caplog.at_level(logging.INFO, logger='cyclegan_tf'):
        with download.download_lock(str(tmp_path), 'horse2zebra'):  # the first process
            second = threading.Thread(target=lambda: found.append(prepare(cfg)))
            second.start()
            deadline = time.monotonic() + 10
            while 'waiting for another process' not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.01)
            assert 'waiting for another process fetching horse2zebra' in caplog.text
            assert server.requests == []
            datasets.fetch(datasets.find_known('horse2zebra', layouts.UNALIGNED), str(tmp_path),
                           server.url)
        second.join(10)
    assert found == [str(tmp_path / 'horse2zebra')]
    assert len(server.requests) == 1  # the second used the first one's download
    assert os.listdir(tmp_path) == ['horse2zebra']  # and the lock file is gone


def test_server_without_range_restarts_from_zero(tmp_path, server, sample_data):
    server.files[H2Z_URL_PATH] = _zip_tree(sample_data / 'horse2zebra_tiny', 'horse2zebra')
    server.tricks[H2Z_URL_PATH] = {'cut_once': 5000, 'ignore_range': True}
    root = prepare(_cyclegan_cfg(tmp_path, server.url))
    assert server.requests[1] == (H2Z_URL_PATH, 'bytes=5000-')  # asked, got 200
    assert len(layouts.list_images(os.path.join(root, 'testA'))) == 3


def test_size_mismatch_is_an_error_and_leaves_nothing(tmp_path, server, sample_data):
    server.files[H2Z_URL_PATH] = _zip_tree(sample_data / 'horse2zebra_tiny', 'horse2zebra')
    server.tricks[H2Z_URL_PATH] = {'extra_length': 1000}  # Content-Length lies
    with pytest.raises(DatasetError, match='the server announced') as error:
        prepare(_cyclegan_cfg(tmp_path, server.url))
    assert server.url + H2Z_URL_PATH in str(error.value)
    assert os.listdir(tmp_path) == []


def test_server_that_always_truncates_is_an_error(tmp_path, server, sample_data):
    archive = _zip_tree(sample_data / 'horse2zebra_tiny', 'horse2zebra')
    server.files[H2Z_URL_PATH] = archive
    server.tricks[H2Z_URL_PATH] = {'cut_always': len(archive) // 10}
    with pytest.raises(DatasetError, match=f'the server announced {len(archive)}') as error:
        prepare(_cyclegan_cfg(tmp_path, server.url))
    assert len(server.requests) == download.DOWNLOAD_ATTEMPTS  # resumed each time
    # Every attempt continued the last: the part is kept for the next run.
    part = tmp_path / '.horse2zebra.zip.part'
    assert 'partial download kept in' in str(error.value)
    assert os.listdir(tmp_path) == [part.name]
    assert part.read_bytes() == archive[:download.DOWNLOAD_ATTEMPTS * (len(archive) // 10)]


def test_offline_names_the_url_and_the_layout(tmp_path):
    url = f'http://127.0.0.1:{_closed_port()}'
    with pytest.raises(DatasetError) as error:
        prepare(_cyclegan_cfg(tmp_path / 'datasets', url))
    message = str(error.value)
    assert f'could not download {url}{H2Z_URL_PATH} (connection refused)' in message
    assert 'horse2zebra/{trainA,trainB,testA,testB}/' in message
    assert '\n' not in message
    assert not (tmp_path / 'datasets').exists() or os.listdir(tmp_path / 'datasets') == []


def test_http_404_names_the_url(tmp_path, server):
    with pytest.raises(DatasetError, match=re.escape(f'{server.url}{H2Z_URL_PATH} (HTTP 404')):
        prepare(_cyclegan_cfg(tmp_path, server.url))
    assert os.listdir(tmp_path) == []


def test_timeout_is_an_error(tmp_path, server):
    server.files['/x.zip'] = b'late'
    server.tricks['/x.zip'] = {'stall': 1.0}
    with pytest.raises(DatasetError, match='timed out'):
        download.download(server.url + '/x.zip', str(tmp_path / 'x.zip'), timeout=0.2)
    assert os.listdir(tmp_path) == []


def test_corrupt_archive_is_deleted(tmp_path, server):
    server.files[H2Z_URL_PATH] = b'this is not a zip file'
    with pytest.raises(DatasetError, match='not a valid archive'):
        prepare(_cyclegan_cfg(tmp_path, server.url))
    assert os.listdir(tmp_path) == []


def test_archive_without_the_layout_is_refused(tmp_path, server, sample_data):
    source = sample_data / 'horse2zebra_tiny'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as zf:
        for sub in ('trainA', 'trainB', 'testA'):  # no testB
            for name in os.listdir(source / sub):
                zf.write(source / sub / name, f'horse2zebra/{sub}/{name}')
    server.files[H2Z_URL_PATH] = buffer.getvalue()
    with pytest.raises(DatasetError, match='testB does not exist'):
        prepare(_cyclegan_cfg(tmp_path, server.url))
    assert os.listdir(tmp_path) == []


def _zip_with(entry_name):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as zf:
        zf.writestr('horse2zebra/trainA/ok.png', b'x')
        zf.writestr(entry_name, b'evil')
    return buffer.getvalue()


def _zip_with_symlink():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as zf:
        info = zipfile.ZipInfo('horse2zebra/trainA/link.png')
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, '../../../outside')
    return buffer.getvalue()


def _tar_with(kind, name, target=''):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        data = b'evil' if kind == tarfile.REGTYPE else b''
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize('archive, entry', [
    (lambda: _zip_with('../evil.txt'), '../evil.txt'),
    (lambda: _zip_with('horse2zebra/../../evil.txt'), 'horse2zebra/../../evil.txt'),
    (lambda: _zip_with('/tmp/evil.txt'), '/tmp/evil.txt'),
    (_zip_with_symlink, 'horse2zebra/trainA/link.png'),
], ids=['dotdot', 'nested-dotdot', 'absolute', 'symlink'])
def test_unsafe_zip_entries_are_refused(tmp_path, server, archive, entry):
    server.files[H2Z_URL_PATH] = archive()
    data_root = tmp_path / 'datasets'
    with pytest.raises(DatasetError, match=re.escape(repr(entry))):
        prepare(_cyclegan_cfg(data_root, server.url))
    assert os.listdir(tmp_path) == ['datasets']
    assert os.listdir(data_root) == []
    assert not os.path.exists('/tmp/evil.txt')


@pytest.mark.parametrize('kind, name, target', [
    (tarfile.SYMTYPE, 'facades/train/link.jpg', '../../../outside.jpg'),
    (tarfile.SYMTYPE, 'facades/train/abs.jpg', '/etc/passwd'),
    (tarfile.LNKTYPE, 'facades/train/hard.jpg', '../outside.jpg'),
    (tarfile.CHRTYPE, 'facades/train/device', ''),
    (tarfile.REGTYPE, '../facades-evil.txt', ''),
    (tarfile.REGTYPE, '/tmp/facades-evil.txt', ''),
], ids=['symlink-out', 'symlink-absolute', 'hardlink-out', 'device', 'dotdot', 'absolute'])
def test_unsafe_tar_entries_are_refused(tmp_path, server, kind, name, target):
    server.files[FACADES_URL_PATH] = _tar_with(kind, name, target)
    data_root = tmp_path / 'datasets'
    cfg = config.Pix2PixConfig(dataset='facades', data_root=str(data_root),
                               download_url=server.url)
    with pytest.raises(DatasetError, match=re.escape(repr(name))):
        prepare(cfg)
    assert os.listdir(tmp_path) == ['datasets']
    assert os.listdir(data_root) == []
    assert not os.path.exists('/tmp/facades-evil.txt')


def test_links_inside_a_tar_are_allowed(tmp_path, sample_data):
    source = sample_data / 'facades_tiny'
    archive = tmp_path / 'facades.tar.gz'
    with tarfile.open(archive, 'w:gz') as tar:
        tar.add(source / 'train', 'facades/train')
        tar.add(source / 'test', 'facades/test')
        link = tarfile.TarInfo('facades/test/link.jpg')
        link.type, link.linkname = tarfile.SYMTYPE, '1.jpg'
        tar.addfile(link)
    root = archives.extract(str(archive), str(tmp_path / 'facades'), layouts.ALIGNED)
    assert os.path.islink(os.path.join(root, 'test', 'link.jpg'))


# ---------------------------------------------------------------------------
# Base URL, names, folders.

def test_base_url_flag_then_environment_then_official(tmp_path, server, sample_data,
                                                      monkeypatch):
    server.files[H2Z_URL_PATH] = _zip_tree(sample_data / 'horse2zebra_tiny', 'horse2zebra')
    monkeypatch.delenv(datasets.URL_VARIABLE, raising=False)
    assert datasets.base_url(_cyclegan_cfg(tmp_path, '')) == 'http://efrosgans.eecs.berkeley.edu'
    monkeypatch.setenv(datasets.URL_VARIABLE, server.url + '/')
    assert datasets.base_url(_cyclegan_cfg(tmp_path, '')) == server.url
    prepare(_cyclegan_cfg(tmp_path / 'env', ''))  # from the environment
    monkeypatch.setenv(datasets.URL_VARIABLE, f'http://127.0.0.1:{_closed_port()}')
    prepare(_cyclegan_cfg(tmp_path / 'flag', server.url))  # the flag wins
    assert len(server.requests) == 2


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(DatasetError) as error:
        prepare(config.CycleGANConfig(dataset='horse2zebro', data_root=str(tmp_path)))
    for name in ('horse2zebra', 'shapes2stripes', 'edges2shoes', 'mini'):
        assert name in str(error.value)


def test_official_lists():
    assert set(datasets.CYCLEGAN_DATASETS) >= {
        'ae_photos', 'apple2orange', 'summer2winter_yosemite', 'horse2zebra', 'monet2photo',
        'cezanne2photo', 'ukiyoe2photo', 'vangogh2photo', 'maps', 'facades',
        'iphone2dslr_flower', 'mini'}
    assert set(datasets.PIX2PIX_DATASETS) == {
        'facades', 'maps', 'edges2shoes', 'edges2handbags', 'night2day'}
    assert datasets.CYCLEGAN_DATASETS['mini_pix2pix'].layout == layouts.ALIGNED
    assert datasets.PIX2PIX_DATASETS['edges2shoes'].url('http://h') == (
        'http://h/pix2pix/datasets/edges2shoes.tar.gz')


def test_cityscapes_explains_why_unless_prepared_by_hand(tmp_path, sample_data):
    cfg = config.Pix2PixConfig(dataset='cityscapes', data_root=str(tmp_path))
    with pytest.raises(DatasetError, match='cityscapes-dataset.com'):
        prepare(cfg)
    (tmp_path / 'cityscapes').symlink_to(sample_data / 'facades_tiny')
    assert prepare(cfg) == str(tmp_path / 'cityscapes')


def test_paired_set_for_cyclegan_is_refused_before_download(tmp_path):
    cfg = config.CycleGANConfig(dataset='edges2shoes', data_root=str(tmp_path),
                                download_url=f'http://127.0.0.1:{_closed_port()}')
    with pytest.raises(DatasetError, match='paired'):
        prepare(cfg)


def test_user_folder_layout_is_checked(tmp_path, sample_data):
    folder = tmp_path / 'mine'
    (folder / 'trainA').mkdir(parents=True)
    (folder / 'trainB').mkdir()
    Image.new('RGB', (8, 8)).save(folder / 'trainA' / 'a.png')
    (folder / 'trainB' / 'notes.txt').write_text('not an image')
    with pytest.raises(DatasetError, match=re.escape(f'no images in {folder}/trainB')):
        prepare(config.CycleGANConfig(dataset=str(folder)))
    with pytest.raises(DatasetError, match='trainA does not exist'):
        prepare(config.CycleGANConfig(dataset=str(sample_data / 'facades_tiny')))
    cfg = config.Pix2PixConfig(dataset=str(sample_data / 'facades_tiny'))
    assert prepare(cfg) == str(sample_data / 'facades_tiny')


def test_name_under_data_root_is_found(tmp_path, sample_data):
    root = prepare(config.CycleGANConfig(dataset='horse2zebra_tiny',
                                         data_root=str(sample_data)))
    assert root == str(sample_data / 'horse2zebra_tiny')


def test_list_images_recursive_any_case_sorted(tmp_path):
    for rel in ('b/X.JPG', 'a/y.Png', 'z.tiff', 'c.bmp', 'd.jpeg', 'notes.txt', 'e.gif',
                '.hidden.jpg', '__MACOSX/._a.jpg'):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b'')
    found = [os.path.relpath(p, tmp_path) for p in layouts.list_images(tmp_path)]
    assert found == ['a/y.Png', 'b/X.JPG', 'c.bmp', 'd.jpeg', 'z.tiff']
    assert len(layouts.list_images(tmp_path, max_dataset_size=2)) == 2
    assert layouts.list_images(tmp_path / 'missing') == []


# ---------------------------------------------------------------------------
# The built-in shapes2stripes.

def _read_tree(folder):
    return {os.path.relpath(os.path.join(r, f), folder): open(os.path.join(r, f), 'rb').read()
            for r, _, files in os.walk(folder) for f in files}


def test_shapes2stripes_is_deterministic(tmp_path):
    first = shapes.generate_shapes2stripes(str(tmp_path / 'one'), n_train=4, n_test=3)
    second = shapes.generate_shapes2stripes(str(tmp_path / 'two'), n_train=4, n_test=3)
    files = _read_tree(first)
    assert sorted(files) == sorted([f'{d}/{i:04d}.png' for d in ('trainA', 'trainB')
                                    for i in range(4)] +
                                   [f'{d}/{i:04d}.png' for d in ('testA', 'testB')
                                    for i in range(3)])
    assert files == _read_tree(second)
    image = Image.open(os.path.join(first, 'trainB', '0000.png'))
    assert (image.mode, image.size) == ('RGB', (64, 64))


def test_shapes2stripes_test_split_is_paired(tmp_path):
    folder = shapes.generate_shapes2stripes(str(tmp_path / 's'), n_train=2, n_test=5)
    pairs = layouts.ground_truth_pairs(folder)
    assert [os.path.basename(a) for a, _ in pairs] == [f'{i:04d}.png' for i in range(5)]
    for plain_path, striped_path in pairs:
        assert os.path.basename(plain_path) == os.path.basename(striped_path)
        plain = np.asarray(Image.open(plain_path), np.float32)
        striped = np.asarray(Image.open(striped_path), np.float32)
        background = plain[0, 0]
        assert np.array_equal(background, striped[0, 0])
        shape_plain = np.abs(plain - background).max(-1) > 40
        shape_striped = np.abs(striped - background).max(-1) > 40
        overlap = (shape_plain & shape_striped).sum() / (shape_plain | shape_striped).sum()
        assert overlap > 0.85  # the same shape at the same place
        dark = striped.max(-1) < 60
        assert dark[shape_plain].mean() > 0.25  # striped: dark bands inside the shape
        assert (plain.max(-1) < 60).mean() < 0.02  # plain: none


def test_shapes2stripes_paired_variant(tmp_path):
    unpaired = shapes.generate_shapes2stripes(str(tmp_path / 'u'), n_train=1, n_test=2)
    paired = shapes.generate_shapes2stripes(str(tmp_path / 'p'), n_train=3, n_test=2,
                                            paired=True)
    assert sorted(os.listdir(paired)) == ['test', 'train']
    assert len(os.listdir(os.path.join(paired, 'train'))) == 3
    pair = np.asarray(Image.open(os.path.join(paired, 'test', '0001.png')))
    assert pair.shape == (64, 128, 3)
    assert np.array_equal(pair[:, :64], np.asarray(Image.open(f'{unpaired}/testA/0001.png')))
    assert np.array_equal(pair[:, 64:], np.asarray(Image.open(f'{unpaired}/testB/0001.png')))


def test_prepare_generates_the_builtin_once(tmp_path, monkeypatch):
    monkeypatch.setattr(shapes, 'SHAPES_TRAIN', 6)
    monkeypatch.setattr(shapes, 'SHAPES_TEST', 2)
    cfg = config.CycleGANConfig(data_root=str(tmp_path))
    assert cfg.dataset == 'shapes2stripes'
    root = prepare(cfg)
    assert root == str(tmp_path / 'shapes2stripes')
    assert sorted(os.listdir(root)) == ['testA', 'testB', 'trainA', 'trainB']
    stamp = os.stat(os.path.join(root, 'trainA', '0000.png')).st_mtime_ns
    assert prepare(cfg.replace(seed=7)) == root  # cfg.seed plays no part
    assert os.stat(os.path.join(root, 'trainA', '0000.png')).st_mtime_ns == stamp
    paired = prepare(config.Pix2PixConfig(dataset='shapes2stripes',
                                          data_root=str(tmp_path)))
    assert paired == str(tmp_path / 'shapes2stripes_paired')
    assert sorted(os.listdir(tmp_path)) == ['shapes2stripes', 'shapes2stripes_paired']


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return Image.new('RGB', (64, 64))

    monkeypatch.setattr(shapes, 'render_shape', failing)
    with pytest.raises(KeyboardInterrupt):
        shapes.generate_shapes2stripes(str(tmp_path / 's'), n_train=4, n_test=2)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Hardening: URL schemes, archive sizes, kept partial downloads, file names.
# These tests make their own tiny images.

def _tiny_unaligned(folder):
    """A folder with one 8x8 PNG in each of trainA, trainB, testA, testB."""
    for i, sub in enumerate(('trainA', 'trainB', 'testA', 'testB')):
        os.makedirs(folder / sub)
        Image.new('RGB', (8, 8), (60 * i, 0, 0)).save(folder / sub / '0.png')
    return folder


@pytest.mark.parametrize('url', ['file:///etc/passwd#', 'ftp://127.0.0.1:9/', 'not a url',
                                 'http://[::1'])
def test_the_url_variable_takes_http_only(tmp_path, monkeypatch, url):
    monkeypatch.setenv(datasets.URL_VARIABLE, url)
    data_root = tmp_path / 'datasets'
    start = time.monotonic()
    with pytest.raises(DatasetError, match=re.escape(f'${datasets.URL_VARIABLE} ')) as error:
        prepare(_cyclegan_cfg(data_root, ''))
    assert time.monotonic() - start < 5 and '\n' not in str(error.value)
    assert not data_root.exists()


@pytest.mark.parametrize('url', ['file:///etc/passwd', 'ftp://127.0.0.1:9/x.zip', 'no url',
                                 'http://[::1'])
def test_download_refuses_other_schemes(tmp_path, url):
    with pytest.raises(DatasetError, match='http:// or https://|not a valid URL'):
        download.download(url, str(tmp_path / 'x.zip'))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('target', ['ftp://127.0.0.1:9/x.zip', 'file:///etc/passwd'])
def test_download_refuses_a_redirect_to_other_schemes(tmp_path, server, target):
    server.files['/x.zip'] = b'never served'
    server.tricks['/x.zip'] = {'redirect': target}
    start = time.monotonic()
    with pytest.raises(DatasetError, match='(?i)redirect'):
        download.download(server.url + '/x.zip', str(tmp_path / 'x.zip'), timeout=5)
    assert time.monotonic() - start < 5
    assert os.listdir(tmp_path) == []


def test_download_follows_a_redirect_to_http(tmp_path, server):
    server.files['/x.zip'] = b'ok'
    server.files['/old.zip'] = b'never served'
    server.tricks['/old.zip'] = {'redirect': server.url + '/x.zip'}
    download.download(server.url + '/old.zip', str(tmp_path / 'x.zip'))
    assert (tmp_path / 'x.zip').read_bytes() == b'ok'


def _bad_name(folder):
    """Writes a valid PNG whose file name is not UTF-8 (b'bad\\xff.png') into
    ``folder``; returns its name as os.listdir gives it (surrogate-escaped)."""
    raw = os.path.join(os.fsencode(folder), b'bad\xff.png')
    with open(raw, 'wb') as f:
        Image.new('RGB', (8, 8)).save(f, format='PNG')
    return os.fsdecode(b'bad\xff.png')


def test_file_names_that_are_not_utf8_are_skipped_with_one_warning(tmp_path, caplog):
    root = _tiny_unaligned(tmp_path / 'mine')
    bad = _bad_name(root / 'trainA')
    assert bad in os.listdir(root / 'trainA')
    with caplog.at_level(logging.WARNING, logger='cyclegan_tf'):
        assert layouts.list_images(root / 'trainA') == [str(root / 'trainA' / '0.png')]
        assert layouts.list_images(root / 'trainA') == [str(root / 'trainA' / '0.png')]
    warnings = [r.getMessage() for r in caplog.records if 'UTF-8' in r.getMessage()]
    assert len(warnings) == 1 and 'bad\\xff.png' in warnings[0], warnings
    warnings[0].encode('utf-8')  # printable on any UTF-8 stream
    assert prepare(config.CycleGANConfig(dataset=str(root))) == str(root)


def _bomb(tmp_path, kind, zeros=2 << 20, extra_entries=0):
    """An archive of horse2zebra with a tiny real layout plus ``zeros`` bytes
    of zeros (compressing to almost nothing) and ``extra_entries`` empty files."""
    source = _tiny_unaligned(tmp_path / 'source')
    entries = [(f'horse2zebra/{sub}/0.png', (source / sub / '0.png').read_bytes())
               for sub in ('trainA', 'trainB', 'testA', 'testB')]
    entries.append(('horse2zebra/trainA/zeros.png', bytes(zeros)))
    entries += [(f'horse2zebra/trainA/e{i}.txt', b'') for i in range(extra_entries)]
    data_root = tmp_path / 'datasets'
    data_root.mkdir()
    if kind == 'zip':
        with zipfile.ZipFile(data_root / 'horse2zebra.zip', 'w', zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                zf.writestr(name, data)
        return data_root, data_root / 'horse2zebra.zip'
    with tarfile.open(data_root / 'facades.tar.gz', 'w:gz') as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name.replace('horse2zebra', 'facades'))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return data_root, data_root / 'facades.tar.gz'


@pytest.mark.parametrize('kind', ['zip', 'tar.gz'])
def test_an_archive_that_expands_too_much_is_refused_unextracted(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(archives, 'EXPANSION_ALLOWANCE', 1 << 20)  # 1 MiB instead of 64
    data_root, archive = _bomb(tmp_path, kind)
    assert os.path.getsize(archive) < 20000  # 2 MiB of zeros in a few KB
    known = (datasets.CYCLEGAN_DATASETS['horse2zebra'] if kind == 'zip'
             else datasets.PIX2PIX_DATASETS['facades'])
    with pytest.raises(DatasetError) as error:
        datasets.fetch(known, str(data_root), 'http://127.0.0.1:9')
    message = str(error.value)
    assert 'would expand to 2.0 MiB' in message and 'more than 20 times' in message
    assert '\n' not in message
    assert os.listdir(data_root) == []  # nothing extracted, no scratch folder, archive gone


def test_an_archive_within_the_limit_is_extracted(tmp_path):
    data_root, archive = _bomb(tmp_path, 'zip')  # 2 MiB < 64 MiB allowance
    root = datasets.fetch(datasets.CYCLEGAN_DATASETS['horse2zebra'], str(data_root),
                          'http://127.0.0.1:9')
    assert os.path.getsize(os.path.join(root, 'trainA', 'zeros.png')) == 2 << 20


def test_an_archive_of_too_many_entries_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, 'MAX_ENTRIES', 10)
    data_root, archive = _bomb(tmp_path, 'zip', zeros=0, extra_entries=10)
    with pytest.raises(DatasetError, match='has 15 entries, more than 10'):
        datasets.fetch(datasets.CYCLEGAN_DATASETS['horse2zebra'], str(data_root),
                       'http://127.0.0.1:9')
    assert os.listdir(data_root) == []


def test_a_kept_part_is_resumed_by_the_next_run(tmp_path, server):
    archive = _zip_tree(_tiny_unaligned(tmp_path / 'source'), 'horse2zebra')
    server.files[H2Z_URL_PATH] = archive
    server.tricks[H2Z_URL_PATH] = {'cut_always': 100}
    data_root = tmp_path / 'datasets'
    with pytest.raises(DatasetError, match='partial download kept'):
        prepare(_cyclegan_cfg(data_root, server.url))
    kept = download.DOWNLOAD_ATTEMPTS * 100
    assert (data_root / '.horse2zebra.zip.part').stat().st_size == kept
    del server.tricks[H2Z_URL_PATH]  # the network is back
    server.requests.clear()
    root = prepare(_cyclegan_cfg(data_root, server.url))
    assert server.requests == [(H2Z_URL_PATH, f'bytes={kept}-')]
    assert len(layouts.list_images(os.path.join(root, 'testB'))) == 1
    assert os.listdir(data_root) == ['horse2zebra']


def test_a_part_that_the_server_contradicts_is_deleted(tmp_path, server):
    """416 for a resume (the part is longer than the file), then short answers:
    the part is not known to be a prefix of the file, so it goes."""
    server.files['/x.zip'] = b'0123456789' * 10
    server.tricks['/x.zip'] = {'cut_always': 30}
    (tmp_path / '.x.zip.part').write_bytes(b'9' * 500)
    with pytest.raises(DatasetError, match='deleted the partial file'):
        download.download(server.url + '/x.zip', str(tmp_path / 'x.zip'), attempts=3)
    assert os.listdir(tmp_path) == []
