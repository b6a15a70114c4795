"""Photo metadata carried through a bitstream: EXIF, the ICC colour profile and XMP.

The encoder reads them from the source image (codec.io.read_image), the CLI stores the kinds the
user keeps (`--metadata all|none|exif,icc,xmp`, default all) as ancillary chunks of the container
(`exif`, `iccp`, `xmpd`: raw bytes, CRC-checked, skipped by readers that do not know them), and the
decoder writes them back into the output image where its format can hold them (PNG, WebP, TIFF;
BMP holds none: a warning says so).

Decisions:
  * Colour: the ICC profile is carried, not applied. The pixels stay in the source's RGB space and
    the decoded file carries the same profile, so a colour-managed viewer shows the colours of the
    original (a wide-gamut photo stays wide-gamut). A profile of another colour space (CMYK, gray)
    does not describe RGB pixels: it is dropped with a warning, and the pixels are read as sRGB.
  * Orientation: the encoder codes the upright picture (EXIF orientation applied), so the carried
    EXIF has its orientation tag set to 1 (else viewers would rotate twice).
  * Size: each kind is at most MAX_BYTES; a larger one is dropped with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("exif", "icc", "xmp")
CHUNK_TYPES = {"exif": b"exif", "icc": b"iccp", "xmp": b"xmpd"}
"""Ancillary chunk type of each kind (a lower-case first letter marks a chunk as ancillary)."""

MAX_BYTES = 1 << 24
"""Largest metadata of one kind carried (16 MiB; ICC profiles are kilobytes, EXIF at most 64 KiB)."""

ORIENTATION = 0x0112
PNG_XMP_KEY = "XML:com.adobe.xmp"


@dataclass(frozen=True)
class Metadata:
    """Raw bytes per kind ('exif', 'icc', 'xmp'); `notes` says what was dropped and why."""

    items: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def keep(self, kinds: frozenset[str]) -> "Metadata":
        return Metadata({k: v for k, v in self.items.items() if k in kinds}, self.notes)


def parse_selection(text: str) -> frozenset[str]:
    """'all', 'none' or a comma list of exif, icc, xmp -> the kinds kept.

    Raises:
        ValueError: an unknown word (the message lists the choices).
    """
    words = {w.strip().lower() for w in text.split(",") if w.strip()}
    if words == {"all"}:
        return frozenset(KINDS)
    if words == {"none"}:
        return frozenset()
    unknown = words - set(KINDS)
    if unknown or not words:
        raise ValueError(f"--metadata takes all, none or a comma list of {', '.join(KINDS)}; got {text!r}")
    return frozenset(words)


def from_pillow(im, label: str) -> Metadata:
    """The metadata of an opened Pillow image (after its orientation was applied to the pixels)."""
    items: dict[str, bytes] = {}
    notes: list[str] = []
    icc = im.info.get("icc_profile")
    if icc:
        space = bytes(icc[16:20]) if len(icc) >= 20 else b""
        if space == b"RGB ":
            items["icc"] = bytes(icc)
        else:
            notes.append(f"{label}: its ICC profile is for {space.decode('latin-1').strip() or 'an unknown'} colour "
                         f"space, not RGB: dropped, and the pixels are read as sRGB")
    try:
        exif = im.getexif()
        if len(exif):
            orientation = exif.get(ORIENTATION)
            turned = orientation not in (None, 1)
            if turned:
                exif[ORIENTATION] = 1  # the coded picture is upright
            items["exif"] = exif.tobytes()
            if turned:
                exif[ORIENTATION] = orientation  # Pillow's own object: the reader still applies it
    except Exception:  # noqa: BLE001 - Pillow's EXIF parser raises many types on bad metadata
        notes.append(f"{label}: unreadable EXIF metadata dropped")
    xmp = im.info.get("xmp") or im.info.get(PNG_XMP_KEY)
    if xmp:
        items["xmp"] = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    for kind, data in list(items.items()):
        if len(data) > MAX_BYTES:
            del items[kind]
            notes.append(f"{label}: its {kind} metadata ({len(data)} bytes) is over {MAX_BYTES} bytes: dropped")
    return Metadata(items, tuple(notes))


def to_chunks(meta: Metadata) -> list[tuple[bytes, bytes]]:
    """(chunk type, bytes) for the container, in the order of KINDS."""
    return [(CHUNK_TYPES[k], meta.items[k]) for k in KINDS if k in meta.items]


def from_chunks(find) -> Metadata:
    """The metadata of a container; `find(chunk_type)` gives a chunk's bytes or None."""
    items = {}
    for kind in KINDS:
        data = find(CHUNK_TYPES[kind])
        if data:
            items[kind] = bytes(data)
    return Metadata(items)


def save_options(meta: Metadata, image_format: str) -> tuple[dict, list[str]]:
    """Pillow save() arguments that write `meta` into an image of `image_format`, and the kinds
    that format cannot hold."""
    fmt = image_format.upper()
    holds = {"PNG": KINDS, "WEBP": KINDS, "TIFF": ("exif", "icc")}.get(fmt, ())
    options: dict = {}
    dropped = [k for k in meta.items if k not in holds]
    if "icc" in meta.items and "icc" in holds:
        options["icc_profile"] = meta.items["icc"]
    if "exif" in meta.items and "exif" in holds:
        options["exif"] = meta.items["exif"]
    if "xmp" in meta.items and "xmp" in holds:
        if fmt == "PNG":
            from PIL import PngImagePlugin

            info = PngImagePlugin.PngInfo()
            info.add_itxt(PNG_XMP_KEY, meta.items["xmp"].decode("utf-8", "replace"))
            options["pnginfo"] = info
        else:
            options["xmp"] = meta.items["xmp"]
    return options, dropped


def describe(meta: Metadata) -> str:
    """'exif 1,234 B, icc 3,144 B' for messages."""
    return ", ".join(f"{k} {len(v):,} B" for k, v in meta.items.items()) or "none"

