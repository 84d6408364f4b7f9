"""Paged and markup formats: PDF (text layer and scans), images, Word, HTML.

Imported by `rag.documents.registry` when present. Each reader imports its optional
dependency on use, so a missing one skips the file with a warning naming the extra.
`.doc`, `.wps` and `.rtf` go through LibreOffice (`soffice`) to `.docx` where it is
installed; where it is not, they are skipped with a one-line warning saying what to install.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from rag.documents.base import Document, SkipDocument
from rag.documents.docx import DocxReader
from rag.documents.html import HtmlReader
from rag.documents.images import ImageReader
from rag.documents.pdf import PdfReader
from rag.documents.registry import register_reader

SOFFICE_TIMEOUT_S = 120


class LegacyWordReader:
    """.doc/.wps/.rtf → .docx with LibreOffice, then the DOCX reader."""
    name = "legacy-word"
    suffixes = (".doc", ".wps", ".rtf")

    def read(self, path: Path, source: str, data: bytes, sha256: str) -> Document:
        exe = shutil.which("soffice") or shutil.which("libreoffice")
        if exe is None:
            raise SkipDocument(f"{path.suffix.lower()} needs LibreOffice to convert it; install it with: "
                               "apt-get install libreoffice-writer-nogui")
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / f"in{path.suffix.lower()}"
            src.write_bytes(data)
            try:
                subprocess.run([exe, "--headless", "--convert-to", "docx", "--outdir", tmp, str(src)],
                               capture_output=True, timeout=SOFFICE_TIMEOUT_S, check=False,
                               env={"HOME": tmp, "PATH": "/usr/bin:/bin"})
            except subprocess.TimeoutExpired:
                raise SkipDocument(f"LibreOffice took longer than {SOFFICE_TIMEOUT_S} s to convert it") from None
            out = Path(tmp) / "in.docx"
            if not out.exists():
                raise SkipDocument("LibreOffice could not convert it (damaged file?)")
            doc = DocxReader().read(path, source, out.read_bytes(), sha256)
        return Document(doc.source, doc.path, doc.encoding, doc.text, sha256, reader=self.name,
                        layout=doc.layout, headings=doc.headings, meta=doc.meta)


for _r in (PdfReader(), ImageReader(), DocxReader(), HtmlReader(), LegacyWordReader()):
    register_reader(_r)
