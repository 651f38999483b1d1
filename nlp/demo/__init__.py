"""The bundled demo: a fictional corpus of four metropolises served as a local website.

Stage: none (input of ``barometre demo``). :func:`build_site` writes the static site,
:func:`serve` serves it on 127.0.0.1, :func:`demo_registry` points the crawler at it, and
:data:`DESIGNED_LEADERS` says which metropolis was written to lead which theme.
"""
from nlp.demo.content import FICTIONAL_MARK
from nlp.demo.site import (DESIGNED_LEADERS, DemoDocument, DemoServer, DemoSite, build_site,
                           demo_registry, serve)

__all__ = ["FICTIONAL_MARK", "DESIGNED_LEADERS", "DemoDocument", "DemoServer", "DemoSite",
           "build_site", "demo_registry", "serve"]
