"""Tests for downloads, safe extraction and the MNIST, CIFAR-10 and flowers converters.

A real HTTP server on 127.0.0.1 serves small archives, generated here in the
datasets' real formats.
"""

import dataclasses
import gzip
import hashlib
import io
import json
import os
import pathlib
import stat
import struct
import tarfile

import numpy as np
import pytest
from PIL import Image

from datasets import download as download_module
from datasets.convert_cifar10 import convert_cifar10
from datasets.convert_flowers import convert_flowers
from datasets.convert_mnist import convert_mnist
from datasets.download import (ArchiveError, ArchiveTooLargeError, CorruptArchiveError,
                               DownloadError, UnsafeArchiveError, download, extract_tar)
from datasets.downloaded_archive import downloaded_archive
from datasets.progress import ignore_progress
from slim_classifier.errors import DiskFullError
from tests import http_server
from tests.tfrecord_reading import read_records, shard_paths

TRUNCATED_PATH = '/truncated.bin'


class _Handler(http_server.FolderHandler):
    """Serves a folder, plus one response that ends before its announced length."""

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        if self.path != TRUNCATED_PATH:
            super().do_GET()
            return
        self.send_response(200)
        self.send_header('Content-Length', '1000')
        self.end_headers()
        self.wfile.write(b'only ten b')


@dataclasses.dataclass
class Site:
    """A local HTTP server: the folder it serves, its URL, its redirects and the requests it got."""
    root: pathlib.Path
    url: str
    redirects: dict[str, str]
    requests: list[tuple[str, str | None]]


@pytest.fixture
def site(tmp_path):
    """Yields the `Site` of an HTTP server on 127.0.0.1 serving tmp_path/served."""
    root = tmp_path / 'served'
    root.mkdir()
    redirects, requests = {}, []
    with http_server.serving(root, _Handler, redirects=redirects, requests=requests) as url:
        yield Site(root, url, redirects, requests)


@pytest.fixture
def server(site):
    """(served folder, base URL) of `site`."""
    return site.root, site.url


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _read(path) -> bytes:
    with open(path, 'rb') as stored:
        return stored.read()


def test_download_verifies_the_checksum_and_renames_when_complete(server, tmp_path):
    root, url = server
    data = os.urandom(3000)
    (root / 'file.bin').write_bytes(data)
    destination = str(tmp_path / 'get' / 'file.bin')
    download(url + 'file.bin', destination, _md5(data))
    assert _read(destination) == data
    assert os.listdir(tmp_path / 'get') == ['file.bin']


def test_checksum_mismatch_leaves_no_file_claiming_to_be_complete(server, tmp_path):
    root, url = server
    (root / 'file.bin').write_bytes(b'tampered')
    destination = tmp_path / 'get' / 'file.bin'
    with pytest.raises(DownloadError, match='checksum mismatch .* expected MD5 %s' % _md5(b'x')):
        download(url + 'file.bin', str(destination), _md5(b'x'))
    assert os.listdir(tmp_path / 'get') == []


def test_download_ending_early_is_refused(server, tmp_path):
    _, url = server
    destination = tmp_path / 'get' / 'file.bin'
    with pytest.raises(DownloadError, match='incomplete: got 10 of 1000 bytes'):
        download(url + TRUNCATED_PATH.lstrip('/'), str(destination), None)
    assert os.listdir(tmp_path / 'get') == []


def test_missing_file_is_one_line_error(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match='HTTP 404') as raised:
        download(url + 'absent.bin', str(tmp_path / 'absent.bin'), None)
    assert '\n' not in str(raised.value)


def test_verified_download_is_reused_and_a_corrupt_one_replaced(server, tmp_path):
    root, url = server
    data = b'published bytes'
    (root / 'file.bin').write_bytes(data)
    destination = tmp_path / 'file.bin'
    destination.write_bytes(data)
    (root / 'file.bin').unlink()
    download(url + 'file.bin', str(destination), _md5(data))  # Served nothing: reused.
    assert destination.read_bytes() == data
    (root / 'file.bin').write_bytes(data)
    destination.write_bytes(b'corrupt')
    download(url + 'file.bin', str(destination), _md5(data))
    assert destination.read_bytes() == data


