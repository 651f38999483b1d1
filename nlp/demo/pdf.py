"""Demo corpus: render a source document as a deliberation-like PDF (fpdf2).

Stage: none (demo data). Input: a :class:`~nlp.demo.content.SourceDoc` and its
:class:`~nlp.demo.content.DemoMetropole`. Output: PDF bytes, deterministic (fixed creation
date, no random ids), with the layout that makes real council PDFs awkward to extract: a
letterhead on page 1, a running header and footer on every page (with the fictional mark and
"Page n/N"), a "Vu le code…" block, and words hyphenated at line ends in the text layer.

Core fonts only (Helvetica) with the windows-1252 encoding, so « » ’ — œ … survive; any other
character is transliterated (see :func:`to_cp1252`).
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta, timezone

from fpdf import FPDF

from nlp.demo.content import FICTIONAL_MARK, FORCED_BREAK, DemoMetropole, SourceDoc

MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
          "septembre", "octobre", "novembre", "décembre")
VOWELS = set("aeiouyàâäéèêëîïôöùûüœæ")
# Consonant pairs French never splits across a hyphen ("ta-bleau", "chif-fre", "si-gner").
INSEPARABLE = {"bl", "cl", "fl", "gl", "pl", "br", "cr", "dr", "fr", "gr", "pr", "tr", "vr",
               "ch", "ph", "gn", "th", "qu", "gu"}
BODY_SIZE = 10.5
LINE_H = 5.2


def french_date(d: date) -> str:
    """``12 mars 2021`` (``1er`` for the first of the month)."""
    day = "1er" if d.day == 1 else str(d.day)
    return f"{day} {MONTHS[d.month - 1]} {d.year}"


def to_cp1252(text: str) -> str:
    """Text the core fonts can draw: windows-1252 characters kept, others transliterated."""
    out = []
    for ch in text:
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            repl = {"\u2011": "-", "\u2010": "-", "\u2212": "-", "\u202f": " ", "\u2009": " ",
                    "\u2192": "->", "\u2264": "<=", "\u2265": ">="}.get(ch)
            if repl is None:
                repl = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(repl)
    return "".join(out)


def hyphen_points(word: str) -> list[int]:
    """Indexes where ``word`` may be split with a hyphen (rough French syllabation).

    Only plain lower-case alphabetic words of 7+ letters are split, leaving at least 3 letters
    on each side: V-CV ("numé-rique") and VC-CV ("com-mune") unless the pair is inseparable.
    """
    if len(word) < 7 or not word.isalpha() or not word.islower():
        return []
    points = []
    low = word.lower()
    for i in range(3, len(word) - 2):
        a, b, c = low[i - 1], low[i], low[i + 1]
        if a in VOWELS and b not in VOWELS and c in VOWELS and low[i - 1:i + 1] != "qu":
            points.append(i)  # V-CV
        elif (i >= 2 and low[i - 2] in VOWELS and a not in VOWELS and b not in VOWELS
              and c in VOWELS and a + b not in INSEPARABLE):
            points.append(i)  # VC-CV
    return points


def _french_spacing(text: str) -> str:
    """No-break spaces where French typography wants them (thousands, before : ; ! ? % »)."""
    text = re.sub(r"(?<=\d) (?=\d{3}\b)", "\u00a0", text)
    text = re.sub(r" (?=[:;!?%»])", "\u00a0", text)
    return re.sub(r"« ", "«\u00a0", text)


class DemoPDF(FPDF):
    """FPDF with the metropolis letterhead, running header and footer."""

    def __init__(self, metro: DemoMetropole, running_title: str,
                 stamp: list[str] | None = None):
        super().__init__(orientation="P", unit="mm", format="A4")
        self.stamp = stamp or []
        self.core_fonts_encoding = "windows-1252"
        self.metro = metro
        self.running_title = running_title
        self.set_margins(22, 24, 22)
        self.set_auto_page_break(True, margin=22)
        self.alias_nb_pages()

    def header(self) -> None:
        self.set_text_color(90, 90, 90)
        self.set_font("Helvetica", "", 8)
        self.set_xy(self.l_margin, 9)
        head = f"{self.metro.name} — {self.running_title}"
        self.cell(0, 4, to_cp1252(head[:110]), new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(150, 150, 150)
        self.line(self.l_margin, 14, self.w - self.r_margin, 14)
        self.set_text_color(0, 0, 0)
        if self.page_no() == 1:
            self._letterhead()
        else:
            self.set_y(self.t_margin)

    def _letterhead(self) -> None:
        self.set_xy(self.l_margin, 18)
        self.set_font("Helvetica", "B", 15)
        self.cell(0, 7, to_cp1252(self.metro.name.upper()), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "", 8.5)
        self.cell(0, 4.2, to_cp1252(self.metro.address), new_x="LMARGIN", new_y="NEXT")
        self.cell(0, 4.2, to_cp1252(FICTIONAL_MARK), new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(30, 60, 120)
        self.set_line_width(0.6)
        y = self.get_y() + 2
        self.line(self.l_margin, y, self.w - self.r_margin, y)
        self.set_line_width(0.2)
        if self.stamp:
            self._stamp()
        self.set_y(y + 6)

    def _stamp(self) -> None:
        # The prefecture's acknowledgement box that @ctes-transmitted acts carry, top right.
        x, y, w = self.w - self.r_margin - 58, 17, 58
        self.set_draw_color(60, 60, 60)
        self.rect(x, y, w, 3.4 * len(self.stamp) + 1.6)
        self.set_font("Helvetica", "", 6.8)
        for i, line in enumerate(self.stamp):
            self.set_xy(x + 1, y + 0.8 + 3.4 * i)
            self.cell(w - 2, 3.4, to_cp1252(line))

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(130, 4, to_cp1252(FICTIONAL_MARK))
        self.cell(0, 4, f"Page {self.page_no()}/{{nb}}", align="R")
        self.set_text_color(0, 0, 0)

    # --- text ------------------------------------------------------------------------------
    def paragraph(self, text: str, size: float = BODY_SIZE, style: str = "",
                  indent: float = 0.0, first: str = "", space_after: float = 2.2,
                  align: str = "L") -> None:
        """Lay out ``text`` line by line, hyphenating long words that straddle a line end."""
        self.set_font("Helvetica", style, size)
        width = self.w - self.l_margin - self.r_margin - indent
        lines = self._break_lines(to_cp1252(_french_spacing(first + text)), width)
        for line in lines:
            self.set_x(self.l_margin + indent)
            self.cell(width, LINE_H * size / BODY_SIZE, line, align=align,
                      new_x="LMARGIN", new_y="NEXT")
        self.ln(space_after)

    def _break_lines(self, text: str, width: float) -> list[str]:
        lines: list[str] = []
        current = ""
        # Split on plain spaces only: no-break spaces keep "4 000" and "article :" together.
        words = [w for w in text.split(" ") if w]
        i = 0
        while i < len(words):
            word = words[i]
            if FORCED_BREAK in word:
                # A hyphenated line end placed by the author: "numé-|rique".
                head, _, tail = word.partition(FORCED_BREAK)
                candidate = f"{current} {head}-".strip()
                lines.append(candidate)
                current = ""
                words[i] = tail
                continue
            candidate = f"{current} {word}".strip()
            if self.get_string_width(candidate) <= width:
                current = candidate
                i += 1
                continue
            split = self._hyphenate(current, word, width)
            if split is not None:
                lines.append(split[0])
                current = ""
                words[i] = split[1]
                continue
            if current:
                lines.append(current)
                current = ""
            else:  # a single word wider than the line: let it overflow
                lines.append(word)
                i += 1
        if current:
            lines.append(current)
        return lines

    def _hyphenate(self, current: str, word: str, width: float) -> tuple[str, str] | None:
        m = re.fullmatch(r"([^\w]*)(\w+)([^\w]*)", word)
        if not current or m is None:
            return None
        lead, core, trail = m.groups()
        for point in reversed(hyphen_points(core)):
            head = f"{current} {lead}{core[:point]}-"
            if self.get_string_width(head) <= width:
                return head, core[point:] + trail
        return None

    def heading(self, text: str, level: int = 1) -> None:
        if self.get_y() > self.h - 45:  # keep a heading with the text that follows
            self.add_page()
        self.ln(1.5)
        self.paragraph(text, size=12.5 if level == 1 else 11, style="B", space_after=1.5)


def transmission_date(doc: SourceDoc) -> date:
    """Date the act was sent to the prefecture (``pref_delay`` days after the séance)."""
    return doc.date + timedelta(days=int(doc.meta.get("pref_delay", "6")))


def render_pdf(doc: SourceDoc, metro: DemoMetropole) -> bytes:
    """Render ``doc`` as PDF bytes; the same inputs always give the same bytes."""
    label = {"deliberation": "Délibération", "proces_verbal": "Procès-verbal",
             "strategie": "Document stratégique", "rapport": "Rapport"}[doc.doc_type]
    if doc.doc_type == "deliberation":
        running = f"Conseil de la Métropole — Séance du {french_date(doc.date)} — " \
                  f"Délibération n° {doc.meta['number']}"
    else:
        running = f"{label} — {doc.meta.get('short', doc.title)}"
    stamp = None
    if doc.doc_type == "deliberation":
        sent = transmission_date(doc)
        stamp = ["Accusé de réception en préfecture",
                 f"099-{metro.siren}-{sent:%Y%m%d}-{doc.meta['number'].replace('-', '_')}-DE",
                 f"Date de télétransmission : {sent:%d/%m/%Y}",
                 f"Date de réception préfecture : {sent:%d/%m/%Y}"]
    pdf = DemoPDF(metro, running, stamp)
    pdf.set_title(to_cp1252(doc.title))
    pdf.set_author(to_cp1252(metro.name))
    pdf.set_creator("barometre demo corpus")
    pdf.set_producer("fpdf2")
    pdf.set_creation_date(datetime(doc.date.year, doc.date.month, doc.date.day, 12, 0,
                                   tzinfo=timezone.utc))
    pdf.add_page()
    if doc.doc_type == "deliberation":
        _deliberation(pdf, doc, metro)
    else:
        _document(pdf, doc, metro, label)
    return bytes(pdf.output())


def _blocks(pdf: DemoPDF, doc: SourceDoc) -> None:
    for block in doc.blocks:
        if block.kind in ("h1", "h2"):
            pdf.heading(block.text, 1 if block.kind == "h1" else 2)
        elif block.kind == "li":
            pdf.paragraph(block.text, indent=6, first="– ", space_after=1.0)
        else:
            pdf.paragraph(block.text)


def _document(pdf: DemoPDF, doc: SourceDoc, metro: DemoMetropole, label: str) -> None:
    pdf.paragraph(label.upper(), size=9, style="B", space_after=1)
    pdf.paragraph(doc.title, size=16, style="B", space_after=2)
    if doc.meta.get("subtitle"):
        pdf.paragraph(doc.meta["subtitle"], size=11, style="I", space_after=2)
    pdf.paragraph(doc.meta.get("dateline", f"{metro.city}, {french_date(doc.date)}"),
                  size=9.5, space_after=6)
    _blocks(pdf, doc)


def _deliberation(pdf: DemoPDF, doc: SourceDoc, metro: DemoMetropole) -> None:
    effectif, reel, pour, contre, abst = (int(v) for v in doc.meta["vote"].split())
    pdf.paragraph("EXTRAIT DU REGISTRE DES DÉLIBÉRATIONS DU CONSEIL DE LA MÉTROPOLE",
                  size=10, style="B", align="C", space_after=1)
    pdf.paragraph(f"Séance du {french_date(doc.date)}", size=10, align="C", space_after=4)
    pdf.paragraph(f"Délibération n° {doc.meta['number']}", size=11, style="B", space_after=1)
    pdf.paragraph(f"Objet : {doc.title}", size=11, style="B", space_after=1)
    pdf.paragraph(f"Rapporteur : {doc.meta['rapporteur']}", size=9.5, space_after=1)
    pdf.paragraph(f"Nombre de conseillers en exercice : {effectif} — présents ou représentés "
                  f": {reel}", size=9.5, space_after=5)
    pdf.heading("Exposé des motifs", 2)
    _blocks(pdf, doc)
    pdf.ln(2)
    pdf.paragraph("Le Conseil de la Métropole,", style="B")
    pdf.paragraph("Vu le Code général des collectivités territoriales, notamment ses articles "
                  "L.5217-1, L.5217-2 et L.2121-29 ;", indent=4, space_after=1.2)
    for line in doc.vu:
        pdf.paragraph(line, indent=4, space_after=1.2)
    pdf.paragraph(f"Vu l'avis de la commission {doc.meta.get('commission', 'Ressources')} ;",
                  indent=4, space_after=2)
    for line in doc.considerant:
        pdf.paragraph(line, indent=4, space_after=1.2)
    pdf.ln(1.5)
    pdf.paragraph("Après en avoir délibéré, DÉCIDE :", style="B")
    articles = list(doc.articles) + [
        f"Le Président de la {metro.name} est chargé de l'exécution de la présente "
        "délibération, qui peut faire l'objet d'un recours devant le tribunal administratif "
        "dans un délai de deux mois à compter de sa publication."]
    for i, text in enumerate(articles, start=1):
        pdf.paragraph(text, first=f"Article {i} : ", space_after=1.8)
    pdf.ln(2)
    if contre == 0 and abst == 0:
        result = f"Adopté à l'unanimité des suffrages exprimés ({pour} voix)."
    else:
        result = f"Adopté. Pour : {pour} — Contre : {contre} — Abstentions : {abst}."
    pdf.paragraph(result, style="B", space_after=3)
    pdf.paragraph(f"Fait à {metro.city}, le {french_date(doc.date)}. Pour extrait conforme.",
                  space_after=1)
    pdf.paragraph(f"Le Président, {metro.president}", style="I", space_after=3)
    transmitted = transmission_date(doc)
    pdf.paragraph(f"Acte rendu exécutoire après transmission en préfecture le "
                  f"{french_date(transmitted)} et publication le {french_date(transmitted)}.",
                  size=8.5)
