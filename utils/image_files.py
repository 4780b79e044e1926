"""Image files in and out, with numpy and PIL only (no torch: ``restore_onnx.py`` uses it too).

Every image is read as 8-bit sRGB: EXIF orientation applied, grayscale and palette images
expanded to RGB, deeper images reduced to 8 bits by the depth their header declares (never by
their values; see ``read_image_alpha``), colours converted from an embedded ICC profile to sRGB
(``to_srgb``: one rule for every reader, so every writer writes sRGB and no profile), and
alpha composited onto white (``read_image_alpha``
returns the alpha channel too, so a demo can put it back). Files that declare more than
``MAX_PIXELS`` are refused from their header.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import EpsImagePlugin, Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from utils.outputs import writing
from utils.paths import NAME_MAX, name_bytes, walk_folders, write_atomic

logger = logging.getLogger(__name__)

# Largest image read: twice PIL's warning threshold (2 x 89.5 MP = 179 MP, where PIL itself
# refuses), e.g. a 16000 x 11000 panorama; ~0.5 GB as uint8, restored in tiles.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


def _decodable_extensions() -> frozenset[str]:
    """The extensions of every format the installed Pillow decodes (``.avif`` with Pillow 11.3
    or later, ``.ppm``, ``.tga``, ``.qoi``, ...), lower case with the dot.

    Left out: formats Pillow identifies but cannot decode here, whose files would be listed
    only to fail: its stubs (GRIB, BUFR, HDF5, WMF/EMF; they need a decoder of your own),
    MPEG (a video's size only) and EPS/PS without Ghostscript.
    """
    Image.init()
    undecodable = {"MPEG"} | (set() if EpsImagePlugin.has_ghostscript() else {"EPS"})
    decodable = {
        name
        for name, (factory, _) in Image.OPEN.items()
        if name not in undecodable
        and not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))
    }
    extensions = Image.registered_extensions()
    return frozenset(ext for ext, name in extensions.items() if name in decodable)


# What a folder is listed for: what the installed Pillow can decode, so a folder and the same
# files named one by one (a file named on its own is read whatever its name) give the same
# images, e.g. a folder of .avif photos.
IMAGE_EXTENSIONS = _decodable_extensions()


class ImageReadError(RuntimeError):
    """An image file that cannot be read; the message names the file and the problem."""


def looks_like_image(path: Path) -> bool:
    """Whether a folder's entry is listed as an image: its extension is one of
    IMAGE_EXTENSIONS (any case) and it is a file, or a symbolic link to one, or a link that
    leads nowhere (listed so that reading it names it as unreadable, like a broken file,
    instead of its being passed over in silence). A folder named like an image is not."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return False
    return path.is_file() or (path.is_symlink() and not path.exists())


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (``looks_like_image``; links to files followed),
    sorted by name; other files are skipped with a note naming them.

    Raises:
        FileNotFoundError: ``folder`` is not a folder (or a link to one).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    images = []
    for path in sorted(folder.iterdir()):
        if looks_like_image(path):
            images.append(path)
        elif path.is_file() or path.is_symlink() and not path.is_dir():
            logger.info(
                "skipping %s: not an image file (extension %r; images are %s)",
                path,
                path.suffix,
                " ".join(sorted(IMAGE_EXTENSIONS)),
            )
    return images


def images_under(folder: str | Path) -> list[Path]:
    """Every image file under ``folder``, subfolders and linked folders too (``list_images``
    of each folder of ``utils.paths.walk_folders``: each real folder once, so a link cycle
    ends), in walking order: a folder's own files, then its subfolders' in name order.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    return [path for root in walk_folders(folder) for path in list_images(root)]


def distinct_names(paths: Sequence[str | Path], suffix: str | None = ".png") -> list[str]:
    """One output name per input, no two alike (decision 9); every writer names its outputs
    with it: demo.py, restore_onnx.py, test.py (saved images, set names), app.py's downloads.

    The rule, applied in order; names compare case-insensitively, as the file systems of macOS
    and Windows do:
    1. the input's stem + ``suffix``: ``photo.jpg`` -> ``photo.png`` (``suffix`` None keeps the
       input's own extension: ``photo.jpg``);
    2. inputs that share that name keep what tells them apart: their extension where it
       differs (``photo.jpg``, ``photo.png`` -> ``photo_jpg.png``, ``photo_png.png``), then
       their folders, nearest first, as far up as needed (``seq1/0001.png``,
       ``seq2/0001.png`` -> ``seq1_0001.png``, ``seq2_0001.png``). Hazy parameters are part
       of the stem and stay (``0001_0.8_0.2.png``);
    3. a name still taken, by another input's name from step 1 (``photo_png.png`` for the
       input ``photo_png.png`` beside ``photo.png`` and ``photo.jpg``) or by the same file
       given twice, gets ``_2``, ``_3``, ... before ``suffix``, in input order. Names from
       step 1 are never changed.

    4. a name longer than the file system allows (255 bytes) keeps its ending and as much of
       its core as fits, followed by ``~`` and 8 hex digits that keep it distinct.

    Args:
        paths: the inputs, in the order their outputs are written.
        suffix: the outputs' ending, with its dot (".png", "_restored.png"); None keeps each
            input's extension.

    Returns:
        The names, one per input, in order (file names only: no folders).
    """
    paths = [Path(p) for p in paths]
    ends = [p.suffix if suffix is None else suffix for p in paths]
    cores = [p.stem for p in paths]

    def clashes() -> list[list[int]]:
        """Indices of inputs whose current names are alike, group by group."""
        groups: dict[str, list[int]] = {}
        for i, (core, end) in enumerate(zip(cores, ends, strict=True)):
            groups.setdefault((core + end).casefold(), []).append(i)
        return [members for members in groups.values() if len(members) > 1]

    first = clashes()
    plain = set(range(len(paths))) - {i for members in first for i in members}
    for members in first:
        if suffix is not None and len({paths[i].suffix.casefold() for i in members}) > 1:
            for i in members:
                cores[i] += f"_{paths[i].suffix[1:]}" if paths[i].suffix else ""
    for members in clashes():
        if plain.isdisjoint(members):
            _prepend_folders(members, paths, cores)
    taken = {(cores[i] + ends[i]).casefold() for i in plain}
    names = [cores[i] + ends[i] if i in plain else "" for i in range(len(paths))]
    for i in sorted(set(range(len(paths))) - plain):
        name, count = cores[i] + ends[i], 1
        while name.casefold() in taken:
            count += 1
            name = f"{cores[i]}_{count}{ends[i]}"
        taken.add(name.casefold())
        names[i] = name
    return [_within_name_max(name, end) for name, end in zip(names, ends, strict=True)]


def _within_name_max(name: str, end: str) -> str:
    """``name`` if the file system allows it (NAME_MAX bytes), else its core cut to fit with
    ``~`` and 8 hex digits of the full name's SHA-256 before ``end``: a name that the steps
    above made too long (a 250-byte stem plus ``_jpg.png``) is still written, and distinct
    names stay distinct."""
    if len(name_bytes(name)) <= NAME_MAX:
        return name
    mark = "~" + hashlib.sha256(name_bytes(name)).hexdigest()[:8]
    core = name[: len(name) - len(end)] if end else name
    while len(name_bytes(core + mark + end)) > NAME_MAX:
        core = core[:-1]
    return core + mark + end


def _prepend_folders(members: list[int], paths: list[Path], cores: list[str]) -> None:
    """Prefix the inputs ``members`` (alike so far) with as many of their folders, nearest
    first, as make them all differ; unchanged when none does (the same file twice)."""
    folders = {i: Path(os.path.abspath(paths[i])).parent.parts[1:] for i in members}
    for depth in range(1, max(len(f) for f in folders.values()) + 1):
        labels = {i: "_".join([*folders[i][-depth:], cores[i]]) for i in members}
        if len({label.casefold() for label in labels.values()}) == len(members):
            for i, label in labels.items():
                cores[i] = label
            return


def find_inputs(path: str | Path) -> list[Path]:
    """A single file (taken as given), or the image files of a folder (demo, restore_onnx)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return list_images(path)