def test_only_http_urls_are_downloaded(tmp_path):
    with pytest.raises(ValueError, match='must be http:// or https://'):
        download('file:///etc/hostname', str(tmp_path / 'hostname'), None)


def test_a_mismatching_file_is_set_aside_never_overwritten(server, tmp_path):
    root, url = server
    data = b'published bytes'
    (root / 'file.bin').write_bytes(data)
    destination = tmp_path / 'file.bin'
    for stale in (b'stale one', b'stale two'):
        destination.write_bytes(stale)
        assert download(url + 'file.bin', str(destination), _md5(data)) is True
        assert destination.read_bytes() == data
    assert (tmp_path / 'file.bin.corrupt').read_bytes() == b'stale one'
    assert (tmp_path / 'file.bin.corrupt-2').read_bytes() == b'stale two'
    assert download(url + 'file.bin', str(destination), _md5(data)) is False


@pytest.mark.parametrize('location', ['/file.bin', '{url}file.bin'])
def test_a_redirect_within_the_same_origin_is_followed(site, tmp_path, location):
    data = os.urandom(2000)
    (site.root / 'file.bin').write_bytes(data)
    site.redirects['/moved.bin'] = location.format(url=site.url)
    destination = tmp_path / 'file.bin'
    download(site.url + 'moved.bin', str(destination), _md5(data))
    assert destination.read_bytes() == data
    assert [path for path, _ in site.requests] == ['/moved.bin', '/file.bin']


def test_a_resumed_download_keeps_its_range_through_a_redirect(site, tmp_path):
    data = os.urandom(5000)
    (site.root / 'file.bin').write_bytes(data)
    site.redirects['/moved.bin'] = '/file.bin'
    destination = tmp_path / 'file.bin'
    (tmp_path / 'file.bin.part').write_bytes(data[:1234])
    download(site.url + 'moved.bin', str(destination), _md5(data), resume=True)
    assert destination.read_bytes() == data
    assert site.requests == [('/moved.bin', 'bytes=1234-'), ('/file.bin', 'bytes=1234-')]


def test_a_redirect_to_plain_http_elsewhere_is_refused(site, tmp_path):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    (elsewhere / 'file.bin').write_bytes(b'from elsewhere')
    asked_elsewhere = []
    with http_server.serving(elsewhere, requests=asked_elsewhere) as other_url:
        site.redirects['/moved.bin'] = other_url + 'file.bin'
        with pytest.raises(DownloadError) as raised:
            download(site.url + 'moved.bin', str(tmp_path / 'get' / 'file.bin'), None)
    assert str(raised.value) == (
        'refused the redirect from %smoved.bin to %sfile.bin: downloads follow redirects only '
        'to https:// or to the same scheme, host and port' % (site.url, other_url))
    assert asked_elsewhere == []
    assert os.listdir(tmp_path / 'get') == []


@pytest.mark.parametrize('target', ['file:///etc/hostname', 'ftp://127.0.0.1/file.bin'])
def test_a_redirect_to_another_scheme_is_refused(site, tmp_path, target):
    site.redirects['/moved.bin'] = target
    with pytest.raises(DownloadError, match='refused the redirect from %smoved.bin to %s: '
                       % (site.url, target)) as raised:
        download(site.url + 'moved.bin', str(tmp_path / 'get' / 'file.bin'), None)
    assert '\n' not in str(raised.value)
    assert os.listdir(tmp_path / 'get') == []


def test_a_redirect_loop_is_one_line(site, tmp_path):
    site.redirects.update({'/a.bin': '/b.bin', '/b.bin': '/a.bin'})
    with pytest.raises(DownloadError, match='redirects in a loop') as raised:
        download(site.url + 'a.bin', str(tmp_path / 'a.bin'), None)
    assert '\n' not in str(raised.value)


