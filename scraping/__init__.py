"""The Getchu scraper (Scrapy project): spiders, items, pipelines, settings. Built in issue 3."""
