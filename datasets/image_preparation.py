"""Turns image files into encoded images that `tf.io.decode_image` reads as RGB.

This module deliberately imports neither TensorFlow nor anything that does:
the image-folder converter runs it in worker processes, and keeping those
workers light is what lets conversion scale with the number of workers.

JPEG files that TensorFlow decodes correctly (Huffman-coded baseline or
progressive, 8 bits, RGB or grayscale) keep their original bytes, so no
quality is lost. Every other decodable image is converted to 8-bit RGB and
re-encoded: to JPEG when it came from a (lossy) JPEG, to PNG otherwise.
Photos are stored upright: TensorFlow's decoders ignore EXIF orientation, so
an image whose EXIF orientation turns it is turned here and re-encoded.

Only regular files are read, and at most `max_bytes` of them: a FIFO, a
device (a link to /dev/zero, say) or an oversized file is rejected with a
reason instead of blocking or filling the memory.
"""

import dataclasses
import io
import os
import stat

import numpy as np
from PIL import ExifTags, Image, ImageOps

# Quality used when a JPEG has to be re-encoded (CMYK, arithmetic-coded, ...).
REENCODED_JPEG_QUALITY = 95

# Transparent pixels have no defined colour; they are shown over white.
_BACKGROUND = (255, 255, 255, 255)

# JPEG frame markers TensorFlow's libjpeg-turbo build decodes: baseline,
# extended sequential and progressive, all Huffman-coded.
_TENSORFLOW_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
# Every start-of-frame marker; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_START_OF_SCAN = 0xDA
# Markers that stand alone, without a length field: TEM, RST0-7, SOI.
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})

_SIXTEEN_BIT_MODES = frozenset({'I', 'I;16', 'I;16L', 'I;16B', 'I;16N'})

# EXIF orientations other than 1 (upright) turn or mirror the stored pixels.
_TURNING_ORIENTATIONS = frozenset(range(2, 9))