@pytest.fixture
def https_site(tmp_path, monkeypatch):
    """Yields the `Site` of an HTTPS server on 127.0.0.1 whose certificate this process trusts."""
    certificate = http_server.self_signed_certificate(str(tmp_path))
    monkeypatch.setenv('SSL_CERT_FILE', certificate)
    root = tmp_path / 'served_over_https'
    root.mkdir()
    redirects, requests = {}, []
    with http_server.serving(root, redirects=redirects, requests=requests,
                             certificate=certificate) as url:
        yield Site(root, url, redirects, requests)


def test_a_redirect_to_https_is_followed(site, https_site, tmp_path):
    data = os.urandom(3000)
    (https_site.root / 'file.bin').write_bytes(data)
    site.redirects['/moved.bin'] = https_site.url + 'file.bin'
    destination = tmp_path / 'get' / 'file.bin'
    download(site.url + 'moved.bin', str(destination), _md5(data))
    assert destination.read_bytes() == data
    assert https_site.url.startswith('https://')
    assert [path for path, _ in https_site.requests] == ['/file.bin']


def test_a_redirect_from_https_down_to_http_is_refused(site, https_site, tmp_path):
    (site.root / 'file.bin').write_bytes(b'over plain http')
    https_site.redirects['/moved.bin'] = site.url + 'file.bin'
    with pytest.raises(DownloadError, match='refused the redirect from %smoved.bin to %sfile.bin'
                       % (https_site.url, site.url)):
        download(https_site.url + 'moved.bin', str(tmp_path / 'get' / 'file.bin'), None)
    assert site.requests == []


