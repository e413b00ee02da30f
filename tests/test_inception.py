"""inception.py: the FID Inception's variable-name map and shapes, its input
ops, the weights' checks and download, and its features against the
reference pool_3 features of ../shared/fixtures/fid (real weights, once per
module)."""

import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cyclegan_tf.data import layouts
from cyclegan_tf.evaluation import inception
from cyclegan_tf.evaluation.inception import WeightsError

tf1 = tf.compat.v1
WEIGHTS = 'pt_inception-2015-12-05_from_nvlabs_noFC.pth'
SPLITS = ('trainA', 'trainB', 'testA', 'testB')


@pytest.fixture(scope='module')
def built():
    """(graph, network, pool_3) of one InceptionV3 on [None, 299, 299, 3]."""
    graph = tf.Graph()
    with graph.as_default():
        net = inception.InceptionV3()
        pool3 = net(tf1.placeholder(tf.float32, [None, 299, 299, 3], name='x'))
    return graph, net, pool3


@pytest.fixture(scope='module')
def shapes(built):
    return inception.expected_shapes(built[1])


@pytest.fixture(scope='module')
def extractors():
    """Weights path -> FeatureExtractor, made once per module."""
    made = {}
    yield made
    for extractor in made.values():
        extractor.close()


@pytest.fixture
def extractor(fixtures_dir, extractors):
    """The module's FeatureExtractor with the fixtures' weights (fixtures_dir
    skips or fails first where they are missing)."""
    path = str(fixtures_dir / 'fid' / WEIGHTS)
    if path not in extractors:
        extractors[path] = inception.FeatureExtractor(path, batch_size=8, progress=False)
    return extractors[path]


def _zeros(shapes):
    return {key: np.ones(shape, np.float32) if key.endswith('bn.weight')
            else np.zeros(shape, np.float32) for key, shape in shapes.items()}


# ---------------------------------------------------------------------------
# The graph.