# One-channel PIL modes (and raw file modes: older Pillow opened 16-bit greyscale as mode "I"
# with raw mode "I;16B") of 16-bit unsigned samples. PIL has no mode for deeper colour: its
# decoders keep the high byte of each 16-bit sample (RGB;16B -> RGB), so 16-bit grey is
# reduced the same way and a grey file reads exactly like its colour twin.
UINT16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


def _raw_mode(image: Image.Image) -> str:
    """The sample layout the header declares (PIL's raw mode, e.g. 'I;16B', 'I;32S'), or ''.

    Read before ``load()``, which drops the tile list it comes from."""
    for tile in image.tile[:1]:
        args = tile[3]
        if isinstance(args, tuple):
            args = args[0] if args else ""
        return args if isinstance(args, str) else ""
    return ""


def _to_8bit(image: Image.Image, raw_mode: str, path: Path) -> Image.Image:
    """Deep one-channel modes -> 8-bit 'L', by the depth the header declares.

    16-bit unsigned: v >> 8 (v // 256). 32-bit float ('F'): [0, 1] -> 0..255, clipped, NaN 0.
    32-bit or signed integers ('I' otherwise): ImageReadError (no range follows from the
    header, and PIL cannot hold unsigned 32-bit values).
    """
    if image.mode in UINT16_MODES or (image.mode == "I" and raw_mode in UINT16_MODES):
        high_byte = np.asarray(image).astype(np.uint16) >> 8
        return Image.fromarray(high_byte.astype(np.uint8))
    if image.mode == "F":
        unit = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0)
        return Image.fromarray(np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8))
    if image.mode == "I":
        raise ImageReadError(
            f"{path}: {raw_mode or 'I'} samples (32-bit or signed integers) are not read; "
            "save it as 8- or 16-bit unsigned, or as float in [0, 1]"
        )
    return image