def _tar_gz(members: list[tarfile.TarInfo], contents: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as archive:
        for member in members:
            data = contents.get(member.name)
            if data is not None:
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file_member(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link_member(name: str, target: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = tarfile.SYMTYPE
    member.linkname = target
    return member


@pytest.mark.parametrize('member, message', [
    (_file_member('../escape.txt'), 'would be written outside'),
    (_file_member('inner/../../escape.txt'), 'would be written outside'),
    (_file_member('/tmp/absolute_escape.txt'), 'would be written outside'),
    (_link_member('inner/link', '../../outside'), 'is a link'),
])
def test_extraction_refuses_members_escaping_the_target(tmp_path, member, message):
    archive = tmp_path / 'evil.tar.gz'
    safe = _file_member('inner/safe.txt')
    contents = {'inner/safe.txt': b'ok'}
    if member.isfile():
        contents[member.name] = b'evil'
    archive.write_bytes(_tar_gz([safe, member], contents))
    target = tmp_path / 'out' / 'target'
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_tar(str(archive), str(target))
    # Nothing at all was extracted, inside or outside the target.
    assert os.listdir(target) == []
    assert sorted(os.listdir(tmp_path / 'out')) == ['target']
    assert not os.path.exists('/tmp/absolute_escape.txt')


def test_extraction_writes_regular_files(tmp_path):
    archive = tmp_path / 'good.tar.gz'
    archive.write_bytes(_tar_gz([_file_member('a/b.txt'), _file_member('c.txt')],
                                {'a/b.txt': b'bee', 'c.txt': b'sea'}))
    extract_tar(str(archive), str(tmp_path / 'out'))
    assert _read(tmp_path / 'out' / 'a' / 'b.txt') == b'bee'
    assert _read(tmp_path / 'out' / 'c.txt') == b'sea'


def test_without_tar_filters_files_get_the_modes_the_data_filter_gives(tmp_path, monkeypatch):
    # Python before 3.10.12 / 3.11.4 has no extraction filters; the modes are then set here.
    modes = {'setuid.bin': 0o4777, 'group_writable.txt': 0o664, 'exec_by_others.sh': 0o611,
             'private.txt': 0o400, 'tool': 0o755}
    members = []
    for name, mode in modes.items():
        member = _file_member('files/' + name)
        member.mode, member.uid, member.uname = mode, 4321, 'someone'
        members.append(member)
    folder = tarfile.TarInfo('files')
    folder.type, folder.mode = tarfile.DIRTYPE, 0o777
    archive = tmp_path / 'modes.tar.gz'
    archive.write_bytes(_tar_gz([folder] + members,
                                {member.name: b'x' for member in members}))

    def extracted_modes(directory):
        extract_tar(str(archive), str(directory))
        return {name: stat.S_IMODE(os.stat(directory / 'files' / name).st_mode)
                for name in modes}

    filtered = extracted_modes(tmp_path / 'filtered')
    monkeypatch.setattr(download_module, '_HAS_FILTERS', False)
    unfiltered = extracted_modes(tmp_path / 'unfiltered')
    assert unfiltered == filtered
    assert unfiltered['setuid.bin'] == 0o755 and unfiltered['exec_by_others.sh'] == 0o600
    assert all(os.stat(tmp_path / 'unfiltered' / 'files' / name).st_uid == os.geteuid()
               for name in modes)
    assert stat.S_IMODE(os.stat(tmp_path / 'unfiltered' / 'files').st_mode) & 0o022 == 0


def test_truncated_archive_is_refused(tmp_path):
    data = _tar_gz([_file_member('a.bin')], {'a.bin': os.urandom(20000)})
    archive = tmp_path / 'cut.tar.gz'
    archive.write_bytes(data[:len(data) // 2])
    with pytest.raises(ArchiveError, match='not a complete, readable tar archive'):
        extract_tar(str(archive), str(tmp_path / 'out'))


def test_a_gzip_checksum_error_at_the_end_is_found(tmp_path):
    data = _tar_gz([_file_member('a.bin')], {'a.bin': b'hello' * 1000})
    archive = tmp_path / 'bad_crc.tar.gz'
    # The last 8 bytes of a gzip stream are the CRC-32 and the length of the data.
    archive.write_bytes(data[:-8] + bytes([data[-8] ^ 0xff]) + data[-7:])
    with pytest.raises(CorruptArchiveError, match='bad_crc.tar.gz is not a complete, readable '
                       'tar archive: CRC check failed'):
        extract_tar(str(archive), str(tmp_path / 'out'))


def _plain_tar(contents: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as archive:
        for name, data in contents.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize('caps, message', [
    ({'max_bytes': 2999}, r'unpacks to more than 2999 bytes, the most extracted; it is refused'),
    ({'max_members': 2}, r'holds more than 2 members, the most extracted; it is refused'),
])
def test_extraction_over_a_cap_is_refused_before_writing(tmp_path, caps, message):
    archive = tmp_path / 'big.tar'
    archive.write_bytes(_plain_tar({'a.bin': bytes(1000), 'b.bin': bytes(1000),
                                    'c.bin': bytes(1000)}))
    target = tmp_path / 'out'
    with pytest.raises(ArchiveTooLargeError, match='big.tar ' + message) as raised:
        extract_tar(str(archive), str(target), **caps)
    assert '\n' not in str(raised.value)
    assert os.listdir(target) == []
    extract_tar(str(archive), str(target), max_bytes=3000, max_members=3)  # Exactly at the caps.
    assert sorted(os.listdir(target)) == ['a.bin', 'b.bin', 'c.bin']


ARCHIVE_NAME = 'photos.tgz'


def _good_archive() -> bytes:
    return _tar_gz([_file_member('photos/a.txt')], {'photos/a.txt': b'a photo'})


def _damaged(data: bytes, damage: str) -> bytes:
    if damage == 'truncated':
        return data[:len(data) // 2]
    if damage == 'bad checksum':
        return data[:-8] + bytes([data[-8] ^ 0xff]) + data[-7:]
    return b'<html>not an archive</html>'


def _extracted_text(dataset_dir, url, md5=None) -> str:
    with downloaded_archive(str(dataset_dir), url, ARCHIVE_NAME, md5,
                            ignore_progress) as (_, extracted):
        return _read(os.path.join(extracted, 'photos', 'a.txt')).decode()


@pytest.mark.parametrize('damage', ['truncated', 'bad checksum', 'not an archive'])
def test_a_corrupt_cached_archive_is_set_aside_and_downloaded_again(site, tmp_path, caplog,
                                                                     damage):
    good = _good_archive()
    (site.root / ARCHIVE_NAME).write_bytes(good)
    downloads = tmp_path / 'dataset' / 'downloads'
    downloads.mkdir(parents=True)
    cached = _damaged(good, damage)
    (downloads / ARCHIVE_NAME).write_bytes(cached)
    assert _extracted_text(tmp_path / 'dataset', site.url + ARCHIVE_NAME) == 'a photo'
    assert [path for path, _ in site.requests] == ['/' + ARCHIVE_NAME]
    # The archive and its extraction are gone; the damaged file the run found is kept.
    assert os.listdir(downloads) == [ARCHIVE_NAME + '.corrupt']
    assert (downloads / (ARCHIVE_NAME + '.corrupt')).read_bytes() == cached
    assert 'renamed it to %s.corrupt and downloading it again from %s' % (
        downloads / ARCHIVE_NAME, site.url + ARCHIVE_NAME) in caplog.text


def test_a_cached_archive_with_a_wrong_checksum_is_set_aside(site, tmp_path):
    good = _good_archive()
    (site.root / ARCHIVE_NAME).write_bytes(good)
    downloads = tmp_path / 'dataset' / 'downloads'
    downloads.mkdir(parents=True)
    stale = _tar_gz([_file_member('photos/a.txt')], {'photos/a.txt': b'an older photo'})
    (downloads / ARCHIVE_NAME).write_bytes(stale)
    assert _extracted_text(tmp_path / 'dataset', site.url + ARCHIVE_NAME, _md5(good)) == 'a photo'
    assert (downloads / (ARCHIVE_NAME + '.corrupt')).read_bytes() == stale


def test_an_archive_corrupt_when_downloaded_again_is_one_line_naming_the_url(site, tmp_path):
    (site.root / ARCHIVE_NAME).write_bytes(_damaged(_good_archive(), 'truncated'))
    dataset_dir = tmp_path / 'dataset'
    url = site.url + ARCHIVE_NAME
    with pytest.raises(CorruptArchiveError) as raised:
        _extracted_text(dataset_dir, url)
    message = str(raised.value)
    assert message.startswith('the archive from %s was corrupt twice, so it was removed: %s is '
                              'not a complete, readable tar archive: ' % (url, dataset_dir /
                                                                          'downloads' /
                                                                          ARCHIVE_NAME))
    assert '\n' not in message
    # Fetched twice, no more, and nothing broken is left claiming to be the archive.
    assert [path for path, _ in site.requests] == ['/' + ARCHIVE_NAME] * 2
    assert os.listdir(dataset_dir / 'downloads') == []


def test_an_unsafe_cached_archive_is_kept_and_not_downloaded_again(site, tmp_path):
    downloads = tmp_path / 'dataset' / 'downloads'
    downloads.mkdir(parents=True)
    unsafe = _tar_gz([_file_member('../evil.txt')], {'../evil.txt': b'evil'})
    (downloads / ARCHIVE_NAME).write_bytes(unsafe)
    with pytest.raises(UnsafeArchiveError, match='would be written outside'):
        _extracted_text(tmp_path / 'dataset', site.url + ARCHIVE_NAME)
    assert site.requests == []
    assert os.listdir(downloads) == [ARCHIVE_NAME]


def _idx_images(images: np.ndarray) -> bytes:
    header = struct.pack('>IIII', 2051, len(images), 28, 28)
    return gzip.compress(header + images.tobytes(), mtime=0)


def _idx_labels(labels: np.ndarray) -> bytes:
    return gzip.compress(struct.pack('>II', 2049, len(labels)) + labels.tobytes(), mtime=0)


@pytest.fixture
def mnist_files(server):
    """Serves tiny MNIST idx files; yields (base URL, checksums, source data)."""
    root, url = server
    random = np.random.RandomState(0)
    source, checksums = {}, {}
    for split, prefix, count in (('train', 'train', 12), ('test', 't10k', 5)):
        images = random.randint(0, 256, (count, 28, 28)).astype(np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        source[split] = (images, labels)
        for name, data in (('%s-images-idx3-ubyte.gz' % prefix, _idx_images(images)),
                           ('%s-labels-idx1-ubyte.gz' % prefix, _idx_labels(labels))):
            (root / name).write_bytes(data)
            checksums[name] = _md5(data)
    return url, checksums, source


def test_mnist_converts_to_grayscale_png_records(mnist_files, tmp_path):
    url, checksums, source = mnist_files
    dataset_dir = str(tmp_path / 'mnist')
    convert_mnist(dataset_dir, base_url=url, checksums=checksums)
    for split, (images, labels) in source.items():
        records = read_records(shard_paths(dataset_dir, 'mnist', split), channels=0)
        assert len(records) == len(images)
        for record in records:
            index = int(record['filename'].rsplit('/', 1)[1])
            assert record['format'] == 'png'
            assert record['label'] == labels[index]
            np.testing.assert_array_equal(record['pixels'], images[index][..., None])
    with open(os.path.join(dataset_dir, 'dataset_info.json'), encoding='utf-8') as info_file:
        info = json.load(info_file)
    assert info['splits'] == {'train': 12, 'test': 5}
    assert info['classes'] == [str(digit) for digit in range(10)]
    assert not os.path.exists(os.path.join(dataset_dir, 'downloads'))


def test_mnist_with_a_wrong_checksum_leaves_no_complete_looking_files(mnist_files, tmp_path):
    url, checksums, _ = mnist_files
    checksums = dict(checksums, **{'t10k-images-idx3-ubyte.gz': _md5(b'other')})
    dataset_dir = tmp_path / 'mnist'
    with pytest.raises(DownloadError, match='t10k-images-idx3-ubyte.gz'):
        convert_mnist(str(dataset_dir), base_url=url, checksums=checksums)
    assert not os.path.exists(dataset_dir / 'dataset_info.json')
    assert 't10k-images-idx3-ubyte.gz' not in os.listdir(dataset_dir / 'downloads')
    assert not any(name.endswith('.part') for name in os.listdir(dataset_dir / 'downloads'))


def _cifar_archive(batches: dict[str, bytes], class_names: list[str]) -> bytes:
    contents = {'cifar-10-batches-bin/' + name: data for name, data in batches.items()}
    contents['cifar-10-batches-bin/batches.meta.txt'] = ('\n'.join(class_names) + '\n\n').encode()
    return _tar_gz([_file_member(name) for name in contents], contents)


def test_cifar10_converts_planar_records_to_rgb_png(server, tmp_path):
    root, url = server
    random = np.random.RandomState(1)
    class_names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                   'ship', 'truck']
    batches, source = {}, {}
    names = ['data_batch_%d.bin' % number for number in range(1, 6)] + ['test_batch.bin']
    for number, name in enumerate(names):
        planes = random.randint(0, 256, (2, 3, 32, 32)).astype(np.uint8)
        labels = np.array([number, 9 - number], np.uint8)
        batches[name] = b''.join(bytes([label]) + plane.tobytes()
                                 for label, plane in zip(labels, planes))
        for index in range(2):
            # Channel-planar R, G, B to height x width x channel.
            source['%s/%05d' % (name, index)] = (np.moveaxis(planes[index], 0, -1), labels[index])
    archive = _cifar_archive(batches, class_names)
    (root / 'cifar-10-binary.tar.gz').write_bytes(archive)
    dataset_dir = str(tmp_path / 'cifar10')
    convert_cifar10(dataset_dir, url=url + 'cifar-10-binary.tar.gz', md5=_md5(archive))
    records = {split: read_records(shard_paths(dataset_dir, 'cifar10', split))
               for split in ('train', 'test')}
    assert [len(records['train']), len(records['test'])] == [10, 2]
    for record in records['train'] + records['test']:
        pixels, label = source[record['filename']]
        assert record['label'] == label
        assert record['class_text'] == class_names[label]
        np.testing.assert_array_equal(record['pixels'], pixels)
    with open(os.path.join(dataset_dir, 'labels.txt'), encoding='utf-8') as labels_file:
        assert labels_file.read().splitlines()[1] == '1:automobile'


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.RandomState(seed).randint(0, 256, (5, 6, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(buffer, 'JPEG')
    return buffer.getvalue()


FLOWER_CLASSES = ['daisy', 'dandelion', 'roses', 'sunflowers', 'tulips']


def _flowers_archive(extra: list[tarfile.TarInfo] = ()) -> bytes:
    contents = {'flower_photos/LICENSE.txt': b'licence'}
    for class_index, class_name in enumerate(FLOWER_CLASSES):
        for index in range(4):
            contents['flower_photos/%s/%d.jpg' % (class_name, index)] = _jpeg(
                10 * class_index + index)
    members = [_file_member(name) for name in contents] + list(extra)
    return _tar_gz(members, dict(contents, **{member.name: b'x' for member in extra}))


def test_flowers_converts_with_five_shards_per_split(server, tmp_path):
    root, url = server
    (root / 'flower_photos.tgz').write_bytes(_flowers_archive())
    dataset_dir = str(tmp_path / 'flowers')
    summary = convert_flowers(dataset_dir, url=url + 'flower_photos.tgz', validation_count=5)
    assert summary.split_sizes == {'train': 15, 'validation': 5}
    for split in ('train', 'validation'):
        assert len(shard_paths(dataset_dir, 'flowers', split)) == 5
    validation = read_records(shard_paths(dataset_dir, 'flowers', 'validation'))
    assert sorted(record['class_text'] for record in validation) == FLOWER_CLASSES
    with open(os.path.join(dataset_dir, 'dataset_info.json'), encoding='utf-8') as info_file:
        info = json.load(info_file)
    assert info['classes'] == FLOWER_CLASSES
    assert info['image_format'] == 'jpeg'
    assert not os.path.exists(os.path.join(dataset_dir, 'downloads'))


def test_flowers_archive_escaping_its_folder_is_refused(server, tmp_path):
    root, url = server
    (root / 'flower_photos.tgz').write_bytes(_flowers_archive([_file_member('../../evil.txt')]))
    dataset_dir = tmp_path / 'flowers'
    with pytest.raises(UnsafeArchiveError, match="'../../evil.txt' would be written outside"):
        convert_flowers(str(dataset_dir), url=url + 'flower_photos.tgz')
    assert not os.path.exists(dataset_dir / 'dataset_info.json')
    assert not os.path.exists(tmp_path / 'evil.txt')
    assert not os.path.exists(dataset_dir / 'evil.txt')


# --- A full device (a real tmpfs) ------------------------------------------------------------

def test_extraction_onto_a_full_device_is_one_line_naming_the_folder(tmp_path, mount_tmpfs):
    archive = tmp_path / 'big.tar.gz'
    archive.write_bytes(_tar_gz([_file_member('big.bin')], {'big.bin': os.urandom(256 << 10)}))
    target = mount_tmpfs('small', '64k') / 'out'
    with pytest.raises(DiskFullError) as raised:
        extract_tar(str(archive), str(target))
    assert str(raised.value) == ('no space left on the device to write %s; free space there and '
                                 'run the command again' % target)


def test_a_download_onto_a_full_device_is_one_line_naming_the_file(server, mount_tmpfs):
    served, url = server
    (served / 'big.bin').write_bytes(os.urandom(256 << 10))
    destination = mount_tmpfs('small', '64k') / 'big.bin'
    with pytest.raises(DiskFullError) as raised:
        download(url + '/big.bin', str(destination), None)
    assert str(raised.value) == ('no space left on the device to write %s.part; free space there '
                                 'and run the command again' % destination)
    assert os.listdir(destination.parent) == []
