"""Downloads verified files and extracts tar archives without trusting them.

A download is written to `<destination>.part` and renamed to its final name
only once it is complete (as long as the server announced) and its MD5
matches the published checksum, so a partial download is never mistaken for
a complete one. Archives are checked member by member before anything is
extracted: only regular files and folders that land inside the target folder
are accepted.
"""

import gzip
import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib

from datasets.progress import ProgressFn, ignore_progress
from slim_classifier.errors import UserError

PART_SUFFIX = '.part'
# Where converters keep downloads and extracted archives inside a dataset
# folder; removed once the conversion is complete.
DOWNLOAD_FOLDER = 'downloads'

_CHUNK_BYTES = 1 << 20
_USER_AGENT = 'slim-image-classifier-downloader'


class DownloadError(UserError):
    """A download failed, was incomplete or did not match its checksum."""


class ArchiveError(UserError):
    """An archive is corrupt, truncated or not an archive at all."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would escape the target folder or is not a plain file."""


def file_md5(path: str) -> str:
    """Returns the hex MD5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, 'rb') as source:
        for chunk in iter(lambda: source.read(_CHUNK_BYTES), b''):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, destination: str, md5: str | None,
             progress: ProgressFn = ignore_progress, timeout: float = 60.0,
             resume: bool = False) -> None:
    """Downloads `url` to `destination` unless a verified copy is already there.

    Args:
        url: an http:// or https:// URL.
        destination: the final path of the file; its folder is created.
        md5: the published hex MD5 of the file, or None where none is
            published (then only the announced length is checked).
        progress: told how many bytes have arrived.
        timeout: seconds to wait for the server at any one time.
        resume: continue a partial download left by an interrupted one (an
            HTTP range request; a server that ignores it sends the whole file
            again), and keep what arrived when this one fails too.

    Raises:
        ValueError: if the URL is not http(s).
        DownloadError: if the download fails, ends early or does not match
            `md5`; nothing is left under `destination` then.
    """
    if os.path.exists(destination):
        if md5 is None or file_md5(destination) == md5:
            return
        os.remove(destination)
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    partial = destination + PART_SUFFIX
    start = os.path.getsize(partial) if resume and os.path.exists(partial) else 0
    try:
        digest = _fetch(url, partial, progress, timeout, start)
        if md5 is not None and digest != md5:
            os.remove(partial)
            raise DownloadError('checksum mismatch for %s: expected MD5 %s, got %s'
                                % (url, md5, digest))
    except BaseException:
        if not resume and os.path.exists(partial):
            os.remove(partial)
        raise
    os.replace(partial, destination)


def extract_tar(archive_path: str, target_dir: str) -> None:
    """Extracts a tar archive (plain or compressed) into `target_dir`.

    Every member is checked before anything is written, so an unsafe archive
    leaves nothing behind.

    Args:
        archive_path: the archive.
        target_dir: where to extract; created if missing.

    Raises:
        UnsafeArchiveError: if a member is a link, a device or another special
            file, or its path leaves `target_dir` (absolute or with '..').
        ArchiveError: if the archive is corrupt or truncated.
    """
    os.makedirs(target_dir, exist_ok=True)
    root = os.path.realpath(target_dir)
    try:
        with tarfile.open(archive_path, 'r:*') as archive:
            members = archive.getmembers()
            for member in members:
                _check_member(member, root, archive_path)
            # The 'data' filter repeats the checks and also drops unsafe modes.
            archive.extractall(root, members=members, filter='data')
    except tarfile.FilterError as error:
        raise UnsafeArchiveError('%s: %s' % (archive_path, error)) from error
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ArchiveError('%s is not a complete, readable tar archive: %s'
                           % (archive_path, error)) from error


def _fetch(url: str, partial: str, progress: ProgressFn, timeout: float, start: int = 0) -> str:
    """Streams `url` into `partial` from byte `start` on; returns the hex MD5 of the whole file."""
    if urllib.parse.urlparse(url).scheme not in ('http', 'https'):
        raise ValueError('download URLs must be http:// or https://; got %r' % url)
    task = 'downloading %s' % os.path.basename(urllib.parse.urlparse(url).path)
    headers = {'User-Agent': _USER_AGENT}
    if start:
        headers['Range'] = 'bytes=%d-' % start
    request = urllib.request.Request(url, headers=headers)
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = start and response.status == 206
            if resumed:
                received = start
                with open(partial, 'rb') as earlier:
                    for chunk in iter(lambda: earlier.read(_CHUNK_BYTES), b''):
                        digest.update(chunk)
            length = _content_length(response)
            expected = None if length is None else length + (start if resumed else 0)
            with open(partial, 'ab' if resumed else 'wb') as output:
                progress(task, received, expected, 'bytes')
                for chunk in iter(lambda: response.read(_CHUNK_BYTES), b''):
                    output.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    progress(task, received, expected, 'bytes')
                output.flush()
                os.fsync(output.fileno())
    except urllib.error.HTTPError as error:
        raise DownloadError('could not download %s: HTTP %d %s'
                            % (url, error.code, error.reason)) from error
    except urllib.error.URLError as error:
        raise DownloadError('could not download %s: %s' % (url, error.reason)) from error
    except (http.client.HTTPException, OSError) as error:
        raise DownloadError('download of %s failed after %d bytes: %r'
                            % (url, received, error)) from error
    if expected is not None and received != expected:
        raise DownloadError('download of %s is incomplete: got %d of %d bytes'
                            % (url, received, expected))
    return digest.hexdigest()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get('Content-Length')
    return int(value) if value is not None and value.isdigit() else None


def _check_member(member: tarfile.TarInfo, root: str, archive_path: str) -> None:
    if not (member.isfile() or member.isdir()):
        kind = 'link' if member.issym() or member.islnk() else 'special file'
        raise UnsafeArchiveError('%s: member %r is a %s; only regular files and folders '
                                 'are extracted' % (archive_path, member.name, kind))
    destination = os.path.realpath(os.path.join(root, member.name))
    if os.path.isabs(member.name) or os.path.commonpath([root, destination]) != root:
        raise UnsafeArchiveError('%s: member %r would be written outside %s'
                                 % (archive_path, member.name, root))
