"""Turn a PDF whose fonts are embedded into a PDF/A-3 (level B) file: OutputIntent and XMP.

:func:`make_pdfa` adds what reportlab does not write itself: an sRGB OutputIntent (the ICC
profile is made by LittleCMS through Pillow's ``ImageCms``, so no profile file has to be
shipped) and an XMP metadata stream identifying the file as PDF/A-3B, with the same title,
author and dates as the document information dictionary. The file identifier is a hash
of the content, and every date comes from ``created``, so equal input gives equal bytes.

:func:`pdfa_problems` inspects a PDF the way the tests and ``validate()`` do: fonts not
embedded, no OutputIntent with an ICC profile, no PDF/A identification in the XMP.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from functools import cache
from typing import Any
from xml.sax.saxutils import escape

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

PRODUCER = "kwhub (reportlab, pypdf)"


@cache
def srgb_icc_profile() -> bytes:
    """An sRGB ICC profile (LittleCMS built-in, via Pillow)."""
    from PIL import ImageCms

    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _pdf_date(when: datetime) -> str:
    return when.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")


def _xmp(title: str, author: str, subject: str, created: datetime) -> bytes:
    iso = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    t, a, s = escape(title), escape(author), escape(subject)
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
   <pdfaid:part>3</pdfaid:part>
   <pdfaid:conformance>B</pdfaid:conformance>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:format>application/pdf</dc:format>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{t}</rdf:li></rdf:Alt></dc:title>
   <dc:creator><rdf:Seq><rdf:li>{a}</rdf:li></rdf:Seq></dc:creator>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{s}</rdf:li></rdf:Alt></dc:description>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
   <pdf:Producer>{PRODUCER}</pdf:Producer>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
   <xmp:CreatorTool>kwhub</xmp:CreatorTool>
   <xmp:CreateDate>{iso}</xmp:CreateDate>
   <xmp:ModifyDate>{iso}</xmp:ModifyDate>
   <xmp:MetadataDate>{iso}</xmp:MetadataDate>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def make_pdfa(pdf: bytes, *, title: str, author: str, subject: str, created: datetime) -> bytes:
    """``pdf`` with an sRGB OutputIntent, PDF/A-3B XMP metadata and content-derived dates and id."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    _drop_unused_fonts(writer)
    icc = DecodedStreamObject()
    icc.set_data(srgb_icc_profile())
    icc.update({NameObject("/N"): NumberObject(3)})
    intent = DictionaryObject({
        NameObject("/Type"): NameObject("/OutputIntent"),
        NameObject("/S"): NameObject("/GTS_PDFA1"),
        NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB"),
        NameObject("/Info"): TextStringObject("sRGB IEC61966-2.1"),
        NameObject("/DestOutputProfile"): writer._add_object(icc),
    })
    root = writer._root_object
    root[NameObject("/OutputIntents")] = ArrayObject([writer._add_object(intent)])
    meta = DecodedStreamObject()
    meta.set_data(_xmp(title, author, subject, created))
    meta.update({NameObject("/Type"): NameObject("/Metadata"), NameObject("/Subtype"): NameObject("/XML")})
    root[NameObject("/Metadata")] = writer._add_object(meta)
    stamp = _pdf_date(created)
    writer.add_metadata({"/Title": title, "/Author": author, "/Subject": subject, "/Producer": PRODUCER,
                         "/Creator": "kwhub", "/CreationDate": stamp, "/ModDate": stamp})
    digest = ByteStringObject(hashlib.md5(pdf, usedforsecurity=False).digest())
    writer._ID = ArrayObject([digest, digest])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _drop_unused_fonts(writer: PdfWriter) -> None:
    """Remove font resources that no page's content selects (reportlab lists its initial
    standard font even when nothing is drawn with it; pages may share one font dictionary)."""
    used = b"".join((page.get_contents().get_data() if page.get_contents() is not None else b"")
                    for page in writer.pages)
    for page in writer.pages:
        res = page.get("/Resources")
        fonts = res.get_object().get("/Font") if res is not None else None
        if fonts is None:
            continue
        fonts = fonts.get_object()
        for key in list(fonts.keys()):
            if (key.encode() + b" ") not in used:
                del fonts[key]


def _fonts(reader: PdfReader) -> list[tuple[str, bool]]:
    """(base font name, embedded) of every font the pages use (descendants included)."""
    out: list[tuple[str, bool]] = []
    seen: set[int] = set()

    def visit(font: Any) -> None:
        font = font.get_object()
        if id(font) in seen:
            return
        seen.add(id(font))
        for desc in font.get("/DescendantFonts", []) or []:
            visit(desc)
        if font.get("/Subtype") == "/Type0":
            return
        fd = font.get("/FontDescriptor")
        embedded = fd is not None and any(k in fd.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3"))
        out.append((str(font.get("/BaseFont", "?")), embedded))

    for page in reader.pages:
        res = page.get("/Resources")
        if res is None:
            continue
        fonts = res.get_object().get("/Font")
        for ref in (fonts.get_object().values() if fonts is not None else []):
            visit(ref)
        xobjects = res.get_object().get("/XObject")
        for x in (xobjects.get_object().values() if xobjects is not None else []):
            xres = x.get_object().get("/Resources")
            xf = xres.get_object().get("/Font") if xres is not None else None
            for ref in (xf.get_object().values() if xf is not None else []):
                visit(ref)
    return out


def pdfa_problems(data: bytes) -> list[str]:
    """What keeps ``data`` from being PDF/A-3: unembedded fonts, no ICC OutputIntent, no PDF/A XMP."""
    reader = PdfReader(io.BytesIO(data))
    out = [f"PDF/A: font {name} is not embedded" for name, embedded in _fonts(reader) if not embedded]
    root = reader.trailer["/Root"]
    intents = root.get("/OutputIntents")
    if not intents or not any("/DestOutputProfile" in i.get_object() for i in intents):
        out.append("PDF/A: no OutputIntent with an ICC profile (/OutputIntents)")
    meta = reader.xmp_metadata
    xml = meta.stream.get_data() if meta is not None else b""  # type: ignore[attr-defined]
    if b"pdfaid" not in xml or b"<pdfaid:part>3</pdfaid:part>" not in xml.replace(b"pdfaid:part='3'", b"<pdfaid:part>3</pdfaid:part>") \
            and b'pdfaid:part="3"' not in xml:
        out.append("PDF/A: the XMP metadata does not identify the file as PDF/A-3 (pdfaid:part)")
    return out
