"""The download-then-extract step of the converters whose source is one tar archive."""

import contextlib
import os
import shutil
from collections.abc import Iterator

from datasets.download import DOWNLOAD_FOLDER, download, extract_tar
from datasets.progress import ProgressFn


@contextlib.contextmanager
def downloaded_archive(dataset_dir: str, url: str, archive_name: str, md5: str | None,
                       progress: ProgressFn) -> Iterator[tuple[str, str]]:
    """Downloads a tar archive into `dataset_dir`/downloads and extracts it there.

    The downloads folder is removed when the `with` block completes, and kept
    when it raises, so that a rerun reuses the verified download.

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
        ArchiveError: if the archive is unsafe or corrupt.
    """
    download_dir = os.path.join(dataset_dir, DOWNLOAD_FOLDER)
    archive = os.path.join(download_dir, archive_name)
    download(url, archive, md5, progress)
    extracted = os.path.join(download_dir, 'extracted')
    # A previous run may have been interrupted while extracting.
    shutil.rmtree(extracted, ignore_errors=True)
    extract_tar(archive, extracted)
    yield archive, extracted
    shutil.rmtree(download_dir)
