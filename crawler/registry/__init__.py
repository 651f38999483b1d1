"""Registry of metropolises: load and validate ``crawler/metropoles.yaml``.

Stage: crawl (configuration). Input: a YAML registry file (schema in the header comment of
``crawler/metropoles.yaml``). Output: a validated :class:`Registry` of :class:`Metropole`
entries that the spiders use to know where to start, which domains they may visit, which URLs
to avoid, which open-data deliberation datasets to download, and how far to go (limits).

Every problem in the file is raised as one :class:`nlp.errors.RegistryError` whose message is
a single line naming the file, the entry (slug and 1-based index, or the index alone when the
slug is missing) and the field, e.g.::

    crawler/metropoles.yaml: entry 'lyon' (#9): field 'siren': must be 9 digits, got '2000469'

Modules: :mod:`~crawler.registry.checks` (field checks: URLs, hosts, safe regexes),
:mod:`~crawler.registry.models` (the records), :mod:`~crawler.registry.loading` (YAML with
limits, messages). URL helpers live in :mod:`crawler.urls`.
"""
from crawler.registry.loading import default_registry_path, load_registry, registry_from_dict
from crawler.registry.models import (
    DATASET_FORMATS,
    REGISTRY_VERSION,
    Dataset,
    Defaults,
    Form,
    Limits,
    Metropole,
    Registry,
)

__all__ = [
    "DATASET_FORMATS", "REGISTRY_VERSION", "Dataset", "Defaults", "Form", "Limits", "Metropole", "Registry",
    "default_registry_path", "load_registry", "registry_from_dict",
]
