"""Text helpers shared by the listing and product-page parsers: whitespace, dates, class tokens in XPath."""

from __future__ import annotations

import datetime as _dt
import re

__all__ = ["SPACES", "clean", "has_class", "iso_date"]

#: ASCII whitespace plus the full-width space and NBSP that Getchu pads titles and labels with.
SPACES = " \t\r\n\f\v\u3000\xa0"
_DATE_RE = re.compile(r"(\d{4})\s*[/年.\-]\s*(\d{1,2})\s*[/月.\-]\s*(\d{1,2})")


def clean(text: str | None) -> str:
    """Collapse whitespace runs that contain a line break into one space and strip ASCII/full-width padding."""
    if not text:
        return ""
    return re.sub(r"[ \t\u3000\xa0]*[\r\n]+[ \t\r\n\u3000\xa0]*", " ", text).strip(SPACES)


def iso_date(text: str | None) -> str | None:
    """ISO date from ``YYYY/MM/DD`` or ``YYYY年M月D日`` text; None for partial dates like 「2016年2月下旬予定」."""
    if not text:
        return None
    m = _DATE_RE.search(text)
    if not m:
        return None
    try:
        return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        return None


def has_class(name: str) -> str:
    """XPath predicate for a class token (CSS ``.name`` semantics), usable inside the selectors of a layout."""
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"
