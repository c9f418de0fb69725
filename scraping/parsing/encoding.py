"""Decoding Getchu pages: the charset a page declares, and a strict decode that never garbles the text.

Getchu serves EUC-JP (its pages say ``charset=EUC-JP`` in the header and in ``<meta>``) with NEC row-13 characters
(①, ㌢) and JIS X 0213 characters, common in titles and in character heights. Python's ``euc_jp`` rejects them and
``errors="replace"`` (what ``response.text`` does) loses sync and garbles the rest of the run, so bodies are decoded
strictly with ``euc_jis_2004`` first.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable

__all__ = ["JAPANESE_ENCODINGS", "PageDecodeError", "decode_page", "page_charset"]

#: Strict decoding order for Getchu bodies. euc_jis_2004 is a superset of what the site emits (NEC row 13, JIS X 0213)
#: and gives the same text as euc_jp on pages euc_jp can read; cp932 is the last resort for a Shift-JIS page.
JAPANESE_ENCODINGS: tuple[str, ...] = ("euc_jis_2004", "euc_jp", "cp932")

# Codec names (after codecs.lookup) of the EUC / Shift-JIS family: a header naming one of them adds nothing to the chain
# above, and trying plain euc_jp/shift_jis first would fail on the NEC characters anyway.
_JAPANESE_FAMILY = frozenset(
    {
        "euc_jp",
        "euc_jis_2004",
        "euc_jisx0213",
        "shift_jis",
        "shift_jis_2004",
        "shift_jisx0213",
        "cp932",
        "iso2022_jp",
    }
)
# Single-byte charsets decode any byte string, so "trying them first" would always win and garble EUC-JP text.
# Servers send ISO-8859-1 as a default when misconfigured; such a declaration is tried only after the Japanese chain.
_CATCH_ALL = frozenset({"iso8859_1", "cp1252", "iso8859_15"})

_CHARSET_RE = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_META_RE = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)


class PageDecodeError(ValueError):
    """No encoding decoded the body strictly. Carries the encodings tried so the log says what was attempted."""

    def __init__(self, tried: Iterable[str]) -> None:
        self.tried = tuple(tried)
        super().__init__(f"page does not decode strictly with any of: {', '.join(self.tried)}")


def _codec_name(label: str | None) -> str | None:
    """Python's canonical codec name for a charset label, or None for an unknown label (never raises)."""
    if not label:
        return None
    try:
        return codecs.lookup(label.strip().strip("\"'")).name.replace("-", "_")
    except LookupError:
        return None


def page_charset(content_type: str | None, body: bytes) -> str | None:
    """The charset a page declares: the Content-Type header's first, else a ``<meta>`` in the first 2 KB.

    The fixture and some real responses send ``text/html`` with no charset and put it only in ``<meta>``
    (both ``http-equiv`` and HTML5 ``charset=`` forms). Returned lower-cased as written (e.g. ``"euc-jp"``).
    """
    if content_type:
        m = _CHARSET_RE.search(content_type.encode("latin-1", "ignore"))
        if m:
            return m.group(1).decode("ascii").lower()
    for meta in _META_RE.finditer(body[:2048]):
        m = _CHARSET_RE.search(meta.group(0))
        if m:
            return m.group(1).decode("ascii").lower()
    return None


def decode_page(body: bytes, declared: str | None = None) -> str:
    """Decode a Getchu body strictly: `declared` first unless it is EUC/Shift-JIS, then euc_jis_2004, euc_jp, cp932.

    Never ``errors="replace"``: a replaced byte makes the EUC decoder resynchronise on the wrong byte and garbles every
    following character, which would silently corrupt titles and character names. A declared
    single-byte charset (ISO-8859-1 and friends) decodes anything, so it is tried after the Japanese chain instead.
    Raises PageDecodeError naming every encoding tried.
    """
    order: list[str] = ["utf_8_sig"] if body.startswith(codecs.BOM_UTF8) else []
    late: list[str] = []
    name = _codec_name(declared)
    if name and name not in _JAPANESE_FAMILY:
        (late if name in _CATCH_ALL else order).append(name)
    order.extend(JAPANESE_ENCODINGS)
    order.extend(late)
    tried: list[str] = []
    for enc in order:
        if enc in tried:
            continue
        tried.append(enc)
        try:
            return body.decode(enc)
        except UnicodeDecodeError:
            continue
    raise PageDecodeError(tried)
