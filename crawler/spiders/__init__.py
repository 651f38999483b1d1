"""Spiders of the barometre crawler (Scrapy finds them here: ``SPIDER_MODULES``).

- :mod:`~crawler.spiders.base`: :class:`~crawler.spiders.base.BarometreSpider`, what every
  spider shares (registry entries, request building, response and failure classification);
- :mod:`~crawler.spiders.site`: the focused crawl of each metropolis's web site;
- :mod:`~crawler.spiders.deliberations`: the open-data deliberation datasets and the
  documents they list.
"""
