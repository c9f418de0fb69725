"""Spiders: crawl logic only (what to request, what to yield); parsing lives in scraping/parsing/."""