_FILE_KINDS = ((stat.S_ISDIR, 'a folder'), (stat.S_ISFIFO, 'a FIFO (named pipe)'),
               (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'),
               (stat.S_ISSOCK, 'a socket'))


class UnsupportedImageError(ValueError):
    """A decodable image that has no faithful 8-bit RGB form."""


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """An encoded image ready to be stored in a TFRecord.

    Attributes:
        data: the encoded bytes.
        format: 'jpeg' or 'png' (the value of `image/format`).
        height: height in pixels.
        width: width in pixels.
        turned_upright: whether the EXIF orientation was applied to the pixels.
    """
    data: bytes
    format: str
    height: int
    width: int
    turned_upright: bool = False


@dataclasses.dataclass(frozen=True)
class Rejection:
    """Why a file could not become a record.

    Attributes:
        reason: one human-readable line.
    """
    reason: str


def prepare_image_file(path: str, max_bytes: int) -> EncodedImage | Rejection:
    """Reads and checks one image file.

    Args:
        path: the file to read; links are followed, but only to a regular file.
        max_bytes: larger files are rejected unread.

    Returns:
        The encoded image to store, or the reason the file was rejected.
    """
    data = _read_regular_file(path, max_bytes)
    if isinstance(data, Rejection):
        return data
    if not data:
        return Rejection('empty file')
    return prepare_image_bytes(data)


def prepare_image_files(paths: list[str], max_bytes: int) -> list[EncodedImage | Rejection]:
    """Runs `prepare_image_file` over a batch; the unit of work of a worker.

    Args:
        paths: the files to read.
        max_bytes: larger files are rejected unread.

    Returns:
        One result per path, in the same order.
    """
    return [prepare_image_file(path, max_bytes) for path in paths]


def prepare_image_bytes(data: bytes) -> EncodedImage | Rejection:
    """Checks one encoded image and re-encodes it where TensorFlow needs that.

    Args:
        data: the file's bytes.

    Returns:
        The encoded image to store, or the reason the data was rejected.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            # Decoding every pixel is what exposes truncated or corrupt data.
            image.load()
            turned = image.getexif().get(ExifTags.Base.Orientation) in _TURNING_ORIENTATIONS
            if not turned and _is_tensorflow_ready_jpeg(image, data):
                return EncodedImage(data, 'jpeg', image.height, image.width)
            output_format = 'jpeg' if image.format in ('JPEG', 'MPO') else 'png'
            upright = ImageOps.exif_transpose(image) if turned else image
            encoded = encode_image(to_rgb(upright), output_format)
            return dataclasses.replace(encoded, turned_upright=turned)
    except Image.UnidentifiedImageError:
        return Rejection('not an image in a format Pillow recognises')
    except UnsupportedImageError as error:
        return Rejection(str(error))
    except Image.DecompressionBombError as error:
        return Rejection('image too large to decode safely: %s' % error)
    # Pillow's format plugins report corrupt data with many exception types
    # (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
    # ...); any of them means this file is rejected.
    except Exception as error:  # pylint: disable=broad-except
        return Rejection('corrupt or truncated image (%s: %s)'
                         % (type(error).__name__, error))


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts a decoded image of any mode to 8-bit RGB.

    Args:
        image: a loaded Pillow image.

    Returns:
        An RGB image of the same size; transparency is composited over white
        and 16-bit samples are scaled to 8 bits.

    Raises:
        UnsupportedImageError: for modes with no standard RGB form, such as
            floating point (whose range is unknown) or LAB.
    """
    if image.mode == 'F':
        raise UnsupportedImageError('unsupported pixel mode F (32-bit floating point)')
    if image.mode in _SIXTEEN_BIT_MODES:
        image = _sixteen_bit_to_gray(image)
    try:
        if image.has_transparency_data:
            background = Image.new('RGBA', image.size, _BACKGROUND)
            image = Image.alpha_composite(background, image.convert('RGBA'))
        return image.convert('RGB')
    except ValueError:
        raise UnsupportedImageError('unsupported pixel mode %s' % image.mode) from None


def encode_image(image: Image.Image, image_format: str) -> EncodedImage:
    """Encodes a Pillow image as PNG or JPEG.

    Args:
        image: an 'L' or 'RGB' image.
        image_format: 'png' or 'jpeg'.

    Returns:
        The encoded image.
    """
    buffer = io.BytesIO()
    if image_format == 'jpeg':
        image.save(buffer, 'JPEG', quality=REENCODED_JPEG_QUALITY)
    else:
        image.save(buffer, 'PNG')
    return EncodedImage(buffer.getvalue(), image_format, image.height, image.width)


def encode_png(pixels: np.ndarray) -> EncodedImage:
    """Encodes uint8 pixels, [H, W] (grayscale) or [H, W, 3] (RGB), as PNG.

    Args:
        pixels: the image.

    Returns:
        The PNG-encoded image.
    """
    return encode_image(Image.fromarray(pixels), 'png')


def _read_regular_file(path: str, max_bytes: int) -> bytes | Rejection:
    """Returns the contents of a regular file of at most `max_bytes`, or why not."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        return Rejection('cannot read the file: %s' % (error.strerror or error))
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            kind = next((name for is_kind, name in _FILE_KINDS if is_kind(status.st_mode)),
                        'a special file')
            return Rejection('not a regular file (%s); only regular files are read' % kind)
        if status.st_size > max_bytes:
            return Rejection('%d bytes, more than --max_image_bytes %d'
                             % (status.st_size, max_bytes))
        # One byte more than allowed tells a file that grew while it was read.
        with os.fdopen(descriptor, 'rb', closefd=False) as image_file:
            data = image_file.read(max_bytes + 1)
    except OSError as error:
        return Rejection('cannot read the file: %s' % (error.strerror or error))
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        return Rejection('more than --max_image_bytes %d bytes (the file grew while it was '
                         'read)' % max_bytes)
    return data


def _sixteen_bit_to_gray(image: Image.Image) -> Image.Image:
    # Pillow's own conversion clips 16-bit samples at 255 instead of scaling.
    samples = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
    scaled = (samples * 255 + 65535 // 2) // 65535
    return Image.fromarray(scaled.astype(np.uint8))


def _is_tensorflow_ready_jpeg(image: Image.Image, data: bytes) -> bool:
    if image.format != 'JPEG' or image.mode not in ('RGB', 'L'):
        return False
    frame = _jpeg_frame_header(data)
    return frame is not None and frame[0] in _TENSORFLOW_JPEG_FRAMES and frame[1] == 8


def _jpeg_frame_header(data: bytes) -> tuple[int, int] | None:
    """Returns (start-of-frame marker, sample precision) of a JPEG, or None."""
    position = 2  # After the start-of-image marker.
    while position + 4 < len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF or marker in _JPEG_STANDALONE_MARKERS:
            position += 1 if marker == 0xFF else 2
            continue
        if marker in _JPEG_FRAME_MARKERS:
            return marker, data[position + 4]
        if marker == _JPEG_START_OF_SCAN:
            return None
        position += 2 + int.from_bytes(data[position + 2:position + 4], 'big')
    return None
