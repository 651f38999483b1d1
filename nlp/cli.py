"""``barometre``: the command line. Each subcommand is a thin wrapper over a plain function.

stdout carries results (stage summaries, texts, concordances); stderr carries logs and
progress bars. A :class:`~nlp.errors.BarometreError` (bad argument, bad config or registry or
lexicon file, missing input) prints one message and exits with code 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from nlp.config import Settings, load_settings
from nlp.errors import BarometreError

log = logging.getLogger("barometre")

STAGE_HELP = {
    "crawl": "crawl the registry's metropolises with the Scrapy spiders (a subprocess, or one job per metropolis on a cluster)",
    "import": "add a folder of local PDF/HTML/DOCX/ODT/Markdown/TXT files for one metropolis",
    "extract": "extract clean text from every stored document (incremental)",
    "text": "print the cleaned text of one local file (no corpus involved)",
    "annotate": "detect themes in the extracted corpus; write hits, paragraphs, documents tables",
    "themes": "label any JSONL of {id, text}: writes {id, labels, scores, hits, evidence}",
    "eval": "validate the theme detector: grouped cross-validation, sealed documents, dev split; or a coded sample (--gold)",
    "sample": "export paragraphs of the corpus for manual coding (CSV + JSONL)",
    "train": "refit the theme model on the training set plus coded samples (a new model version)",
    "kwic": "print or export the concordance (evidence sentences) of a theme",
    "topics": "fit a BERTopic model on the corpus paragraphs (or assign topics with --assign)",
    "indicators": "compute indicators with bootstrap intervals; join barometer scores",
    "report": "build outputs/report/index.html and the PNG plots",
    "run": "run every stage in order (crawl, extract, annotate, topics, indicators, report)",
    "demo": "serve the bundled fictional demo site on 127.0.0.1, crawl it and run every stage",
    "registry": "the metropolis registry: `registry check` fetches each of its URLs once and reports what is live",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit code 1, as for every user error
        self.print_usage(sys.stderr)
        sys.stderr.write(f"barometre: error: {message}\n")
        raise SystemExit(1)


def _common(corpus: bool = True, metropole: bool = True) -> argparse.ArgumentParser:
    p = _Parser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--corpus-dir", type=Path, help="corpus folder (default: corpus/)")
    g.add_argument("--outputs-dir", type=Path, help="outputs folder (default: outputs/)")
    g.add_argument("--config", type=Path, help="YAML settings file (flags > environment > file > defaults)")
    if metropole:
        g.add_argument("--metropole", action="append", dest="metropoles", metavar="SLUG",
                       help="restrict to this metropolis (repeatable)")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more logs (-vv: debug)")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _a(*flags: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    return flags, kwargs


_MODEL_DIR = "theme model folder (default: outputs/models/themes, else the shipped one)"
_LEXICONS = _a("--lexicons", type=Path, help="lexicon folder (default: lexicons/)")
_REGISTRY = _a("--registry", type=Path, help="registry YAML (default: crawler/metropoles.yaml)")
_CONTACT = _a("--contact", help="contact (e-mail or URL) put in the user agent")
_SCHEDULER = _a("--scheduler", metavar="WHERE",
                help="where the work runs: local (default: a Dask LocalCluster, in process for "
                     "small corpora), inprocess, tcp://HOST:PORT (an existing Dask scheduler) or slurm; "
                     "for crawl, an address or slurm runs one crawl job per metropolis there")
# command -> (common options: "all" | "no-metropole" | "file", its own arguments)
COMMAND_ARGS: dict[str, tuple[str, list[tuple[tuple[str, ...], dict[str, Any]]]]] = {
    "crawl": ("all", [_REGISTRY, _a("--resume", action="store_true", help="resume an interrupted crawl"), _CONTACT,
                      _a("--max-pages", type=int, help="pages per metropolis"),
                      _a("--max-depth", type=int, help="link depth from the start URLs"), _SCHEDULER]),
    "import": ("no-metropole", [_a("folder", type=Path, help="folder of documents"),
                                _a("--metropole", required=True, help="slug of the metropolis they belong to")]),
    "extract": ("all", [_a("--workers", type=int, help="worker processes (default: 2)"), _SCHEDULER,
                        _a("--engine", help="PDF engine: auto, pdfium or pdfplumber"),
                        _a("--ocr", action=argparse.BooleanOptionalAction, default=None,
                           help="OCR pages without a text layer (default: on when tesseract is installed)"),
                        _a("--timeout", type=float, help="seconds allowed per document"),
                        _a("--force", action="store_true", help="re-extract even when up to date")]),
    "text": ("file", [_a("file", type=Path), _a("--engine", default="auto", help="auto, pdfium or pdfplumber"),
                      _a("--json", action="store_true", help="a JSON object: pages, status, engine, metadata"),
                      _a("--ocr", action=argparse.BooleanOptionalAction, default=None)]),
    "annotate": ("all", [_a("--force", action="store_true", help="re-annotate even when cached"), _SCHEDULER]),
    "themes": ("no-metropole", [_a("--jsonl", type=Path, required=True, help="input: one {id, text} per line"),
                                _a("--out", type=Path, required=True, help="output JSONL"), _LEXICONS,
                                _a("--model-dir", type=Path, help=_MODEL_DIR),
                                _a("--lexicons-only", action="store_true", help="labels from the lexicons alone, no model")]),
    "eval": ("no-metropole", [_a("--gold", type=Path, help="a coded sample (CSV or JSONL from `barometre sample`)"),
                              _a("--dev", type=Path, help="independent gold split (default: ../shared/data/gold/dev.jsonl)"),
                              _LEXICONS, _a("--model-dir", type=Path, help=_MODEL_DIR),
                              _a("--compare", action="store_true", help="also cross-validate spaCy textcat_multilabel (slow)"),
                              _a("--draws", type=int, default=1000, help="bootstrap draws for the intervals (default 1000)"),
                              _a("--json", action="store_true", help="print the reports as JSON")]),
    "sample": ("all", [_a("--n", type=int, required=True, help="paragraphs to sample"),
                       _a("--stratify", choices=["theme", "metropole", "doc_type"], help="strata sampled evenly"),
                       _a("--seed", type=int, help="random seed (default: the run's seed)"),
                       _a("--out", type=Path, required=True, help="output file: FILE.csv and FILE.jsonl are written")]),
    "train": ("no-metropole", [_a("--gold", type=Path, action="append", default=[], help="coded sample to add (repeatable)"),
                               _LEXICONS, _a("--model-dir", type=Path, help="where to write the model (default: outputs/models/themes)"),
                               _a("--no-validate", action="store_true", help="skip the cross-validation stored with the model")]),
    "kwic": ("all", [_a("--theme", required=True, help="theme id (e.g. inclusion)"),
                     _a("--subtheme", help="sub-theme (e.g. budgetaire)"),
                     _a("--negated", action=argparse.BooleanOptionalAction, default=None,
                        help="only negated (--negated) or only affirmed (--no-negated) hits"),
                     _a("--counting", action=argparse.BooleanOptionalAction, default=None,
                        help="only hits that count (--counting) or only those that do not (--no-counting)"),
                     _a("--limit", type=int, default=50, help="rows to print (default 50; 0 = all)"),
                     _a("--out", type=Path, help="export all rows to CSV or Parquet instead")]),
    "topics": ("all", [_a("--embedder", help="tfidf-svd, spacy, or st:<local model path>"),
                       _a("--all-paragraphs", action="store_true", default=None,
                          help="fit on every paragraph, not only those about digital matters"),
                       _a("--seed-lexicons", action="store_true", default=None, help="guide the topics with the theme lexicons"),
                       _a("--assign", action="store_true", help="assign topics with the saved model"), _SCHEDULER]),
    "indicators": ("all", [_a("--scores", type=Path, help="barometer scores CSV to join (long or wide)"),
                           _a("--draws", type=int, help="bootstrap draws (default 1000)"), _a("--seed", type=int, help="random seed"),
                           _SCHEDULER]),
    "report": ("all", []),
    "run": ("all", [_REGISTRY, _a("--skip-crawl", action="store_true", help="use the corpus as it is"),
                    _a("--no-topics", action="store_true", help="skip the topic model"),
                    _a("--scores", type=Path, help="barometer scores CSV to join"), _a("--workers", type=int), _SCHEDULER]),
    "demo": ("all", [_a("--no-topics", action="store_true", help="skip the topic model"), _SCHEDULER]),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="barometre",
        description="Text-derived digital-maturity indicators for French metropolises: "
                    "crawl, extract, annotate themes, topics, indicators, report.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    parents = {"all": _common(), "no-metropole": _common(metropole=False),
               "file": _common(corpus=False, metropole=False)}
    for name, (kind, arguments) in COMMAND_ARGS.items():
        p = sub.add_parser(name, help=STAGE_HELP[name], description=STAGE_HELP[name], parents=[parents[kind]])
        for flags, kwargs in arguments:
            p.add_argument(*flags, **kwargs)
    p = sub.add_parser("registry", help=STAGE_HELP["registry"], description=STAGE_HELP["registry"])
    rsub = p.add_subparsers(dest="registry_command", metavar="ACTION", required=True, parser_class=_Parser)
    c = rsub.add_parser("check", parents=[parents["all"]], help="fetch robots.txt, start URLs, sitemaps, forms and "
                        "datasets once each; report status, final URL, media type, dataset rows and dates")
    for flags, kwargs in (_REGISTRY, _CONTACT, _a("--json", action="store_true", help="print the report as JSON")):
        c.add_argument(*flags, **kwargs)
    return parser


def _configure_logging(args: argparse.Namespace) -> str:
    level = "WARNING" if args.quiet else ("DEBUG" if args.verbose > 1 else "INFO")
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # Third-party libraries are chatty at INFO; keep their warnings only unless -vv.
    for noisy in ("numba", "matplotlib", "urllib3", "PIL", "fontTools", "BERTopic", "pdfminer",
                  "trafilatura", "htmldate", "h5py", "distributed"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose > 1 else logging.WARNING)
    return level


def _settings(args: argparse.Namespace, level: str) -> Settings:
    cli: dict[str, Any] = {
        "corpus_dir": getattr(args, "corpus_dir", None),
        "outputs_dir": getattr(args, "outputs_dir", None),
        "metropoles": getattr(args, "metropoles", None) if args.command != "import" else None,
        "workers": getattr(args, "workers", None),
        "compute.scheduler": getattr(args, "scheduler", None),
        "compute.workers": getattr(args, "workers", None),  # LocalCluster worker processes too
        "log_level": level,
        "progress": False if (args.no_progress or not sys.stderr.isatty()) else None,
    }
    if getattr(args, "registry", None):
        cli["registry"] = args.registry
    if getattr(args, "seed", None) is not None:
        cli["seed"] = args.seed
    settings = load_settings(cli, config_path=args.config)
    crawl = dict(settings.crawl)
    for key in ("contact", "max_pages", "max_depth"):
        if getattr(args, key, None) is not None:
            crawl[key] = getattr(args, key)
    return dataclasses.replace(settings, crawl=crawl)


def print_summary(stage: str, summary: Any) -> None:
    """A stage's counts per status, on stdout."""
    print(f"== {stage} ==")
    if isinstance(summary, dict):
        for key, value in summary.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value, ensure_ascii=False, default=str)
                if len(value) > 300:
                    value = value[:297] + "..."
            print(f"  {key}: {value}")
    else:
        print(f"  {summary}")
    sys.stdout.flush()


