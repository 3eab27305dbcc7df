"""Downloads verified files and extracts tar archives without trusting them.

A download is written to `<destination>.part` and renamed to its final name
only once it is complete (as long as the server announced) and its MD5
matches the published checksum, so a partial download is never mistaken for
a complete one. A redirect is followed only to https:// or to the same
scheme, host and port; one that would downgrade to plain http, or leave for
file:// or ftp://, is refused.

A file found at the destination that does not match the checksum, or an
archive there that turns out to be corrupt, is renamed to
`<destination>.corrupt` (never deleted: the user may have put it there) and
downloaded again, once (`download_and_open`).

Archives are checked member by member before anything is extracted: only
regular files and folders that land inside the target folder are accepted,
and no more members or bytes than a generous cap. A compressed archive is
read to its very end, so that a checksum error in its last bytes is found.
"""

import copy
import gzip
import hashlib
import http.client
import logging
import lzma
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from typing import TypeVar

from datasets.progress import ProgressFn, ignore_progress
from slim_classifier.errors import UserError
from slim_classifier.runtime.files import disk_full_named

PART_SUFFIX = '.part'
# What a file at a download's destination is renamed to when it is corrupt.
CORRUPT_SUFFIX = '.corrupt'
# Where converters keep downloads and extracted archives inside a dataset
# folder; removed once the conversion is complete.
DOWNLOAD_FOLDER = 'downloads'

# Beyond these an archive is refused before anything is written. Generous: the
# archives downloaded here (CIFAR-10, the flower photos, published checkpoints)
# unpack to well under 1 GiB, in at most a few thousand files.
MAX_EXTRACTED_BYTES = 20 << 30
MAX_MEMBERS = 1_000_000

_CHUNK_BYTES = 1 << 20
_USER_AGENT = 'slim-image-classifier-downloader'
# The errors of a tar stream, or of its gzip or xz compression, that is corrupt or cut short.
_CORRUPTION_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)
# tarfile's extraction filters came with Python 3.10.12 and 3.11.4; before them
# (Debian 12's 3.11.2, say) `_data_member` does what the 'data' filter does to
# the members `_checked_members` lets through.
_HAS_FILTERS = hasattr(tarfile, 'data_filter')
_FILTER_ERRORS = (tarfile.FilterError,) if _HAS_FILTERS else ()

log = logging.getLogger('download')
Opened = TypeVar('Opened')


class DownloadError(UserError):
    """A download failed, was incomplete or did not match its checksum."""


class ArchiveError(UserError):
    """An archive is corrupt, truncated or not an archive at all."""


class CorruptArchiveError(ArchiveError):
    """An archive cannot be read to its end: truncated, damaged, or not an archive at all."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would escape the target folder or is not a plain file."""


class ArchiveTooLargeError(ArchiveError):
    """An archive holds more members or bytes than extraction allows."""


