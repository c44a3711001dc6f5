"""Frame codecs: JPEG through simplejpeg (libjpeg-turbo). Pure functions, no sockets.

The sender decides: :func:`jpeg_settings` turns NetGear's option values into a frozen
:class:`JpegSettings` (or ``None`` for raw frames), :func:`jpeg_can_carry` says whether a
given frame fits JPEG (uint8, 1/3/4 channels matching the colorspace) and
:func:`encode_jpeg` compresses it. The receiver trusts nothing: :func:`check_jpeg` reads
only the JPEG header and refuses a declared size other than what the wire header says or
over the pixel limit *before* any decoding (a 600-byte file can declare 20000x20000), and
:func:`decode_jpeg` returns a writable array of the original number of dimensions.

simplejpeg releases the GIL while it works, so decoding in several threads scales.
JPEG keeps no alpha channel: a BGRA/RGBA frame arrives with four channels, alpha 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .errors import ConfigError, ProtocolError

__all__ = [
    "JpegSettings",
    "jpeg_settings",
    "jpeg_can_carry",
    "encode_jpeg",
    "check_jpeg",
    "decode_jpeg",
    "COLORSPACES",
    "SUBSAMPLINGS",
]

#: colorspace -> channels of the frame it describes
COLORSPACES = {"BGR": 3, "RGB": 3, "GRAY": 1, "BGRA": 4, "RGBA": 4, "BGRX": 4, "RGBX": 4}
SUBSAMPLINGS = ("420", "422", "444", "440", "411")


@dataclass(frozen=True)
class JpegSettings:
    """How a server compresses frames (defaults chosen for speed at good quality)."""

    colorspace: str = "BGR"
    quality: int = 90
    fastdct: bool = True
    fastupsample: bool = False
    subsampling: str = "420"


def jpeg_settings(
    compression: Any,
    quality: Any = 90,
    fastdct: Any = True,
    fastupsample: Any = False,
    subsampling: Any = "420",
) -> Optional[JpegSettings]:
    """Validate NetGear's ``jpeg_compression*`` option values; ``None`` means raw frames.

    ``compression`` is a bool or a colorspace name (``"BGR"``, ``"RGB"``, ``"GRAY"``,
    ``"BGRA"`` ...); ``True`` means BGR, OpenCV's order. Anything else raises
    :class:`~netgear.errors.ConfigError` naming the option: never silently "on".
    """
    if compression is False or compression is None:
        return None
    if compression is True:
        colorspace = "BGR"
    elif isinstance(compression, str) and compression.strip().upper() in COLORSPACES:
        colorspace = compression.strip().upper()
    else:
        raise ConfigError(
            "jpeg_compression", f"expected True, False or one of {sorted(COLORSPACES)}, got {compression!r}"
        )
    if isinstance(quality, bool) or not isinstance(quality, int) or not 10 <= quality <= 100:
        raise ConfigError("jpeg_compression_quality", f"expected an integer from 10 to 100, got {quality!r}")
    for name, value in (("jpeg_compression_fastdct", fastdct), ("jpeg_compression_fastupsample", fastupsample)):
        if not isinstance(value, bool):
            raise ConfigError(name, f"expected True or False, got {value!r}")
    if str(subsampling) not in SUBSAMPLINGS:
        raise ConfigError("jpeg_compression_subsampling", f"expected one of {SUBSAMPLINGS}, got {subsampling!r}")
    return JpegSettings(colorspace, quality, fastdct, fastupsample, str(subsampling))


def jpeg_can_carry(frame: np.ndarray, settings: JpegSettings) -> bool:
    """True if ``frame`` is uint8 with the channel count the colorspace needs."""
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or min(frame.shape[:2], default=0) < 1:
        return False
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    return channels == COLORSPACES[settings.colorspace]


def encode_jpeg(frame: np.ndarray, settings: JpegSettings) -> bytes:
    """Compress ``frame`` (call :func:`jpeg_can_carry` first)."""
    import simplejpeg

    image = frame[:, :, None] if frame.ndim == 2 else frame
    gray = settings.colorspace == "GRAY"
    return simplejpeg.encode_jpeg(
        np.ascontiguousarray(image),
        quality=settings.quality,
        colorspace=settings.colorspace,
        colorsubsampling="Gray" if gray else settings.subsampling,
        fastdct=settings.fastdct,
    )


def check_jpeg(data: Any, shape: Sequence[int], max_pixels: int) -> Tuple[int, int]:
    """Read the JPEG header only; refuse it unless it declares ``shape[:2]`` within limits.

    Raises :class:`~netgear.errors.ProtocolError` with reason ``"oversize"`` (more than
    ``max_pixels``) or ``"bad_jpeg"`` (unreadable header, size other than declared).
    """
    import simplejpeg

    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except Exception as exc:
        raise ProtocolError("bad_jpeg", f"unreadable JPEG header: {exc}") from None
    if height * width > max_pixels:
        raise ProtocolError("oversize", f"JPEG declares {width}x{height} pixels")
    if (height, width) != tuple(shape[:2]):
        raise ProtocolError("bad_jpeg", f"JPEG is {width}x{height}, the header said {tuple(shape)}")
    return height, width


def decode_jpeg(data: Any, colorspace: str, shape: Sequence[int], *, fastdct: bool, fastupsample: bool) -> np.ndarray:
    """Decompress into a new writable array shaped like the original frame."""
    import simplejpeg

    try:
        image = simplejpeg.decode_jpeg(data, colorspace=colorspace, fastdct=fastdct, fastupsample=fastupsample)
    except Exception as exc:
        raise ProtocolError("bad_jpeg", f"JPEG does not decode: {exc}") from None
    if len(shape) == 2:
        image = image[:, :, 0]
    if tuple(image.shape) != tuple(shape):
        raise ProtocolError("bad_jpeg", f"decoded {image.shape}, the header said {tuple(shape)}")
    return image
