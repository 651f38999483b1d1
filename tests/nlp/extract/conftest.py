"""Shared setup of the extract and import tests: the generated PDFs with their ground truth
(tests/fixtures/pdfs/generate.py), small office/HTML builders, a corpus store filled with given
files, and the reproducers of ../shared/repro (tests using them skip cleanly when absent)."""
from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from pdf_builders import FONT, build_pdf, page_object, text_stream

from nlp.config import REPO_ROOT, shared_repro_dir
from nlp.media import OCTET, TYPE_BY_EXT
from nlp.store import CorpusStore

_GEN_PATH = REPO_ROOT / "tests" / "fixtures" / "pdfs" / "generate.py"


def _load_generator() -> ModuleType:
    name = "barometre_pdf_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _GEN_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    """The PDF fixture generator module (constants such as ``HEADER`` and the generators)."""
    return _load_generator()


@pytest.fixture(scope="session")
def pdfs(gen: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every generated PDF (``Generated`` objects by name) plus ``bad``: the bad inputs."""
    out = tmp_path_factory.mktemp("pdfs")
    docs = gen.generate_all(out, include_large=True, include_scan=True)
    docs["bad"] = gen.bad_inputs(out / "bad")
    return docs


def _store_with(root: Path, files: list[Path]) -> CorpusStore:
    """A corpus store under ``root/corpus`` holding ``files`` (one source each)."""
    store = CorpusStore(root / "corpus")
    for f in files:
        media = TYPE_BY_EXT.get(f.suffix.lstrip("."), OCTET)
        doc_id, _ = store.add_document(f.read_bytes(), media)
        store.add_source(doc_id, "testville", f"https://testville.example/{f.name}",
                         page_title=f.stem, last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
                         metadata={"DELIB_DATE": "2021-03-12"} if f.stem == "table" else None)
    return store


@pytest.fixture(scope="session")
def store_with():
    """``store_with(root, files)``: a corpus store under ``root/corpus`` holding ``files``."""
    return _store_with


W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
ODT_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"')


def write_docx(path: Path, body_xml: str, document_xml: str | None = None) -> Path:
    """A minimal DOCX whose body is ``body_xml`` (or whose document.xml is ``document_xml``)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", document_xml if document_xml is not None
                   else f"<w:document {W_NS}><w:body>{body_xml}</w:body></w:document>")
    return path


def write_odt(path: Path, text_xml: str, content_xml: str | None = None) -> Path:
    """A minimal ODT whose office:text is ``text_xml`` (or whose content.xml is given)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", content_xml if content_xml is not None else (
            f"<office:document-content {ODT_NS}><office:body><office:text>{text_xml}"
            "</office:text></office:body></office:document-content>"))
    return path


@pytest.fixture(scope="session")
def office():
    """Builders of small office files: ``office.docx(path, body_xml)``, ``office.odt(path, text_xml)``."""
    from types import SimpleNamespace

    return SimpleNamespace(docx=write_docx, odt=write_odt, W_NS=W_NS, ODT_NS=ODT_NS)


HTML_PAGE = """<!DOCTYPE html><html lang="fr"><head><title>Stratégie numérique de la Métropole</title>
<meta property="article:published_time" content="2021-03-12"></head><body>
<nav><a href="/">Accueil</a> | <a href="/agenda">Agenda</a> | <a href="/contact">Contact</a></nav>
<article><h1>Stratégie numérique de la Métropole</h1>
<p>La métropole adopte sa feuille de route numérique pour les six prochaines années. Elle vise
l'inclusion numérique de tous les habitants et la modernisation des services publics en ligne.</p>
<p>Les conseillers numériques accompagnent les habitants dans leurs démarches administratives
dans les mairies de quartier et les médiathèques du territoire métropolitain.</p>
<p>Un schéma directeur des systèmes d'information organise la mutualisation avec les communes
membres et la plateforme de données ouvertes publie les jeux de données de la collectivité.</p>
</article><footer>Mentions légales - Plan du site</footer></body></html>"""


@pytest.fixture(scope="session")
def html_page() -> str:
    """A municipal web page: navigation, an article of three paragraphs, a footer."""
    return HTML_PAGE


REPRO_DIR = shared_repro_dir()


@pytest.fixture(scope="session")
def repro() -> Path:
    """The folder of reproducers (../shared/repro); the test skips when it is absent."""
    if not REPRO_DIR.is_dir():
        pytest.skip("../shared/repro is absent")
    return REPRO_DIR


@pytest.fixture(scope="session")
def pdf_builder():
    """``pdf_builder.build(objects)``, ``.text_stream(text, compress, padding)``,
    ``.page(contents)``, ``.FONT``: hand-made PDFs (object 1 the catalog, 2 the page tree,
    3 the font by convention)."""
    from types import SimpleNamespace

    return SimpleNamespace(build=build_pdf, text_stream=text_stream, page=page_object, FONT=FONT)
