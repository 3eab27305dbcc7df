"""The download-then-extract step of the converters whose source is one tar archive."""

import contextlib
import os
import shutil
from collections.abc import Iterator

from datasets.download import DOWNLOAD_FOLDER, download_and_open, extract_tar
from datasets.progress import ProgressFn

EXTRACTED_FOLDER = 'extracted'


@contextlib.contextmanager
def downloaded_archive(dataset_dir: str, url: str, archive_name: str, md5: str | None,
                       progress: ProgressFn) -> Iterator[tuple[str, str]]:
    """Downloads a tar archive into `dataset_dir`/downloads and extracts it there.

    An archive kept there from an earlier run that turns out corrupt is renamed
    to `<archive_name>.corrupt` and downloaded again, once (see
    `download_and_open`). The archive and its extraction are removed when the
    `with` block completes, and the downloads folder with them unless it holds
    something else (an archive set aside as corrupt); all are kept when the
    block raises, so that a rerun reuses the verified download.

    Args:
        dataset_dir: the output directory of the conversion.
        url: where the archive is fetched from.
        archive_name: the file name the archive is saved under.
        md5: its expected MD5, or None to check only length and integrity.
        progress: told how the download advances.

    Yields:
        (the archive's path, the folder it was extracted into).

    Raises:
        DownloadError: if the download fails or does not match `md5`.
        ArchiveError: if the archive is unsafe, too large, or corrupt even
            when downloaded again.
    """
    download_dir = os.path.join(dataset_dir, DOWNLOAD_FOLDER)
    archive = os.path.join(download_dir, archive_name)
    extracted = os.path.join(download_dir, EXTRACTED_FOLDER)
    download_and_open(url, archive, md5, lambda path: _extract_afresh(path, extracted), progress)
    yield archive, extracted
    shutil.rmtree(extracted)
    os.remove(archive)
    with contextlib.suppress(OSError):
        os.rmdir(download_dir)  # Fails, keeping it, while it holds anything else.


def _extract_afresh(archive: str, extracted: str) -> None:
    """Extracts `archive` into `extracted`, leaving no partial extraction behind."""
    # A previous run may have been interrupted while extracting.
    shutil.rmtree(extracted, ignore_errors=True)
    try:
        extract_tar(archive, extracted)
    except BaseException:
        shutil.rmtree(extracted, ignore_errors=True)
        raise