def test_variables_map_one_to_one_to_pytorch_fid_keys(built, shapes):
    graph, net, _ = built
    with graph.as_default():
        assert not tf1.trainable_variables()  # evaluated only, never in an optimizer
        assert len(tf1.global_variables()) == len(net.global_variables) == 94 * 4
    blocks = ['Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'Conv2d_3b_1x1',
              'Conv2d_4a_3x3', 'Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b',
              'Mixed_6c', 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c']
    assert sorted({key.split('.')[0] for key in shapes}) == sorted(blocks)
    # 94 BasicConv2d: 5 + 3 x 7 (A) + 4 (B) + 4 x 10 (C) + 6 (D) + 2 x 9 (E).
    assert len(shapes) == 94 * 5
    assert shapes['Conv2d_1a_3x3.conv.weight'] == [32, 3, 3, 3]
    assert shapes['Mixed_6b.branch7x7_2.conv.weight'] == [128, 128, 1, 7]
    assert shapes['Mixed_7c.branch3x3dbl_3b.conv.weight'] == [384, 384, 3, 1]
    assert shapes['Mixed_7c.branch_pool.conv.weight'] == [192, 2048, 1, 1]
    assert shapes['Mixed_5b.branch_pool.bn.running_var'] == [32]
    variable = next(v for v in net.global_variables if 'Mixed_6b/branch7x7_2/conv' in v.name)
    assert variable.op.name == 'FID_InceptionV3/Mixed_6b/branch7x7_2/conv/weight'
    assert variable.shape.as_list() == [1, 7, 128, 128]  # HWIO
    assert net.key_of(variable) == 'Mixed_6b.branch7x7_2.conv.weight'


def test_block_shapes_and_the_fid_pools(built):
    graph, _, pool3 = built
    assert pool3.shape.as_list() == [None, 2048]

    def shape(name):
        return graph.get_tensor_by_name(f'FID_InceptionV3/{name}:0').shape.as_list()[1:]

    assert shape('max_pool_1') == [73, 73, 64]
    assert shape('max_pool_2') == [35, 35, 192]
    assert shape('Mixed_5b/concat') == [35, 35, 256]
    assert shape('Mixed_5d/concat') == [35, 35, 288]
    assert shape('Mixed_6a/concat') == [17, 17, 768]
    assert shape('Mixed_6e/concat') == [17, 17, 768]
    assert shape('Mixed_7a/concat') == [8, 8, 1280]
    assert shape('Mixed_7c/concat_2') == [8, 8, 2048]
    kinds = {op.name.split('/')[1]: [] for op in graph.get_operations()
             if op.type in ('AvgPool', 'MaxPool')}
    for op in graph.get_operations():
        if op.type in ('AvgPool', 'MaxPool'):
            kinds[op.name.split('/')[1]].append((op.type, op.get_attr('padding').decode(),
                                                 op.get_attr('strides')[1]))
    # SAME average pools leave the padding out: count_include_pad=False.
    for block in ('Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6b', 'Mixed_6e', 'Mixed_7b'):
        assert kinds[block] == [('AvgPool', 'SAME', 1)]
    assert kinds['Mixed_7c'] == [('MaxPool', 'SAME', 1)]  # FIDInceptionE_2
    assert kinds['Mixed_6a'] == kinds['Mixed_7a'] == [('MaxPool', 'VALID', 2)]


def test_a_second_network_of_the_same_name_raises(built):
    graph, net, _ = built
    with graph.as_default():
        with pytest.raises(ValueError, match='already exists'):
            inception.InceptionV3()
        with pytest.raises(ValueError, match=r'\[N, H, W, 3\]'):
            net(tf1.placeholder(tf.float32, [None, 299, 299, 1]))


def test_preprocess_resizes_bilinear_and_maps_128_to_0(graph):
    rng = np.random.RandomState(0)
    rgb = rng.randint(0, 256, [2, 40, 30, 3]).astype(np.uint8)
    gray = rng.randint(0, 256, [1, 20, 50, 1]).astype(np.uint8)
    sess = tf1.Session(graph=graph)
    out, out_gray, direct, flat = sess.run([
        inception.preprocess(tf.constant(rgb)), inception.preprocess(tf.constant(gray)),
        tf1.image.resize_bilinear(rgb.astype(np.float32), [299, 299], align_corners=False),
        inception.preprocess(tf.fill([1, 7, 9, 3], 128.0))])
    assert out.shape == (2, 299, 299, 3) and out.dtype == np.float32
    assert np.allclose(out, (direct - 128) / 128, atol=1e-6)
    assert out_gray.shape == (1, 299, 299, 3)
    assert np.array_equal(out_gray[..., 0], out_gray[..., 2])
    assert np.all(flat == 0)
    with pytest.raises(ValueError, match='1 or 3'):
        inception.preprocess(tf.zeros([1, 8, 8, 2]))


# ---------------------------------------------------------------------------
# Weights.

def test_check_weights_wants_exactly_pytorch_fids_layout(shapes):
    state = _zeros(shapes)
    inception.check_weights(dict(state, **{'fc.weight': np.full([1008, 2048], np.nan),
                                           'Conv2d_1a_3x3.bn.num_batches_tracked': 0}),
                            'ok', shapes)
    missing = dict(state)
    del missing['Mixed_6c.branch7x7dbl_4.bn.running_var']
    with pytest.raises(WeightsError, match='key layout.*1 keys missing.*Mixed_6c'):
        inception.check_weights(missing, 'x.pth', shapes)
    with pytest.raises(WeightsError, match='unexpected keys.*AuxLogits'):
        inception.check_weights(dict(state, **{'AuxLogits.fc.weight': np.zeros(1)}), 'x',
                                shapes)
    with pytest.raises(WeightsError, match=r'has shape \[64, 3, 3, 3\]'):
        inception.check_weights(dict(state, **{'Conv2d_1a_3x3.conv.weight': np.zeros(
            [64, 3, 3, 3])}), 'x', shapes)
    with pytest.raises(WeightsError, match='not all 1'):
        inception.check_weights(dict(state, **{'Mixed_5b.branch1x1.bn.weight': np.full(
            [64], 2.0)}), 'x', shapes)


def test_an_unreadable_weights_file_is_one_weights_error(tmp_path):
    path = tmp_path / 'bad.pth'
    path.write_bytes(b'not a pth file at all')
    with pytest.raises(WeightsError, match='cannot read the FID Inception weights .*bad.pth'):
        inception.load_weights(str(path))
    with pytest.raises(WeightsError, match='no weights file'):
        inception.FeatureExtractor(str(tmp_path / 'missing.pth'))
    assert issubclass(WeightsError, layouts.DatasetError)  # every script's user error


def test_weights_download_into_the_cache_folder_checked_by_sha256(tmp_path, server,
                                                                  monkeypatch):
    body = os.urandom(3000)
    server.files['/fid/weights.pth'] = body
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    monkeypatch.setattr(inception, 'WEIGHTS_URL', server.url + '/fid/weights.pth')
    monkeypatch.setattr(inception, 'WEIGHTS_SHA256', hashlib.sha256(body).hexdigest())
    assert inception.cache_dir() == str(tmp_path / 'xdg' / 'cyclegan-tf')
    path = inception.default_weights()
    assert path == str(tmp_path / 'xdg' / 'cyclegan-tf' / inception.WEIGHTS_FILE)
    assert open(path, 'rb').read() == body
    assert os.listdir(os.path.dirname(path)) == [inception.WEIGHTS_FILE]
    server.files.clear()  # a second use finds the file
    assert inception.default_weights() == path

    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert inception.cache_dir() == str(tmp_path / 'home' / '.cache' / 'cyclegan-tf')


def test_a_download_with_another_sha256_leaves_nothing_behind(tmp_path, server):
    server.files['/w.pth'] = b'tampered' * 100
    folder = tmp_path / 'cache'
    with pytest.raises(WeightsError, match='has sha256 .* expected 6726825d0af5.*deleted it'):
        inception.default_weights(str(folder), url=server.url + '/w.pth')
    assert os.listdir(folder) == []
    with pytest.raises(layouts.DatasetError, match='could not download.*HTTP 404'):
        inception.default_weights(str(folder), url=server.url + '/missing.pth')
    assert os.listdir(folder) == []


# ---------------------------------------------------------------------------
# Features with the real weights.

def test_features_match_the_reference_pool3_features(extractor, fixtures_dir):
    reference = np.load(fixtures_dir / 'fid' / 'horse2zebra_mini_pool3.npz')
    data_dir = fixtures_dir.parent / 'data' / 'horse2zebra_mini'
    paths = [p for split in SPLITS for p in layouts.list_images(str(data_dir / split))]
    features, kept = extractor.file_features(paths)  # batches of 8 across the splits
    assert kept == paths and features.shape == (18, 2048) and features.dtype == np.float32
    expected = np.concatenate([reference[split] for split in SPLITS])
    assert np.abs(expected).max() > 2.0  # features reach about 6
    assert np.abs(features - expected).max() < 1e-3


def test_mixed_sizes_grayscale_and_skipped_files(extractor, fixtures_dir, tmp_path, caplog):
    data_dir = fixtures_dir.parent / 'data' / 'horse2zebra_mini'
    photo = np.asarray(Image.open(data_dir / 'testA' / 'n02381460_1000.jpg').convert('RGB'))
    gray = np.asarray(Image.fromarray(photo).convert('L'))
    wide = np.asarray(Image.fromarray(photo).resize((300, 200)))
    alone = np.concatenate([extractor.features([image]) for image in (photo, gray, wide)])
    together = extractor.features([photo, gray[..., None], wide])  # one batch, mixed sizes
    assert np.abs(together - alone).max() < 1e-4
    assert np.abs(extractor.features([np.repeat(gray[..., None], 3, -1)]) - alone[1]).max() < 1e-4
    assert np.abs(extractor.features(photo[None].astype(np.float64)) - alone[0]).max() < 1e-4

    Image.fromarray(photo).save(tmp_path / 'a.png')
    (tmp_path / 'b.jpg').write_bytes(b'no jpeg')
    features, kept = extractor.file_features([str(tmp_path / 'a.png'), str(tmp_path / 'b.jpg')])
    assert kept == [str(tmp_path / 'a.png')] and features.shape == (1, 2048)
    assert np.abs(features[0] - alone[0]).max() < 1e-4  # PNG: the same pixels
    assert 'skipping unreadable image' in caplog.text and 'b.jpg' in caplog.text


def test_throughput_reports_images_per_second(extractor):
    result = inception.throughput(extractor, num_images=3, image_size=64, warmup=0)
    assert result['images'] == 3 and result['batch_size'] == 8
    assert result['images_per_s'] == pytest.approx(3 / result['seconds'])
    assert result['s_per_1000_images'] == pytest.approx(1000 * result['seconds'] / 3)