def file_md5(path: str) -> str:
    """Returns the hex MD5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, 'rb') as source:
        for chunk in iter(lambda: source.read(_CHUNK_BYTES), b''):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, destination: str, md5: str | None,
             progress: ProgressFn = ignore_progress, timeout: float = 60.0,
             resume: bool = False) -> bool:
    """Downloads `url` to `destination` unless a verified copy is already there.

    A file at `destination` that does not match `md5` is renamed to
    `<destination>.corrupt` (see `set_aside`) and downloaded again.

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

    Returns:
        True if the file was downloaded now, False if the copy already at
        `destination` was kept.

    Raises:
        ValueError: if the URL is not http(s).
        DownloadError: if the download fails, ends early, does not match
            `md5` or is redirected elsewhere than https:// or the same origin;
            nothing is left under `destination` then.
    """
    if os.path.exists(destination):
        if md5 is None or file_md5(destination) == md5:
            return False
        log.warning('%s does not match the published MD5 %s; renamed it to %s and downloading '
                    'it again', destination, md5, set_aside(destination))
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
    return True


def download_and_open(url: str, destination: str, md5: str | None,
                      open_archive: Callable[[str], Opened],
                      progress: ProgressFn = ignore_progress, timeout: float = 60.0,
                      resume: bool = False) -> Opened:
    """Downloads an archive like `download` and opens it, downloading it again once if corrupt.

    An archive already at `destination` (from an earlier run, or put there by
    the user) that `open_archive` finds corrupt is renamed to
    `<destination>.corrupt`; one this call downloaded is ours and is removed.
    Either way it is downloaded again, once.

    Args:
        url, destination, md5, progress, timeout, resume: as for `download`.
        open_archive: reads the archive at the path it is given (extracts it,
            say), raising CorruptArchiveError if it cannot.

    Returns:
        What `open_archive` returned.

    Raises:
        DownloadError: as for `download`.
        CorruptArchiveError: if the archive downloaded again is corrupt too
            (it is removed).
        ArchiveError: for any other fault `open_archive` finds (the archive
            is kept: downloading it again would not change it).
    """
    downloaded = download(url, destination, md5, progress, timeout, resume)
    try:
        return open_archive(destination)
    except CorruptArchiveError as error:
        if downloaded:
            os.remove(destination)
            log.warning('The archive just downloaded from %s is corrupt (%s); downloading it '
                        'again', url, error)
        else:
            log.warning('%s; renamed it to %s and downloading it again from %s', error,
                        set_aside(destination), url)
    download(url, destination, md5, progress, timeout, resume)
    try:
        return open_archive(destination)
    except CorruptArchiveError as error:
        os.remove(destination)
        raise CorruptArchiveError('the archive from %s was corrupt twice, so it was removed: %s'
                                  % (url, error)) from error


def set_aside(path: str) -> str:
    """Renames `path` to the first free name of `<path>.corrupt`, `<path>.corrupt-2`, ...

    Returns:
        The new name.
    """
    renamed, number = path + CORRUPT_SUFFIX, 1
    while os.path.lexists(renamed):
        number += 1
        renamed = '%s%s-%d' % (path, CORRUPT_SUFFIX, number)
    os.rename(path, renamed)
    return renamed


def extract_tar(archive_path: str, target_dir: str, max_bytes: int = MAX_EXTRACTED_BYTES,
                max_members: int = MAX_MEMBERS) -> None:
    """Extracts a tar archive (plain or compressed) into `target_dir`.

    Every member is checked, and the members counted and their sizes summed,
    before anything is written, so an unsafe or oversized archive leaves
    nothing behind. A corrupt one may leave part of its files.

    Args:
        archive_path: the archive.
        target_dir: where to extract; created if missing.
        max_bytes: the most bytes its files may add up to.
        max_members: the most members (files and folders) it may hold.

    Raises:
        UnsafeArchiveError: if a member is a link, a device or another special
            file, or its path leaves `target_dir` (absolute or with '..').
        ArchiveTooLargeError: if it holds more than `max_members` members or
            more than `max_bytes` bytes.
        CorruptArchiveError: if the archive is corrupt or truncated.
        DiskFullError: if the device of `target_dir` fills up (part of the
            files may be left).
    """
    os.makedirs(target_dir, exist_ok=True)
    root = os.path.realpath(target_dir)
    try:
        with (disk_full_named(target_dir, 'free space there and run the command again'),
              tarfile.open(archive_path, 'r:*') as archive):
            members = _checked_members(archive, root, archive_path, max_bytes, max_members)
            # The 'data' filter repeats the checks and also drops unsafe modes.
            if _HAS_FILTERS:
                archive.extractall(root, members=members, filter='data')
            else:
                archive.extractall(root, members=[_data_member(member) for member in members])
            # The end of a compressed stream holds its checksum, which tar never reads.
            while archive.fileobj.read(_CHUNK_BYTES):
                pass
    except _FILTER_ERRORS as error:
        raise UnsafeArchiveError('%s: %s' % (archive_path, error)) from error
    except _CORRUPTION_ERRORS as error:
        raise CorruptArchiveError('%s is not a complete, readable tar archive: %s'
                                  % (archive_path, error)) from error


def _data_member(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """A checked member as the 'data' filter extracts it: owned by whoever extracts it,
    without set-id, sticky or group/other write bits; a file readable and writable by its
    owner, and executable by others only if by its owner; a folder (which the filter
    leaves to the umask) enterable by its owner."""
    extracted = copy.copy(member)
    extracted.uid, extracted.gid = os.geteuid(), os.getegid()
    extracted.uname = extracted.gname = ''
    mode = member.mode & 0o755
    if member.isdir():
        extracted.mode = mode | 0o700
    else:
        extracted.mode = (mode if mode & 0o100 else mode & ~0o111) | 0o600
    return extracted


def _checked_members(archive: tarfile.TarFile, root: str, archive_path: str, max_bytes: int,
                     max_members: int) -> list[tarfile.TarInfo]:
    """The members of `archive`, each checked, read no further than the caps allow."""
    members, total_bytes = [], 0
    for member in archive:
        _check_member(member, root, archive_path)
        members.append(member)
        total_bytes += member.size if member.isfile() else 0
        if len(members) > max_members:
            raise ArchiveTooLargeError('%s holds more than %d members, the most extracted; it '
                                       'is refused' % (archive_path, max_members))
        if total_bytes > max_bytes:
            raise ArchiveTooLargeError('%s unpacks to more than %d bytes, the most extracted; '
                                       'it is refused' % (archive_path, max_bytes))
    return members


def _fetch(url: str, partial: str, progress: ProgressFn, timeout: float, start: int = 0) -> str:
    """Streams `url` into `partial` from byte `start` on; returns the hex MD5 of the whole file."""
    if urllib.parse.urlparse(url).scheme not in ('http', 'https'):
        raise ValueError('download URLs must be http:// or https://; got %r' % url)
    task = 'downloading %s' % os.path.basename(urllib.parse.urlparse(url).path)
    headers = {'User-Agent': _USER_AGENT}
    if start:
        headers['Range'] = 'bytes=%d-' % start
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(_SafeRedirectHandler)
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    try:
        with opener.open(request, timeout=timeout) as response:
            resumed = start and response.status == 206
            if resumed:
                received = start
                with open(partial, 'rb') as earlier:
                    for chunk in iter(lambda: earlier.read(_CHUNK_BYTES), b''):
                        digest.update(chunk)
            length = _content_length(response)
            expected = None if length is None else length + (start if resumed else 0)
            with (disk_full_named(partial, 'free space there and run the command again'),
                  open(partial, 'ab' if resumed else 'wb') as output):
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


class _SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to https://, or to the same scheme, host and port.

    The request's headers travel with it, a resumed download's Range too.
    """

    # The default message spans lines; errors here are one line.
    inf_msg = 'the server redirects in a loop; its last redirect: '

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers['Location'] if 'Location' in headers else headers.get('URI')
        if location is not None:
            target = urllib.parse.urljoin(req.full_url, location.strip())
            if not _may_redirect(req.full_url, target):
                fp.close()
                raise DownloadError('refused the redirect from %s to %s: downloads follow '
                                    'redirects only to https:// or to the same scheme, host and '
                                    'port' % (req.full_url, target))
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _may_redirect(source: str, target: str) -> bool:
    if urllib.parse.urlparse(target).scheme == 'https':
        return True
    origin = _origin(target)
    return origin is not None and origin == _origin(source)


def _origin(url: str) -> tuple[str, str | None, int | None] | None:
    """(scheme, host, port) of `url`, the port filled in for http and https; None for a bad port."""
    parts = urllib.parse.urlparse(url)
    try:
        port = parts.port
    except ValueError:
        return None
    default_port = {'http': 80, 'https': 443}.get(parts.scheme)
    return parts.scheme, parts.hostname, port or default_port


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
