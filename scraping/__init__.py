"""The Getchu scraper, laid out as a Scrapy project: spiders/ (crawl logic), parsing.py (decoding and
selectors, one place per page layout), items.py, pipelines.py (image checks and storage), settings.py
(built from params.yaml). The stage that runs it is flows/scrape.py.
"""

from __future__ import annotations


def _offline_public_suffixes() -> None:
    """Scrapy's cookie middleware asks tldextract for public suffixes, and tldextract downloads the list
    from publicsuffix.org on first use: a request to a host the crawl never named (and a stall where
    there is no network). Its bundled snapshot is enough to tell a public suffix from a site."""
    try:
        from scrapy.downloadermiddlewares import cookies
        from tldextract import TLDExtract
    except ImportError:  # pragma: no cover - scrapy is a dependency
        return
    cookies._split_domain = TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)


_offline_public_suffixes()
