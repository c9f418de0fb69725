r"""Member names as the manifest records them: printable text that gives the name's bytes back.

File systems and archives name files with bytes. Most names are UTF-8, but folders copied from
Windows and old zips and tars hold Latin-1, cp1252 or DOS code page names (b"caf\xe9.jpg"), which
Python hands over as surrogate escapes ("caf\udce9.jpg") that Parquet refuses. The rule, the same for
a folder, a tar and a zip:

- the name's bytes are read as UTF-8 (a zip member without the UTF-8 flag included: zipfile would
  read it as cp437, so the same name would differ between a zip and a folder);
- each byte that is not part of valid UTF-8, each control character (U+0000-U+001F, U+007F-U+009F)
  and the backslash are written as `\xNN`, two lowercase hex digits per byte of their UTF-8 form;
- every other character is kept.

So b"caf\xe9.jpg" is recorded as the ten characters `caf\xe9.jpg`, "café.jpg" stays "café.jpg", and a
literal backslash becomes `\x5c`. Every backslash in a recorded name starts an escape, so the rule is
reversible: `member_bytes` gives back the original bytes. A `#<n>` or `#after` suffix that ingest adds
(a repeated archive member name, where a tar broke) is not part of the name.
"""

from __future__ import annotations

import re

# Control characters, the backslash, and the surrogates that surrogateescape makes of non-UTF-8 bytes.
_SPECIAL = re.compile("[\x00-\x1f\x7f-\x9f\\\\\udc80-\udcff]")
_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")
_SURROGATES = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    data = bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF else char.encode("utf-8")
    return "".join(f"\\x{byte:02x}" for byte in data)


def member_name(raw: bytes) -> str:
    """The recorded name of a file or member called `raw` (see the module docstring)."""
    return _SPECIAL.sub(_escape, raw.decode("utf-8", "surrogateescape"))


def member_bytes(name: str) -> bytes:
    """The original bytes of a name that `member_name` recorded: its inverse."""
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(name):
        out += name[position : match.start()].encode("utf-8")
        out.append(int(match.group(1), 16))
        position = match.end()
    out += name[position:].encode("utf-8")
    return bytes(out)


def storable_text(text: str) -> str:
    """Free text (a reject's detail, an error message quoting a path) with any surrogate written `\\xNN`
    or `\\uXXXX`, so Parquet can store it; other characters are kept. Not reversible: names use
    `member_name`."""
    if not _SURROGATES.search(text):
        return text

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _SURROGATES.sub(escape, text)
