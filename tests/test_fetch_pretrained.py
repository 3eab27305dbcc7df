"""fetch_pretrained.py against a local HTTP server (127.0.0.1) serving archives the tests make."""

import os
import tarfile

import pytest

from tests import http_server
from tests import training_helpers as helpers
from tests import zoo_facts

ARCHIVE = 'mobilenet_v1_0.25_224.tgz'


@pytest.fixture
def server(tmp_path):
    """(served folder, base URL, requests as (path, Range)) of a server on 127.0.0.1."""
    root = tmp_path / 'served'
    root.mkdir()
    requests = []
    with http_server.serving(root, requests=requests) as url:
        yield root, url, requests


def _pack(net, directory, archive_name):
    """An archive named `archive_name` holding `net`'s published variables (random values)."""
    prefix = zoo_facts.write_published_checkpoint(net, str(directory / 'work' / 'model.ckpt'))
    path = directory / archive_name
    with tarfile.open(path, 'w:gz') as packed:
        for suffix in ('.index', '.data-00000-of-00001'):
            packed.add(prefix + suffix, arcname=os.path.basename(prefix) + suffix)
    return path


def _fetch(base_url, checkpoint_dir, model_name='mobilenet_v1_025'):
    return helpers.run_command('fetch_pretrained.py', '--model_name=' + model_name,
                               '--checkpoint_dir=%s' % checkpoint_dir, '--base_url=' + base_url,
                               check=False)


def test_fetches_checks_and_prints_the_archive(server, tmp_path):
    served, url, _ = server
    _pack('mobilenet_v1_025', served, ARCHIVE)
    result = _fetch(url, tmp_path / 'ckpt')
    assert result.returncode == 0, result.stderr
    path = str(tmp_path / 'ckpt' / ARCHIVE)
    assert result.stdout.strip().splitlines()[-1] == path
    assert open(path, 'rb').read() == (served / ARCHIVE).read_bytes()
    assert 'downloading %s' % ARCHIVE in result.stderr
    assert 'holds every model variable of mobilenet_v1_025' in result.stderr


def test_an_interrupted_download_is_resumed(server, tmp_path):
    served, url, requests = server
    data = _pack('mobilenet_v1_025', served, ARCHIVE).read_bytes()
    (tmp_path / 'ckpt').mkdir()
    (tmp_path / 'ckpt' / (ARCHIVE + '.part')).write_bytes(data[:len(data) // 2])
    result = _fetch(url, tmp_path / 'ckpt')
    assert result.returncode == 0, result.stderr
    assert requests == [('/' + ARCHIVE, 'bytes=%d-' % (len(data) // 2))]
    assert (tmp_path / 'ckpt' / ARCHIVE).read_bytes() == data


def test_a_cached_archive_that_does_not_open_is_set_aside_and_fetched_again(server, tmp_path):
    served, url, requests = server
    data = _pack('mobilenet_v1_025', served, ARCHIVE).read_bytes()
    (tmp_path / 'ckpt').mkdir()
    (tmp_path / 'ckpt' / ARCHIVE).write_bytes(data[:len(data) // 3])  # cut short long ago
    result = _fetch(url, tmp_path / 'ckpt')
    assert result.returncode == 0, result.stderr
    assert requests == [('/' + ARCHIVE, None)]
    assert (tmp_path / 'ckpt' / ARCHIVE).read_bytes() == data
    assert (tmp_path / 'ckpt' / (ARCHIVE + '.corrupt')).read_bytes() == data[:len(data) // 3]


def test_an_archive_of_another_net_is_refused_and_removed(server, tmp_path):
    served, url, _ = server
    _pack('lenet', served, ARCHIVE)  # the right name, the wrong variables
    result = _fetch(url, tmp_path / 'ckpt')
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: %s does not hold the published variables of '
                           'mobilenet_v1_025 (it lacks MobilenetV1/' % ARCHIVE)
    assert last.endswith('it was removed')
    assert os.listdir(tmp_path / 'ckpt') == []


def test_a_net_without_a_published_checkpoint_is_one_line(server, tmp_path):
    result = _fetch(server[1], tmp_path / 'ckpt', model_name='lenet')
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        'error: --model_name=lenet has no published checkpoint; these have one: '
        'inception_resnet_v2, inception_v1,')


@pytest.mark.parametrize('archive, folder', [
    ('resnet_v1_50_2016_08_28.tar.gz', 'https://storage.googleapis.com/download.tensorflow.org/'
                                       'models/'),
    ('mobilenet_v1_0.25_224.tgz', 'https://storage.googleapis.com/download.tensorflow.org/'
                                  'models/mobilenet_v1_2018_08_02/'),
    ('mobilenet_v2_1.4_224.tgz', 'https://storage.googleapis.com/mobilenet_v2/checkpoints/'),
    ('v3-small_224_1.0_float.tgz', 'https://storage.googleapis.com/mobilenet_v3/checkpoints/'),
    ('mobilenet_edgetpu_224_0.75.tgz', 'https://storage.googleapis.com/mobilenet_edgetpu/'
                                       'checkpoints/'),
])
def test_each_archive_is_fetched_from_the_folder_it_was_published_in(archive, folder):
    import fetch_pretrained
    assert fetch_pretrained.published_url(archive) == folder + archive


def test_every_published_archive_has_a_url_of_its_own_name():
    import fetch_pretrained
    from nets.zoo import ZOO
    archives = {entry.archive for entry in ZOO.values() if entry.archive}
    urls = {fetch_pretrained.published_url(archive) for archive in archives}
    assert len(urls) == len(archives)
    assert all(url.startswith('https://storage.googleapis.com/') for url in urls)
    assert {url.rsplit('/', 1)[1] for url in urls} == archives
