"""Getchu URLs: product ids, what counts as the page's own site, and the age gate.

A product is named by its numeric id, whether a link says ``soft.phtml?id=N`` or ``/item/N/``, so every game is
canonicalised by that id. The site is the page's host, whether a link says http or https: Getchu's https pages still
write ``http://www.getchu.com/...`` (see `on_site`). The age gate is ``/php/attestation.html?aurl=<target>``, and
``gc=gc`` in a page's query gets past it.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, unquote, urljoin, urlsplit, urlunsplit

__all__ = [
    "canonical_game_url",
    "game_id_from_url",
    "gate_target",
    "is_age_gate",
    "is_gate_url",
    "on_site",
    "with_age_flag",
]

_ITEM_PATH_RE = re.compile(r"/item/(\d+)/?$")
_GATE_PATH = "/php/attestation.html"
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def game_id_from_url(url: str) -> int | None:
    """The numeric product id of ``soft.phtml?id=N`` or ``/item/N/``, else None.

    Title links on month pages carry a trailing space inside the href (``/soft.phtml?id=840803 ``); it is tolerated,
    both at the end of the URL and inside the id value.
    """
    parts = urlsplit(url.strip())
    path = parts.path
    if path.rsplit("/", 1)[-1] == "soft.phtml":
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "id":
                value = value.strip()
                return int(value) if value.isascii() and value.isdigit() else None
        return None
    m = _ITEM_PATH_RE.search(path)
    return int(m.group(1)) if m else None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _port(parts: SplitResult) -> int | None:
    """The port a URL reaches: the written one, else its scheme's default (None for a malformed port)."""
    try:
        port = parts.port
    except ValueError:
        return None
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


def on_site(url: str, page_url: str) -> str | None:
    """`url` as the page's own site serves it (the page's scheme and host:port), or None when it is another site.

    The same scheme, host and port is the site. So is the same host under the other of http and https at that
    scheme's default port: Getchu's https pages still write ``http://www.getchu.com/brandnew/...``, and comparing
    ports (80 against 443) judged every such portrait off-site. Those are fetched over the page's scheme, as the page
    was, and any on-site URL is written with the page's netloc so that one image has one URL whichever form a page
    used. Another host, another port of the same scheme, or a scheme other than http(s) is another site.
    """
    parts, page = urlsplit(url.strip()), urlsplit(page_url.strip())
    if parts.scheme not in _DEFAULT_PORTS or page.scheme not in _DEFAULT_PORTS:
        return None
    if not parts.hostname or parts.hostname != page.hostname:
        return None
    port, page_port = _port(parts), _port(page)
    if port is None or page_port is None:
        return None
    if parts.scheme == page.scheme:
        if port != page_port:
            return None
    elif port != _DEFAULT_PORTS[parts.scheme]:
        return None
    netloc = page.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(scheme=page.scheme, netloc=netloc))


def is_gate_url(url: str) -> bool:
    """True for a URL of the age-gate page itself (``/php/attestation.html``), e.g. where a redirect points."""
    return urlsplit(url.strip()).path.endswith(_GATE_PATH)


def is_age_gate(html: str, url: str) -> bool:
    """True for the age-verification page: its path (after redirects) or a <title> containing 年齢認証."""
    if is_gate_url(url):
        return True
    m = _TITLE_RE.search(html)
    return bool(m and "年齢認証" in m.group(1))


def gate_target(url: str) -> str | None:
    """The page the gate stands in front of: the ``aurl`` query value of a gate URL, unquoted and absolute.

    The server percent-encodes aurl (``aurl=http%3A%2F%2F...``), which parse_qsl undoes. Older gates pasted the URL
    raw, so its own ``&`` parameters fall into the gate's query: then everything after ``aurl=`` is the target.
    A relative aurl is joined against the gate URL, and an aurl on the gate's own site under the other of http and
    https is put on the gate's scheme (`on_site`). None when `url` is not a gate URL or has no aurl.
    """
    parts = urlsplit(url.strip())
    if not is_gate_url(url):
        return None
    raw = re.search(r"(?:^|&)aurl=(.*)$", parts.query)
    if not raw:
        return None
    value = raw.group(1)
    # Pasted raw, the value may contain '&' and EUC-JP %xx escapes that must stay as they are.
    raw_form = re.match(r"(?i)(https?://|/)", value)
    target = (value if raw_form else unquote(value.split("&", 1)[0])).strip()
    if not target:
        return None
    absolute = urljoin(url.strip(), target)
    return on_site(absolute, url) or absolute


def with_age_flag(url: str) -> str:
    """`url` with ``gc=gc`` in its query (other parameters kept verbatim, in order; idempotent).

    ``gc=gc`` is the query form of the age acknowledgement: the gate's 【すすむ】 link is the page's own URL plus
    ``gc=gc``. Parameters are not re-encoded, so EUC-JP percent-escapes in search keywords survive.
    """
    parts = urlsplit(url.strip())
    pairs = [p for p in parts.query.split("&") if p]
    if "gc=gc" in pairs:
        return urlunsplit(parts)
    pairs = [p for p in pairs if p.split("=", 1)[0] != "gc"]
    pairs.append("gc=gc")
    return urlunsplit(parts._replace(query="&".join(pairs)))


def canonical_game_url(listing_url: str, game_id: int) -> str:
    """The one URL of product `game_id` on the listing's site: ``<scheme>://<host[:port]>/soft.phtml?id=<id>``."""
    parts = urlsplit(listing_url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{netloc}/soft.phtml?id={game_id}"
