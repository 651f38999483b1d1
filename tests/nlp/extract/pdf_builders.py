"""Hand-made PDFs for the extract tests (broken page trees, bombs, fuzzing seeds): a body per
object number, a correct cross-reference table. Used by conftest.py's ``pdf_builder`` fixture
and by the fuzz test's generators."""
from __future__ import annotations


def build_pdf(objects: dict[int, bytes], root: int = 1, trailer_extra: bytes = b"") -> bytes:
    """A PDF file made of ``objects`` (number -> body, streams included), with a correct
    cross-reference table (``trailer_extra``: more trailer entries): for hand-made broken page
    trees, bombs and the like."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += (b"%010d 00000 n \n" % offsets[number]) if number in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (size, root, trailer_extra, xref)
    return bytes(out)


def text_stream(text: str, compress: bool = False, padding: int = 0) -> bytes:
    """A content stream showing ``text`` (Helvetica 12), optionally deflated and padded with
    ``padding`` spaces (a decompression bomb when large)."""
    import zlib

    data = b"BT /F1 12 Tf 50 700 Td (" + text.encode("latin-1") + b") Tj ET\n" + b" " * padding
    if compress:
        data = zlib.compress(data, 9)
        return b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream"
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def page_object(contents: int, parent: int = 2, font: int = 3) -> bytes:
    return (b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (parent, font, contents))