def _dead_link(path: Path) -> str:
    """Why the symbolic link ``path``, which leads to no file, cannot be read, in words."""
    try:
        path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"a link that leads nowhere (a loop of links: {os.readlink(path)})"
    return f"a link that leads nowhere ({os.readlink(path)} does not exist)"


def _open_checked(path: Path) -> Image.Image:
    """Image.open with our pixel limit instead of PIL's decompression-bomb warning/error.

    PIL warns above MAX_IMAGE_PIXELS (89 MP) and raises ``DecompressionBombError`` (not an
    OSError) above twice that. Photos up to MAX_PIXELS are legitimate (the demo restores them
    in tiles); a file that declares more is refused from its header, before anything is
    decoded, so a tiny file cannot make us allocate gigabytes.
    """
    if path.is_symlink() and not path.exists():
        raise ImageReadError(f"{path}: {_dead_link(path)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as error:
            raise ImageReadError(f"{path}: too large ({error})") from error
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise ImageReadError(
            f"{path}: too large ({width}x{height} = {width * height / 1e6:.0f} MP; "
            f"the limit is {MAX_PIXELS / 1e6:.0f} MP)"
        )
    return image


@functools.lru_cache(maxsize=1024)
def _note_frames(path: str, frames: int) -> None:
    """Warn once per file and process: training reads the same file at every sample."""
    logger.warning("%s: %d frames; only the first is read", path, frames)


def read_image_alpha(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Return (rgb uint8 (H, W, 3), alpha uint8 (H, W) or None); every reader goes through it.

    The bit depth is the one the file's header declares, never guessed from the values (a dark
    16-bit scan stays dark however bright its brightest pixel):
    - 8-bit (and 1-bit, palette): as stored;
    - 16-bit unsigned, grayscale or colour, with or without alpha: v -> v >> 8 (v // 256, the
      high byte; PIL itself reduces 16-bit colour so), so a grayscale file and its RGB twin read
      alike and both 8-to-16-bit conventions (v * 257, v << 8) come back exactly;
    - 32-bit float grayscale (TIFF mode 'F'): values taken as [0, 1] (1.0 is white), outside
      clipped, NaN read as 0; float colour TIFFs PIL cannot open (ImageReadError);
    - 32-bit integer (or signed 16-bit) grayscale TIFF (mode 'I'): ImageReadError, since no
      range follows from the header (convert it to 16-bit unsigned or to float in [0, 1]).

    A file of several frames (animated GIF, PNG or WebP, multi-page TIFF) is read as its first
    frame, and a warning names the file and its frame count.

    Raises:
        ImageReadError naming the file: a folder, an unreadable or truncated file, more than
        ``MAX_PIXELS`` declared, or samples of a kind above that are not read.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    try:
        with _open_checked(path) as image:
            raw_mode = _raw_mode(image)
            icc_profile = image.info.get("icc_profile")
            frames = getattr(image, "n_frames", 1)
            image = ImageOps.exif_transpose(image)
            image.load()
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ImageReadError(f"{path}: cannot read image ({error})") from error
    if frames > 1:
        _note_frames(str(path), frames)
    image = _to_8bit(image, raw_mode, path)
    if image.mode == "P":
        # Only a palette with a transparent entry has an alpha channel worth keeping.
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if icc_profile:
        image = to_srgb(image, icc_profile, path)
    if image.mode in ("LA", "RGBA", "PA"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] / 255.0
        # Transparent pixels hold arbitrary colours; white keeps them from looking degraded.
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), rgba[..., 3].astype(np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy(), None


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# Modes LittleCMS converts from, for the colour space the profile describes (a profile that
# does not fit the image's mode, e.g. an RGB profile on a grayscale file, is ignored).
CMS_MODES = {"RGB": "RGB", "L": "L", "CMYK": "CMYK", "1": "L", "LA": "L", "RGBA": "RGB"}


@functools.lru_cache(maxsize=16)
def _srgb_transform(icc_profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from ``icc_profile`` to sRGB for images of ``mode``; None for a profile
    that is sRGB already. Cached: training reads the same files again and again.

    Raises:
        ImageCms.PyCMSError, OSError: a profile LittleCMS cannot read or that does not fit.
    """
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
    if "sRGB" in ImageCms.getProfileDescription(source):
        return None  # "sRGB IEC61966-2.1" and its kin: the values are sRGB already
    return ImageCms.buildTransform(source, SRGB, mode, "RGB")


@functools.lru_cache(maxsize=1024)
def _note_profile(path: str, reason: str) -> None:
    """Warn once per file and process: training reads the same file at every sample."""
    logger.warning("%s: its colour profile is ignored (%s); colours read as sRGB", path, reason)


def to_srgb(image: Image.Image, icc_profile: bytes, path: Path) -> Image.Image:
    """``image``'s colours converted from its embedded ICC profile (Adobe RGB, Display P3, a
    camera's) to sRGB, the space the network was trained in and every output is written in:
    without it a colour-managed viewer shows a photo's colours shifted by about 12 grey
    levels. An alpha channel is kept as it is; the result is RGB (RGBA with alpha). A profile
    that cannot be read, or that does not fit the image's mode, is ignored with a warning
    naming the file (the values are read as sRGB, as before)."""
    mode = CMS_MODES.get(image.mode)
    if mode is None:
        _note_profile(str(path), f"mode {image.mode}")
        return image
    try:
        transform = _srgb_transform(icc_profile, mode)
    except (ImageCms.PyCMSError, OSError) as error:
        _note_profile(str(path), str(error).strip() or type(error).__name__)
        return image
    if transform is None:
        return image
    alpha = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    converted = transform.apply(image.convert(mode))
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def check_image(path: str | Path) -> None:
    """Read only the header: ImageReadError for a folder, a non-image, an empty file or one
    over MAX_PIXELS. Cheap enough to scan a training set before the first step."""
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    try:
        _open_checked(path).close()
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ImageReadError(f"{path}: cannot read image ({error})") from error


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header, nothing decoded; ImageReadError as ``check_image``."""
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    try:
        with _open_checked(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ImageReadError(f"{path}: cannot read image ({error})") from error


def image_mode(path: str | Path) -> str:
    """The file's PIL mode ('L', 'RGBA', 'P', 'I;16', ...) from the header, nothing decoded;
    ImageReadError as ``check_image``."""
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    try:
        with _open_checked(path) as image:
            return image.mode
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ImageReadError(f"{path}: cannot read image ({error})") from error


def read_image(path: str | Path) -> np.ndarray:
    """Return the image as uint8 RGB (H, W, 3), read as ``read_image_alpha`` (bit depth from the
    header); raises ImageReadError naming the file."""
    return read_image_alpha(path)[0]


def save_image(path: str | Path, rgb: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Write uint8 (H, W, 3) RGB, with an optional (H, W) alpha, creating parent folders.

    The format follows the extension (PNG for ``.png``); the file appears whole or not at all
    (``save_image_atomic``).

    Raises:
        ValueError: an extension PIL cannot write. utils.outputs.OutputError: the file cannot
        be written (one line naming it).
    """
    image = Image.fromarray(rgb)
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha))
    save_image_atomic(image, path)


def save_image_atomic(image: Image.Image, path: str | Path) -> None:
    """``image.save`` under a temporary name, renamed to ``path`` when written
    (``utils.paths.write_atomic``): an interrupted run leaves no truncated image that looks
    like a result, and every name the file system allows can be written.

    Raises:
        ValueError: an extension PIL cannot write. utils.outputs.OutputError: the file cannot
        be written (one line naming it; the file already there stays as it was).
    """
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None or image_format not in Image.SAVE:
        raise ValueError(f"{path}: PIL cannot write {path.suffix!r} files")
    with writing(path):
        write_atomic(path, lambda f: image.save(f, format=image_format))


def image_to_array(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (1, 3, H, W) in [0, 1], the network's input layout."""
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def array_to_image(array: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> uint8 (H, W, 3), clipped and rounded."""
    if array.ndim == 4:
        array = array[0]
    scaled = np.clip(array.astype(np.float32, copy=False), 0, 1) * np.float32(255.0)
    return np.ascontiguousarray(np.rint(scaled).astype(np.uint8).transpose(1, 2, 0))
