"""The threaded HTTP server behind MockGetchu, an offline stand-in for www.getchu.com.

Why: the spider's tests need every behaviour of the real site that can break a crawl (age gate, cookie, hotlink
protection, transient 5xx, 301 to /item/, robots, slow pages, broken images, pages that never answer or never
work) on 127.0.0.1, deterministic and fast, with a request log to assert politeness and dedupe on.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import ipaddress
import json
import math
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from . import images as img
from . import pages as pg

DEFAULT_ROBOTS = "User-agent: *\nDisallow: /php/nsearch.phtml\n"
HTML = "text/html; charset=EUC-JP"
_ITEM = re.compile(r"^/item/(\d+)/?$")
_ID = re.compile(r"^\s*(\d+)\s*$")
_SCALE_IMAGE = re.compile(r"^/brandnew/(\d+)/(c\1chara[123]|rc\1package|c\1package_ss|c\1package)\.jpg$")

#: What a `broken_pages` / `broken_months` entry may make a page do, besides answering an HTTP status, and the
#: failure reason the crawl must record for it (an HTTP status N is recorded as ``http_N``).
BREAKAGES = {
    "hang_up": "connection",  # the connection is closed after the request is read, with no answer
    "silent": "timeout",  # no answer at all until the client gives up (or the site stops)
    "garbled": "undecodable",  # 200 with bytes that no Japanese encoding (nor UTF-8) decodes
}
SILENT_SECONDS = 60.0  # how long a "silent" page keeps quiet at most; stop() ends the wait at once
GARBLED = b"<html><head><title>\x81\x20</title></head><body>" + b"\x81\x20\xff" * 64 + b"</body></html>"


def breakage_reason(kind: int | str) -> str:
    """The failure reason the crawl records for a page broken this way (`broken_pages`, `broken_months`)."""
    if isinstance(kind, int):
        return f"http_{kind}"
    return BREAKAGES[kind]


@functools.cache
def tls_context(host: str) -> ssl.SSLContext:
    """A server TLS context with a throwaway self-signed certificate for `host`, made once per process.

    Why: Getchu is served over https now, and what breaks there (http:// links on https pages) can only be tested
    end to end over TLS. Scrapy does not verify certificates by default, so a self-signed one is enough; it is
    generated here (with `cryptography`, which Scrapy depends on) rather than shipped, so no key sits in the repo.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="mock-getchu-tls-"))
    try:
        (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / "key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return context


@dataclass
class Reply:
    """One response: status, body, headers and an optional delay before it is sent."""

    status: int
    body: bytes = b""
    content_type: str = HTML
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    hang_up: bool = False  # close the connection after `delay` without sending anything


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that can drop its open keep-alive connections on shutdown and stays quiet."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], site: MockGetchu, tls: ssl.SSLContext | None = None) -> None:
        self.site = site
        self.tls = tls
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept; over TLS the handshake is left to the handler's thread, so a slow client never blocks accept()."""
        sock, address = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close idle keep-alive sockets so a later server on the same port never meets this one's clients."""
        with self._conns_lock:
            conns = list(self._conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, cancelled downloads) are normal here; nothing to print."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache"
    sys_version = ""
    timeout = 15
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log is in memory (site.requests), not on stdout/stderr."""

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_POST(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        site = self.server.site
        arrival = time.monotonic()
        try:
            reply = site._route(self.command, self.path, self.headers)
        except Exception as exc:  # a bug in the mock must show up as a 500, not a hung client
            site._errors.append(f"{self.command} {self.path}: {exc!r}")
            reply = Reply(500, pg.encode(pg.message_page("500", "mock error")))
        if reply.delay or site.latency:
            site._stopping.wait(reply.delay + site.latency)  # a sleep that stop() cuts short
        # Logged before sending, so a client that has its response always finds it in site.requests.
        site._log(
            {
                "method": self.command,
                "path": self.path,
                "referer": self.headers.get("Referer"),
                "cookie": "; ".join(self.headers.get_all("Cookie") or []) or None,
                "user_agent": self.headers.get("User-Agent"),
                "status": None if reply.hang_up else reply.status,
                "time": arrival,
            }
        )
        if reply.hang_up:  # no status line at all: the client sees the connection close (or time out first)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class MockGetchu:
    """An offline Getchu on 127.0.0.1, as a context manager.

    Knobs: port (0 = ephemeral), gate, hotlink, robots (None = 404), throttle_ms, flaky {id: N 500s},
    item_redirect {ids}, yes_text, scale (None = scenario site, N = N synthetic games in 2017), plus slow {id: s},
    unavailable {id: N 503s} and gate_adult_months. Dict/set knobs left as None take the scenario defaults;
    pass {} or set() to switch them off. Also:
    - tls: serve https (a self-signed certificate); pages then write their `abs` portraits as ``http://127.0.0.1/``,
      as the real https site writes ``http://www.getchu.com/brandnew/...``;
    - honour_cookie / honour_gc: whether the gate lets the cookie / ``gc=gc`` through (False models a gate that
      stopped accepting it); `expected` still describes the pages behind the gate;
    - offsite_portrait: 900111 gets a portrait written on the real host (pages.OFFSITE_CHARA), another site;
    - broken_pages {id: how} / broken_months {"YYYY-MM": how}: that game page (soft.phtml and /item/, before the
      gate and any redirect) or month listing fails on every request, `how` being an HTTP status (403, 503, ...)
      or one of BREAKAGES: "hang_up", "silent" (longer than any client timeout), "garbled". `expected` still
      describes the pages as if they worked, and names the breakage in failed_pages / failed_listings with the
      reason the crawl must record (`breakage_reason`).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        gate: bool = True,
        hotlink: bool = True,
        robots: str | None = DEFAULT_ROBOTS,
        throttle_ms: int = 0,
        flaky: Mapping[int, int] | None = None,
        item_redirect: Iterable[int] | None = None,
        yes_text: str = "【すすむ】",
        scale: int | None = None,
        slow: Mapping[int, float] | None = None,
        unavailable: Mapping[int, int] | None = None,
        gate_adult_months: bool = False,
        host: str = "127.0.0.1",
        latency: float = 0.0,
        tls: bool = False,
        honour_cookie: bool = True,
        honour_gc: bool = True,
        offsite_portrait: bool = False,
        broken_pages: Mapping[int, int | str] | None = None,
        broken_months: Mapping[str, int | str] | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.honour_cookie = honour_cookie
        self.honour_gc = honour_gc
        self.products = pg.with_offsite_portrait(pg.PRODUCTS) if offsite_portrait else dict(pg.PRODUCTS)
        self.latency = latency  # seconds added to every response: a real site's round trip and server time
        self.gate = gate
        self.hotlink = hotlink
        self.robots = robots
        self.throttle_ms = throttle_ms
        self.flaky = dict({900109: 1} if flaky is None else flaky)
        self.item_redirect = frozenset({900110} if item_redirect is None else item_redirect)
        self.yes_text = yes_text
        self.scale = scale
        self.slow = dict({900111: 0.3} if slow is None else slow)
        self.unavailable = dict({900113: 1} if unavailable is None else unavailable)
        self.gate_adult_months = gate_adult_months
        self.broken_pages = dict(broken_pages or {})
        self.broken_months = dict(broken_months or {})
        for kind in (*self.broken_pages.values(), *self.broken_months.values()):
            if not isinstance(kind, int) and kind not in BREAKAGES:
                raise ValueError(f"a broken page answers an HTTP status or one of {sorted(BREAKAGES)}, not {kind!r}")
        self._stopping = threading.Event()
        self._want_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._hits: dict[str, int] = {}
        self._last_html: float | None = None
        self._scale_cache: dict[str, bytes] = {}
        self._errors: list[str] = []
        self._expected: dict[str, Any] | None = None
        self._images = img.scenario_images() if scale is None else {}

    # --- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> MockGetchu:
        """Bind and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self._want_port), self, tls_context(self.host) if self.tls else None)
        serve = self._server.serve_forever
        self._thread = threading.Thread(target=serve, args=(0.02,), name="mock-getchu", daemon=True)
        self._thread.start()
        self._expected = self._build_expected()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and any open keep-alive connections."""
        if self._server is None:
            return
        self._stopping.set()  # wake the handlers that wait (slow and silent pages)
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> MockGetchu:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- public state -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("MockGetchu is not started")
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT (https with tls), written where the real site writes http://www.getchu.com."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """An absolute URL on this site."""
        return self.base + path

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the request log, in completion order; `time` is time.monotonic() at arrival."""
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def errors(self) -> list[str]:
        """Exceptions raised inside the mock (should stay empty)."""
        return list(self._errors)

    @property
    def expected(self) -> dict[str, Any]:
        """The expected-results manifest; JSON-shaped (string keys), equal to write_expected's file."""
        if self._expected is None:
            raise RuntimeError("MockGetchu is not started")
        return self._expected

    def write_expected(self, path: str | Path) -> Path:
        """Write `expected` as UTF-8 JSON (sorted keys) and return the path."""
        out = Path(path)
        out.write_text(json.dumps(self.expected, ensure_ascii=False, indent=2, sort_keys=True) + "\n", "utf-8")
        return out

    def reset_log(self) -> None:
        """Forget the logged requests (the once-only failures keep their state)."""
        with self._lock:
            self._requests.clear()

    def reset_counters(self) -> None:
        """Re-arm the once-only failures (flaky, unavailable, the 500-once image) and the throttle clock."""
        with self._lock:
            self._hits.clear()
            self._last_html = None

    def _log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def _hit(self, key: str) -> int:
        """Count one hit of `key` and return how many came before it."""
        with self._lock:
            n = self._hits.get(key, 0)
            self._hits[key] = n + 1
            return n

    # --- routing ----------------------------------------------------------------------------------------------

    def _route(self, method: str, raw: str, headers: Any) -> Reply:
        parts = urlsplit(raw)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        if method not in ("GET", "HEAD"):
            return self._html(405, pg.message_page("405", "Method Not Allowed"))
        if path == "/robots.txt":
            if self.robots is None:
                return self._html(404, pg.not_found_page())
            return Reply(200, self.robots.encode("ascii"), "text/plain")
        if path.startswith("/brandnew/"):
            return self._image(path, headers.get("Referer") or "")
        if path.startswith("/common/images/"):
            return Reply(200, img.gif(), "image/gif")
        if self.throttle_ms > 0 and self._throttled():
            reply = self._html(503, pg.message_page("503", "Service Temporarily Unavailable"))
            reply.headers.append(("Retry-After", "1"))
            return reply
        if path in ("/", "/top.html", "/pc/"):
            reply = self._html(200, pg.top_page(self.base))
            if "gc" in query.get("gc", []):
                reply.headers.append(("Set-Cookie", f"{pg.GATE_COOKIE}={pg.GATE_COOKIE_VALUE}; path=/"))
            return reply
        if path == "/php/nsearch.phtml":
            return self._html(403, pg.message_page("403 Forbidden", "Forbidden"))
        if path == "/php/attestation.html":
            aurl = (query.get("aurl") or [self.base + "/top.html"])[0]
            return self._html(200, pg.gate_page(aurl, self.yes_text))
        if path == "/all/month_title.html":
            broken = self._broken(self.broken_months.get(self._month_key(query)))
            if broken is not None:
                return broken
            gated = self.gate_adult_months and (query.get("gage") or [""])[0] == "adult"
            return self._gated(raw, query, headers, lambda: self._month(query)) if gated else self._month(query)
        if path == "/all/price.html":
            return self._price(query)
        if path == "/all/brand.html":
            return self._html(200, pg.brand_page(self.base), crlf=True)
        if path == "/php/search.phtml":
            return self._gated(raw, query, headers, lambda: self._search(query))
        if path == "/soft.phtml":
            m = _ID.match((query.get("id") or [""])[0])
            if not m:
                return self._html(404, pg.not_found_page())
            pid = int(m.group(1))
            broken = self._broken(self.broken_pages.get(pid))
            if broken is not None:
                return broken
            if pid in self.item_redirect:
                body = pg.encode(pg.message_page("301 Moved Permanently", "Moved"))
                return Reply(301, body, HTML, [("Location", f"/item/{pid}/")])
            return self._gated(raw, query, headers, lambda: self._product(pid, at_item=False))
        m = _ITEM.match(path)
        if m:
            pid = int(m.group(1))
            broken = self._broken(self.broken_pages.get(pid))
            if broken is not None:
                return broken
            return self._gated(raw, query, headers, lambda: self._product(pid, at_item=True))
        return self._html(404, pg.not_found_page())

    @staticmethod
    def _month_key(query: dict[str, list[str]]) -> str:
        """The month a listing's query names, as `broken_months` keys it ("YYYY-MM"); "" when it names none."""
        year, month = (_ID.match((query.get(name) or [""])[0]) for name in ("year", "month"))
        return f"{int(year.group(1))}-{int(month.group(1)):02d}" if year and month else ""

    def _broken(self, kind: int | str | None) -> Reply | None:
        """The reply of a broken page (`broken_pages`, `broken_months`), or None for a page that works."""
        if kind is None:
            return None
        if kind == "hang_up":
            return Reply(0, hang_up=True)
        if kind == "silent":
            return Reply(0, hang_up=True, delay=SILENT_SECONDS)
        if kind == "garbled":
            return Reply(200, GARBLED)
        assert isinstance(kind, int)
        reply = self._html(kind, pg.message_page(str(kind), "Error"))
        if kind == 503:
            reply.headers.append(("Retry-After", "1"))
        return reply

    def _html(self, status: int, text: str, crlf: bool = False, charset: bool = True) -> Reply:
        return Reply(status, pg.encode(text, crlf), HTML if charset else "text/html")

    def _throttled(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._last_html is not None and now - self._last_html < self.throttle_ms / 1000:
                return True
            self._last_html = now
            return False

    def _gated(self, raw: str, query: dict[str, list[str]], headers: Any, serve: Any) -> Reply:
        """Spec 7.4: 302 to the gate unless gc=gc or the exact cookie; gc=gc also sets the cookie."""
        via_gc = self.honour_gc and "gc" in query.get("gc", [])
        if self.gate and not via_gc and not (self.honour_cookie and self._has_cookie(headers)):
            location = "/php/attestation.html?aurl=" + quote(self.base + raw, safe="")
            body = pg.encode(pg.message_page("302 Found", "Found"))
            return Reply(302, body, HTML, [("Location", location)])
        reply: Reply = serve()
        if via_gc:
            reply.headers.append(("Set-Cookie", f"{pg.GATE_COOKIE}={pg.GATE_COOKIE_VALUE}; path=/"))
        return reply

    @staticmethod
    def _has_cookie(headers: Any) -> bool:
        for header in headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                if name == pg.GATE_COOKIE and value.strip('"') == pg.GATE_COOKIE_VALUE:
                    return True
        return False

    # --- pages ------------------------------------------------------------------------------------------------

    def _product(self, pid: int, at_item: bool) -> Reply:
        if self.scale is not None:
            month = self._scale_month(pid)
            if month is None:
                return self._html(404, pg.not_found_page())
            p = pg.scale_product(pid, month)
        else:
            found = self.products.get(pid)
            if found is None:
                return self._html(404, pg.not_found_page())
            p = found
        if self._hit(f"flaky:{pid}") < self.flaky.get(pid, 0):
            return self._html(500, pg.message_page("500 Internal Server Error", "Internal Server Error"))
        if self._hit(f"unavailable:{pid}") < self.unavailable.get(pid, 0):
            reply = self._html(503, pg.message_page("503", "Service Temporarily Unavailable"))
            reply.headers.append(("Retry-After", "1"))
            return reply
        if p.layout == "missing":
            return self._html(404, pg.not_found_page())
        if p.layout == "shell":
            return self._html(200, pg.shell_page(self.base))
        reply = self._html(200, pg.product_page(p, self.base, at_item_path=at_item), charset=p.charset_header)
        reply.delay = self.slow.get(pid, 0.0)
        return reply

    def _month(self, query: dict[str, list[str]]) -> Reply:
        def num(name: str) -> int | None:
            m = _ID.match((query.get(name) or [""])[0])
            return int(m.group(1)) if m else None

        year, month = num("year"), num("month")
        genre = (query.get("genre") or ["pc_soft"])[0]
        gage = (query.get("gage") or [""])[0]
        if year is None or month is None or not 1 <= month <= 12:
            year, month = 2016, 1
            days_data: list[tuple[pg.DayBlock, list[pg.ListEntry]]] = []
        else:
            days_data = self._month_days(year, month) if genre == "pc_soft" else []
        text = pg.month_page(self.base, year, month, days_data, genre=genre, gage=gage)
        return self._html(200, text, crlf=True)

    def _month_days(self, year: int, month: int) -> list[tuple[pg.DayBlock, list[pg.ListEntry]]]:
        if self.scale is not None:
            ids = self._scale_ids(year, month)
            if not ids:
                return []
            block = pg.DayBlock(f"{year}年{month}月15日発売タイトル", tuple(ids))
            month_p = [pg.scale_product(i, month) for i in ids]
            entries = [pg.ListEntry(p.id, p.title, pg.BRANDS[p.brand_id].name, p.price) for p in month_p]
            return [(block, entries)]
        return [(d, [pg.list_entry(i) for i in d.ids]) for d in pg.MONTH_LISTS.get((year, month), ())]

    def _price(self, query: dict[str, list[str]]) -> Reply:
        try:
            year, month = int(query["year"][0]), int(query["month"][0])
        except (KeyError, ValueError):
            year, month = 2016, 1
        rows = []
        for block, entries in self._month_days(year, month):
            day = re.search(r"(\d+)月(\d+)日", block.header)
            label = f"{int(day.group(1)):02d}/{int(day.group(2)):02d}" if day else ""
            rows += [(label, e) for e in entries]
        return self._html(200, pg.price_page(self.base, year, month, rows), crlf=True)

    def _search(self, query: dict[str, list[str]]) -> Reply:
        def num(name: str, default: int) -> int:
            m = _ID.match((query.get(name) or [""])[0])
            return int(m.group(1)) if m else default

        brand = num("search_brand_id", 0)
        per_page = max(1, num("list_count", 30))
        page = max(1, num("pageID", 1))
        ids = pg.BRAND_LISTS.get(brand, ()) if self.scale is None else ()
        chunk = ids[(page - 1) * per_page : page * per_page]
        next_href = None
        if chunk and len(chunk) == per_page:
            params = {k: v[0] for k, v in query.items()}
            params["pageID"] = str(page + 1)
            next_href = "./search.phtml?" + urlencode(params)
        entries = [pg.list_entry(i) for i in chunk]
        return self._html(200, pg.search_page(self.base, entries, next_href), crlf=True)

    # --- images -----------------------------------------------------------------------------------------------

    def _image(self, path: str, referer: str) -> Reply:
        if self.hotlink and not (referer == self.base or referer.startswith(self.base + "/")):
            return self._html(403, pg.message_page("403 Forbidden", "直リンクは禁止されています。"))
        if self.scale is not None:
            body = self._scale_image(path)
            if body is None:
                return self._html(404, pg.not_found_page())
            return Reply(200, body, "image/jpeg")
        entry = self._images.get(path)
        if entry is None:
            return self._html(404, pg.not_found_page())
        if entry.fail_once and self._hit(f"image:{path}") == 0:
            return self._html(500, pg.message_page("500 Internal Server Error", "Internal Server Error"))
        return Reply(200, entry.body, entry.content_type)

    # --- scale mode -------------------------------------------------------------------------------------------

    def _per_month(self) -> int:
        return math.ceil((self.scale or 0) / 12) or 1

    def _scale_ids(self, year: int, month: int) -> list[int]:
        if year != pg.SCALE_YEAR or self.scale is None:
            return []
        per = self._per_month()
        first = (month - 1) * per
        return [pg.SCALE_FIRST_ID + i for i in range(first, min(first + per, self.scale))]

    def _scale_month(self, pid: int) -> int | None:
        i = pid - pg.SCALE_FIRST_ID
        if self.scale is None or not 0 <= i < self.scale:
            return None
        return i // self._per_month() + 1

    def _scale_image(self, path: str) -> bytes | None:
        m = _SCALE_IMAGE.match(path)
        if not m or self._scale_month(int(m.group(1))) is None:
            return None
        with self._lock:
            body = self._scale_cache.get(path)
        if body is None:
            body = img.tiny(path)
            with self._lock:
                body = self._scale_cache.setdefault(path, body)
        return body

    # --- expected results -------------------------------------------------------------------------------------

    def _must_not_request(self) -> list[str]:
        never = [*pg.SIDEBAR_CDS, pg.COMMENTED_OUT]
        paths = [f"/soft.phtml?id={i}" for i in never] + [f"/item/{i}/" for i in never]
        paths += [
            "/php/nsearch.phtml",
            "/brandnew/900103/c900103chara3.jpg",
            "/brandnew/900103/c900103chara6.jpg",
        ]
        hosts = [
            "http://www.getchu.com/",
            "https://www.getchu.com/",
            "https://order.zams.biz/",
            "http://www.google.co.jp/",
        ]
        hosts += [b.site for b in pg.BRANDS.values() if b.site]
        return paths + hosts

    def _build_expected(self) -> dict[str, Any]:
        base = self.base
        common = {
            "base": base,
            "limits": dict(img.LIMITS),
            "must_not_request": self._must_not_request(),
            "must_not_request_ids": [*pg.SIDEBAR_CDS, pg.COMMENTED_OUT],
        }
        if self.scale is not None:
            n = self.scale
            counts = {f"{pg.SCALE_YEAR}-{m:02d}": len(self._scale_ids(pg.SCALE_YEAR, m)) for m in range(1, 13)}
            totals = {k: 3 * n for k in ("characters", "portraits", "portraits_ok", "unique_urls", "unique_sha256")}
            return {
                **common,
                "mode": "scale",
                "scale": n,
                "id_range": [pg.SCALE_FIRST_ID, pg.SCALE_FIRST_ID + n - 1],
                "month_counts": counts,
                "totals": {"products": n, **totals, "imageless_characters": 0},
            }

        months: dict[str, list[int]] = {}
        for (y, m), days in sorted(pg.MONTH_LISTS.items()):
            ids: list[int] = []
            for d in days:
                ids += [i for i in d.ids if i not in ids]
            months[f"{y}-{m:02d}"] = ids
        listed = sorted({i for ids in months.values() for i in ids})
        failed = {base + path: reason for path, reason in img.FAILED_108.items()}
        products: dict[str, Any] = {}
        missing, no_chars = [], []
        shas: set[str] = set()
        n_chars = n_portraits = n_ok = n_imageless = 0
        nonstandard = []
        for pid in listed:
            p = self.products[pid]
            if p.layout in ("missing", "shell"):
                missing.append(pid)
                continue
            if not p.charas:
                no_chars.append(pid)
            characters = []
            for c in p.charas:
                file = c.bust_file(pid)
                url = f"{pg.REAL_HOST if c.src == 'real' else base}/brandnew/{pid}/{file}" if file else None
                if url and c.src == "real":
                    failed[url] = "offsite"  # another site: reported by the crawl, never fetched
                sha = None
                if url and url not in failed:
                    sha = hashlib.sha256(self._images[f"/brandnew/{pid}/{file}"].body).hexdigest()
                    shas.add(sha)
                    n_ok += 1
                standard = file == f"c{pid}chara{c.k}.jpg" if file else None
                if url and not standard:
                    nonstandard.append(url)
                n_chars += 1
                n_portraits += url is not None
                n_imageless += url is None
                characters.append(
                    {
                        "k": c.k,
                        "name": c.name,
                        "yomi": c.yomi,
                        "cv": c.cv,
                        "image_url": url,
                        "sha256": sha,
                        "fullbody_url": f"{base}/brandnew/{pid}/c{pid}charab{c.k}.jpg" if c.fullbody else None,
                        "standard_name": standard,
                    }
                )
            products[str(pid)] = {
                "id": pid,
                "url": f"{base}/soft.phtml?id={pid}",
                "title": p.title,
                "brand": pg.BRANDS[p.brand_id].name,
                "release_date": p.release_date,
                "release_text": p.date or p.date_text,
                "months": [k for k, ids in months.items() if pid in ids],
                "characters": characters,
            }
        transient = {f"{base}/soft.phtml?id={i}": f"http_500 x{n}" for i, n in self.flaky.items() if n}
        transient |= {f"{base}/soft.phtml?id={i}": f"http_503 x{n}" for i, n in self.unavailable.items() if n}
        transient[base + img.FAIL_ONCE_108] = "http_500 x1"
        failed_pages = {str(pid): breakage_reason(kind) for pid, kind in sorted(self.broken_pages.items())}
        failed_listings = {month: breakage_reason(kind) for month, kind in sorted(self.broken_months.items())}
        return {
            **common,
            "mode": "scenario",
            "months": months,
            "products": products,
            "missing_ids": missing,
            "no_character_ids": no_chars,
            "failed_images": failed,
            "failed_pages": failed_pages,  # game id -> the reason its page fails (broken_pages)
            "failed_listings": failed_listings,  # "YYYY-MM" -> the reason its listing fails (broken_months)
            "transient": transient,
            "slow": {f"{base}/soft.phtml?id={i}": s for i, s in self.slow.items() if s},
            "redirects": {f"{base}/soft.phtml?id={i}": f"{base}/item/{i}/" for i in sorted(self.item_redirect)},
            "nonstandard_images": nonstandard,
            "brands": {str(b): list(ids) for b, ids in pg.BRAND_LISTS.items()},
            "totals": {
                "products": len(products),
                "characters": n_chars,
                "portraits": n_portraits,
                "portraits_ok": n_ok,
                "unique_urls": n_portraits,
                "unique_sha256": len(shas),
                "imageless_characters": n_imageless,
            },
        }
