"""The Getchu scraper, laid out as a Scrapy project: spiders/ (crawl logic), parsing/ (decoding and selectors,
one place per page layout), items.py, pipelines.py (image checks and storage), settings.py (built from
params.yaml), and tables.py (the stage's tables from the logged items). The stage that runs it is
flows/scrape.py. Importing any of it changes nothing: what the crawl needs of Scrapy is set up where the
crawler is built (`settings.use_bundled_public_suffixes`).
"""