# -- commands ----------------------------------------------------------------------------
def cmd_crawl(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_crawl

    print_summary("crawl", stage_crawl(settings, resume=args.resume))
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_import

    print_summary("import", stage_import(settings, args.folder, args.metropole))
    return 0


def cmd_extract(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_extract

    overrides = {"engine": args.engine, "ocr": args.ocr, "timeout_s": args.timeout,
                 "force": True if args.force else None}
    print_summary("extract", stage_extract(settings, **overrides))
    return 0


def cmd_text(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.extract import text_command

    if not args.file.is_file():
        raise BarometreError(f"text: no such file: {args.file}")
    sys.stdout.write(text_command(args.file, engine=args.engine, as_json=args.json, ocr=args.ocr))
    sys.stdout.write("\n")
    return 0


def cmd_annotate(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_annotate

    print_summary("annotate", stage_annotate(settings, force=args.force or None))
    return 0


def cmd_themes(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_themes

    print_summary("themes", stage_themes(settings, args.jsonl, args.out, lexicons=args.lexicons,
                                         model_dir=args.model_dir, use_model=not args.lexicons_only))
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_eval

    result = stage_eval(settings, gold=args.gold, dev=args.dev, lexicons=args.lexicons,
                        model_dir=args.model_dir, compare=args.compare, draws=args.draws)
    if args.json:
        print(json.dumps([r.to_dict() for r in result["reports"]], ensure_ascii=False, indent=1, default=float))
    else:
        print(result["text"])
        if result.get("written"):
            print(f"\nvalidation written to {result['written']} (the indicators use it to correct prevalences)")
    return 0


def cmd_sample(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_sample

    print_summary("sample", stage_sample(settings, args.n, args.out, stratify=args.stratify, seed=args.seed))
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_train

    print_summary("train", stage_train(settings, gold=args.gold, lexicons=args.lexicons,
                                       model_dir=args.model_dir, validate=not args.no_validate))
    return 0


def cmd_kwic(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.annotate.kwic import kwic_table, print_kwic

    table = kwic_table(Path(settings.outputs_dir), args.theme, metropoles=settings.metropoles or None,
                       subtheme=args.subtheme, negated=args.negated, counting=args.counting)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.out.suffix == ".parquet":
            table.to_parquet(args.out, index=False)
        else:
            table.to_csv(args.out, index=False)
        print(f"{len(table)} rows written to {args.out}")
    else:
        print_kwic(table, limit=args.limit)
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_topics

    if args.assign:
        from nlp.io import write_table
        from nlp.topics import assign_topics, read_inputs

        inputs = read_inputs(Path(settings.outputs_dir), settings.metropoles or None)
        assigned = assign_topics(Path(settings.outputs_dir) / "models" / "topics",
                                 inputs.paragraphs, inputs.documents)
        out = Path(settings.outputs_dir) / "tables" / "doc_topics_assigned.parquet"
        write_table(assigned, out)
        print_summary("topics --assign", {"chunks": len(assigned), "written": str(out)})
        return 0
    overrides = {"embedder": args.embedder, "all_paragraphs": args.all_paragraphs,
                 "seed_with_lexicons": args.seed_lexicons}
    print_summary("topics", stage_topics(settings, **overrides))
    return 0


def cmd_indicators(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_indicators

    if args.scores is not None and not args.scores.is_file():
        raise BarometreError(f"indicators: no such scores file: {args.scores}")
    summary = stage_indicators(settings, scores=args.scores, draws=args.draws)
    report = summary.pop("scores_report", None)
    print_summary("indicators", summary)
    if report:
        print(report)
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_report

    print_summary("report", stage_report(settings))
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import run_all

    result = run_all(settings, crawl=not args.skip_crawl, topics=not args.no_topics, scores=args.scores)
    for stage, summary in result.items():
        print_summary(stage, summary)
    return 0


def cmd_registry(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import stage_registry_check

    report = stage_registry_check(settings)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        print(report.to_text())
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from nlp.pipeline import run_demo

    result = run_demo(settings, topics=not args.no_topics)
    for stage, summary in result.items():
        print_summary(stage, summary)
    print(f"\nReport: {Path(settings.outputs_dir) / 'report' / 'index.html'}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "crawl": cmd_crawl, "import": cmd_import, "extract": cmd_extract, "text": cmd_text,
    "annotate": cmd_annotate, "themes": cmd_themes, "eval": cmd_eval, "sample": cmd_sample,
    "train": cmd_train, "kwic": cmd_kwic,
    "topics": cmd_topics, "indicators": cmd_indicators, "report": cmd_report, "run": cmd_run,
    "demo": cmd_demo, "registry": cmd_registry,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``barometre`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = _configure_logging(args)
    try:
        settings = _settings(args, level)
        return COMMANDS[args.command](args, settings)
    except BarometreError as exc:
        sys.stderr.write(f"barometre: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("barometre: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
