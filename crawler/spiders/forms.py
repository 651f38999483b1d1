"""Listings behind a form: the registry's ``forms`` (WebDelib-style deliberation sites).

Stage: crawl. Some deliberation sites have no link to their documents: the visitor chooses a
session in a ``<select>`` and submits a form (Nice Côte d'Azur's WebDelib application, issue
15). For each declared form, the page holding it is fetched (on every run: the sessions
change), the form is found (``form``: a CSS selector, else the first form with a select), and
it is submitted with Scrapy's ``FormRequest.from_response`` once per option of the select
(``field``: its name, else the form's first select), keeping the form's hidden fields (tokens)
and adding ``formdata``; options are those whose value or label matches ``options`` (every
non-empty one by default), at most ``max_options``. Each answer is a listing page at depth 1,
whose links are followed like any page's.

The outcome of a submission is recorded under the key ``<action URL>#form:<field>=<value>``
(the action URL alone would be the same for every session).
"""
from __future__ import annotations

import logging
import re
from typing import Any, Iterator

from scrapy.http import FormRequest, Request, Response

from crawler.items import FetchRecord
from crawler.outcomes import http_status_slug
from crawler.registry import Form
from crawler.urls import normalise_url

log = logging.getLogger(__name__)


def form_choices(response: Response, form: Form) -> tuple[int | None, str | None, list[tuple[str, str]], str | None]:
    """(form number, select name, [(value, label)], problem) for the declared form on the page."""
    forms = response.css("form")
    if form.form:
        try:
            wanted = {id(f.root) for f in response.css(form.form)}
        except Exception as exc:  # a bad selector is the registry's problem, said once
            return None, None, [], f"bad CSS selector {form.form!r}: {exc}"
        numbers = [i for i, f in enumerate(forms) if id(f.root) in wanted]
    else:
        numbers = [i for i, f in enumerate(forms) if f.css("select")]
    if not numbers:
        return None, None, [], "no form " + (f"matching {form.form!r}" if form.form else "with a <select>") + " on the page"
    chosen = forms[numbers[0]]
    select = chosen.css(f'select[name="{form.field}"]') if form.field else chosen.css("select")
    name = select.attrib.get("name") if select else None
    if not name:
        return numbers[0], None, [], f"no <select> named {form.field!r} in the form" if form.field else "no named <select>"
    choices = []
    for option in select[0].css("option"):
        label = " ".join(option.css("::text").getall()).strip()
        value = option.attrib.get("value", label).strip()
        if value and (form.options is None or re.search(form.options, f"{value} {label}")):
            choices.append((value, label))
    return numbers[0], name, choices[:form.max_options], None


class FormListings:
    """Mixin of the site spider: requests for the registry's forms, and their submissions."""

    def form_requests(self: Any, slug: str) -> Iterator[Request]:
        for index, form in enumerate(self.metros[slug].forms):
            yield self.make_request(slug, normalise_url(form.url), kind="page", depth=0, priority=950,
                                    callback=self.parse_form, dont_filter=True, always=True,
                                    extra_meta={"b_form": index})

    def parse_form(self: Any, response: Response) -> Iterator[Any]:
        """The page holding a declared form: one submission per chosen option."""
        meta = response.meta
        m, key = meta["b_m"], meta["b_url"]
        if response.status != 200:
            yield FetchRecord(m, key, http_status_slug(response.status), "page", http_status=response.status,
                              error=f"HTTP {response.status}", nbytes=len(response.body))
            return
        form = self.metros[m].forms[meta["b_form"]]
        number, field, choices, problem = form_choices(response, form)
        if problem:
            log.warning("%s: form at %s: %s", m, response.url, problem)
        for value, label in choices:
            try:
                yield self.form_submission(response, form, number, field, value, label)
            except ValueError as exc:  # no action URL Scrapy can use
                problem = f"cannot submit the form: {exc}"
                break
        yield FetchRecord(m, key, "error" if problem else "ok", "page", http_status=response.status,
                          error=problem, nbytes=len(response.body), aliases=self.aliases(response))

    def form_submission(self: Any, response: Response, form: Form, number: int | None, field: str | None,
                        value: str, label: str) -> Request:
        m = response.meta["b_m"]
        request = FormRequest.from_response(
            response, formnumber=number or 0, formdata={field: value, **form.formdata}, dont_click=True,
            callback=self.parse_response, errback=self.on_error, dont_filter=True, priority=900,
        )
        key = f"{normalise_url(request.url)}#form:{field}={value}"
        request.meta.update(self.request_meta(m, key, kind="page", depth=1, referer=response.url, anchor=label,
                                              context_title=response.css("title::text").get("").strip()))
        request.headers["Referer"] = response.url
        return request
