"""`twingan demo`: a local web page to translate the faces of one photo with the trained model.

The page (Gradio) takes a photo, the domain of its faces and the domain to translate them into, tags of
the model's vocabulary and optionally a reference picture of the target domain, and shows every
translated face and, if asked, the photo with the faces pasted back. The work is done by the same code
as `twingan translate` (inference/translate.py: the model file's detector and alignment, the training
loader's resize, inference/paste.py), on the decoded photo in memory rather than on files.

The model is loaded once, when the page is built; each (source, target) direction gets its Translator
(and so its face detector) the first time it is asked for, and keeps it. Requests never raise into
Gradio: a missing or unreadable upload, a photo without a face, an unknown tag or a reference that
needs missing weights each give one line in the status box, and unexpected errors are logged with their
trace on the server and summarised in one line on the page.

Uploads reach the handler unprocessed (`preprocess=False`): Gradio's own image preprocessing opens the
file with PIL before our code runs, so a corrupt upload would fail inside Gradio with a generic error
toast. The handler decodes the uploaded file itself with `preprocessing.images.load_rgb`, as every
stage does (EXIF rotation, CMYK, 16-bit, alpha), and names what is wrong. Gradio still moves the upload into
its cache and checks that the path is an upload of this server before the handler sees it. An upload has
the pixel bound of ingest (ingest.max_pixels), checked from the file's header before it is decoded: a PNG
of a few hundred KB can declare 12000x12000 pixels, 432 MB as RGB. Messages name an upload by its
original file name, never by its path in Gradio's cache.

Stopping: Ctrl+C (SIGINT) and, under `twingan demo`, SIGTERM (systemd, `docker stop`) close the server,
which makes Gradio delete every upload and result of the page from its cache, and the command exits 0. A
signal that arrives while Gradio starts is held until its launch returns, so the server it started is
closed too. `twingan demo` also keeps each request to stop in an Event that launch checks: Python drops a
KeyboardInterrupt raised while a __del__ or weakref callback runs, as importlib's do while torch imports.
An ignored SIGINT (a background job of a shell script) stays ignored: the start-up line then says to stop
the page with `kill`.

Nothing is fetched from the internet: the default theme's fonts and every script are served by the
local server (the browser test records every request the page makes and finds none to another host),
analytics are off (core/environment.py), `share` is off unless asked for, and server-side rendering (which
would need Node) is off.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.devices import resolve_device
from core.errors import UsageError, UserError
from inference.paste import paste_faces
from inference.translate import Translator, resize_portrait
from training.model_file import ModelInfo, load_model
from training.networks import TwinGAN

if TYPE_CHECKING:
    from preprocessing.images import TooManyPixels

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860
DISPLAY_SIZE = 256  # portraits are shown at this size (the demo model's are 32 px)
MAX_FILE_SIZE = "50mb"  # larger uploads are refused by the server before they reach the handler
CACHE_CLEANUP = (3600, 3600)  # every hour, delete uploads and results older than an hour


class DemoInputError(UserError, ValueError):
    """Something about a request the user can fix; the message is shown as the status line."""


@dataclass(frozen=True)
class DemoReply:
    """What one request shows: the gallery (image, caption) and the status line."""

    gallery: list[tuple[np.ndarray, str]]
    status: str


def tag_groups(vocabulary: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The vocabulary split into hair colours, eye colours and the rest, in conditioning order, empty groups
    left out. The shared vocabulary spells colours as "<colour> hair" / "<colour> eyes" (illust2vec's
    names), which is what the split goes by."""
    hair = [tag for tag in vocabulary if tag.endswith(" hair")]
    eyes = [tag for tag in vocabulary if tag.endswith(" eyes")]
    other = [tag for tag in vocabulary if tag not in hair and tag not in eyes]
    groups = [("Hair colour", hair), ("Eye colour", eyes), ("Other tags", other)]
    return [(name, tags) for name, tags in groups if tags]


def default_max_pixels() -> int:
    """Ingest's bound on pixels (ingest.max_pixels' default): the page accepts what the pipeline would store."""
    from core.params import IngestParams

    return IngestParams().max_pixels


def _upload_folder() -> str:
    """Where Gradio keeps uploads and results (gradio.utils.get_upload_folder, without importing Gradio)."""
    import tempfile

    return os.environ.get("GRADIO_TEMP_DIR") or str((Path(tempfile.gettempdir()) / "gradio").resolve())


def hide_upload_paths(text: str) -> str:
    """`text` with every path inside Gradio's upload cache cut to its file name: the page's messages must not
    show the server's folders."""
    folder = _upload_folder().rstrip(os.sep)
    return re.sub(re.escape(folder) + r"[^\s'\"]*", lambda found: Path(found.group()).name or "the upload", text)


def read_image(value: Any, what: str, max_pixels: int | None = None) -> np.ndarray | None:
    """An upload as HxWx3 uint8 RGB, or None when nothing was given.

    `value` is what the page sends (Gradio's file payload, a dict with the cached upload's "path" and the
    user's "orig_name"), a path, or an array (the handler called directly, as the tests and other Python
    callers do). Images over `max_pixels` (default: ingest's bound) are refused from their header, before
    decoding. Problems raise DemoInputError naming the upload by its original name ("the uploaded photo"
    without one), never by its path on the server.
    """
    from PIL import Image

    from preprocessing.images import TooManyPixels, check_pixels, load_rgb, to_rgb

    limit = default_max_pixels() if max_pixels is None else max_pixels
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8 or value.ndim not in (2, 3) or (value.ndim == 3 and value.shape[2] not in (3, 4)):
            raise DemoInputError(
                f"the {what} must be an 8-bit grey, RGB or RGBA image, got {value.dtype} {value.shape}"
            )
        try:
            check_pixels(value.shape[1], value.shape[0], limit)
        except TooManyPixels as error:
            raise DemoInputError(_too_many_pixels(f"the {what}", error)) from None
        return np.asarray(to_rgb(Image.fromarray(np.ascontiguousarray(value))))
    if isinstance(value, Mapping):  # an upload: its path is Gradio's cache, its name the user's file
        name = value.get("orig_name")
        value = value.get("path")
        if not value:
            return None
        label = f"{what} {name!r}" if name else f"uploaded {what}"
    else:
        name = Path(value).name
        label = f"{what} {name!r}"
    path = Path(value)
    try:
        rgb = np.asarray(load_rgb(path, limit))
    except TooManyPixels as error:
        raise DemoInputError(_too_many_pixels(f"the {label}", error)) from None
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, ...) and puts the path in some
        detail = hide_upload_paths(str(error).replace(os.fspath(path), name or "the upload"))
        raise DemoInputError(f"could not read the {label} as an image ({type(error).__name__}: {detail})") from None
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise DemoInputError(f"the {label} is empty")
    return rgb


def _too_many_pixels(subject: str, error: TooManyPixels) -> str:
    """The page's line for an image over the bound: what it has, what is accepted, what to do."""
    if error.size is None:  # PIL's own bomb check refused it first
        return f"{subject} has more pixels than PIL decodes safely ({error}): scale it down and upload it again"
    width, height = error.size
    return (f"{subject} has {width}x{height} = {width * height:,} pixels, more than the {error.max_pixels:,} this "
            f"page accepts (ingest.max_pixels): scale it down and upload it again")  # fmt: skip


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class DemoModel:
    """The loaded model, shared by every request of the page."""

    def __init__(
        self,
        model: TwinGAN,
        info: ModelInfo,
        *,
        path: Path | str = "the model file",
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        palette: Any = None,
        illust2vec: Path | str | None = None,
        display_size: int | None = DISPLAY_SIZE,
        max_pixels: int | None = None,
    ) -> None:
        self.model, self.info, self.path = model, info, Path(path)
        self.device = resolve_device(device)
        self.batch_size, self.palette, self.illust2vec = batch_size, palette, illust2vec
        self.display_size = display_size
        self.max_pixels = default_max_pixels() if max_pixels is None else max_pixels  # per photo and reference
        self._translators: dict[tuple[str, str], Translator] = {}
        self._lock = threading.Lock()  # one request at a time uses the model and the detectors

    @classmethod
    def from_file(cls, path: Path | str, **options: Any) -> DemoModel:
        """Load `path` (training/model_file.py) once; options as for the constructor."""
        model, info = load_model(path, "cpu")
        log.info("loaded %s: profile %s, domains %s, %d px, %d tags, step %d", path, info.profile,
                 ", ".join(info.config.domains), info.config.resolution, len(info.vocabulary), info.step)  # fmt: skip
        return cls(model, info, path=path, **options)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.info.config.domains)

    @property
    def sources(self) -> list[str]:
        """Domains a photo's faces can come from: those the model file says how to detect and align."""
        return [domain for domain in self.domains if self.info.faces.get(domain)]

    def targets(self, source: str) -> list[str]:
        return [domain for domain in self.domains if domain != source]

    def default_target(self, source: str) -> str | None:
        targets = self.targets(source)
        return "anime" if "anime" in targets else (targets[0] if targets else None)

    def translator(self, source: str, target: str) -> Translator:
        """The Translator of one direction, made on first use (its detector loads on its first photo)."""
        if source not in self.domains:
            raise DemoInputError(f"unknown source domain {source!r}; {self.path} knows: {', '.join(self.domains)}")
        if target not in self.targets(source):
            raise DemoInputError(
                f"pick a target domain other than {source!r}: one of {', '.join(self.targets(source))}"
            )
        if source not in self.sources:
            raise DemoInputError(f"{self.path} does not record how {source} faces are detected: pick another source")
        key = (source, target)
        if key not in self._translators:
            self._translators[key] = Translator(
                self.model, self.info, source=source, target=target, device=self.device,
                batch_size=self.batch_size, path=self.path,
            )  # fmt: skip
        return self._translators[key]

    def warm_up(self, source: str) -> None:
        """Build the source's detector now, so the first visitor does not wait for dlib's models."""
        target = self.default_target(source)
        if source in self.sources and target is not None:
            started = time.perf_counter()
            _ = self.translator(source, target).detector
            log.info("%s detector ready in %.1f s", source, time.perf_counter() - started)

    # ------------------------------------------------------------------------------------- requests

    def handle(
        self,
        photo: Any,
        source: str,
        target: str,
        tags: Sequence[str] = (),
        reference: Any = None,
        paste: bool = True,
    ) -> DemoReply:
        """One press of Translate. Never raises: every problem becomes the status line."""
        started = time.perf_counter()
        try:
            with self._lock:
                reply = self._translate(photo, source, target, list(tags or ()), reference, bool(paste))
        except DemoInputError as error:
            log.info("request refused: %s", error)
            message = hide_upload_paths(str(error))
            return DemoReply([], f"{message[:1].upper()}{message[1:]}")
        except Exception as error:  # the page must show a line, not hang; the trace goes to the server log
            log.exception("request failed")
            message = hide_upload_paths(f"{type(error).__name__}: {error}")
            return DemoReply([], f"Something went wrong on the server ({message}); see its log.")
        seconds = time.perf_counter() - started
        log.info("%s (%.2f s)", reply.status, seconds)
        return DemoReply(reply.gallery, f"{reply.status} ({seconds:.1f} s)")

    def _translate(
        self, photo: Any, source: str, target: str, tags: list[str], reference: Any, paste: bool
    ) -> DemoReply:
        from training.conditioning import UnknownTagError

        translator = self.translator(source, target)
        rgb = read_image(photo, "photo", self.max_pixels)
        if rgb is None:
            raise DemoInputError("upload a photo first, then press Translate")
        details = []
        features = None
        reference_rgb = read_image(reference, "reference picture", self.max_pixels)
        if reference_rgb is not None:
            try:
                found = translator.reference(reference_rgb, illust2vec=self.illust2vec, palette=self.palette)
            except FileNotFoundError as error:  # illust2vec weights missing: the message names the fetch command
                raise DemoInputError(str(error)) from None
            tags = list(dict.fromkeys([*found.tags, *tags]))
            features = found.features
            details.append(f"reference: {found.detail}")
        try:
            condition = translator.condition(tags, features)
        except UnknownTagError as error:
            raise DemoInputError(str(error)) from None

        faces = translator.faces_in(rgb)
        height, width = rgb.shape[:2]
        if not faces:
            raise DemoInputError(
                f"no {source} face found in the photo ({translator.finder.detector_name} found none in "
                f"{width}x{height}); "
                f"try a photo where the face is larger, upright and facing the camera"
            )
        portraits = translator.translate_crops(np.stack([face.crop for face in faces]), condition)
        gallery = [
            (resize_portrait(portrait, self.display_size), f"face {face.index + 1}")
            for face, portrait in zip(faces, portraits, strict=True)
        ]
        if paste:
            pasted = paste_faces(rgb, [(p, face.matrix) for face, p in zip(faces, portraits, strict=True)],
                                 feather=translator.feather)  # fmt: skip
            gallery.append((pasted, "pasted into the photo"))
        condition_text = translator.condition_text(tags, features)
        status = (f"{_plural(len(faces), 'face')} found in the {width}x{height} photo; {source} -> {target}, "
                  f"{condition_text}")  # fmt: skip
        return DemoReply(gallery, "; ".join([status, *details]))


def _quiet_gradio() -> None:
    """Gradio's and Hugging Face's analytics and hub look-ups off, unless the user set them: the same defaults
    as the stages (core/environment.py), for callers that import this module without the CLI."""
    from core.environment import QUIET_DEFAULTS

    for key in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(key, QUIET_DEFAULTS[key])


def _as_demo_model(model: DemoModel | Path | str | Callable[[], DemoModel], options: Mapping[str, Any]) -> DemoModel:
    if isinstance(model, DemoModel):
        return model
    if callable(model):
        return model()
    return DemoModel.from_file(model, **options)


def build_app(
    model: DemoModel | Path | str | Callable[[], DemoModel],
    *,
    source: str = "human",
    target: str | None = None,
    warm_up: bool = True,
    **options: Any,
) -> Any:
    """The page (a gradio.Blocks) for a model file path, a loaded DemoModel, or a function making one.

    `options` go to DemoModel.from_file for a path (device, batch_size, palette, illust2vec,
    display_size, max_pixels). The model is loaded here, once; `warm_up` also builds the source's face detector.
    """
    _quiet_gradio()
    import gradio as gr

    demo = _as_demo_model(model, options)
    if source not in demo.sources:
        known = ", ".join(demo.sources) or "none"
        raise DemoInputError(f"source domain {source!r}: {demo.path} can detect faces of: {known}")
    target = target or demo.default_target(source)
    if target not in demo.targets(source):
        raise DemoInputError(f"target domain {target!r}: pick one of {', '.join(demo.targets(source))}")
    if warm_up:
        demo.warm_up(source)

    info = demo.info
    with gr.Blocks(title="Twin-GAN demo", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as app:
        gr.Markdown(
            f"## Twin-GAN: translate the faces of a photo\n"
            f"Model `{demo.path.name}`: domains {', '.join(info.config.domains)}, {info.config.resolution} px, "
            f"step {info.step}, profile {info.profile}. Upload a photo, choose tags or a reference picture, press "
            "**Translate**."
        )
        with gr.Row():
            with gr.Column():
                photo = gr.Image(label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"],
                                 elem_id="photo")  # fmt: skip
                with gr.Row():
                    source_box = gr.Dropdown(demo.sources, value=source, label="Faces in the photo are",
                                             elem_id="source")  # fmt: skip
                    target_box = gr.Dropdown(demo.targets(source), value=target, label="Translate them into",
                                             elem_id="target")  # fmt: skip
                groups = [
                    gr.CheckboxGroup(tags, label=name, elem_id=f"tags-{i}")
                    for i, (name, tags) in enumerate(tag_groups(info.vocabulary))
                ]
                reference = gr.Image(label="Reference picture of the target domain (optional: its colours are added "
                                     "to the tags)", type="filepath", sources=["upload", "clipboard"],
                                     elem_id="reference")  # fmt: skip
                paste = gr.Checkbox(value=True, label="Paste back into the photo", elem_id="paste")
                button = gr.Button("Translate", variant="primary", elem_id="translate")
            with gr.Column():
                gallery = gr.Gallery(label="Translation", columns=3, object_fit="contain", format="png",
                                     interactive=False, elem_id="gallery")  # fmt: skip
                status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="status")

        def new_source(chosen: str) -> Any:
            return gr.update(choices=demo.targets(chosen), value=demo.default_target(chosen))

        def translate(photo_value: Any, source_value: str, target_value: str, reference_value: Any, paste_value: bool,
                      *tag_values: list[str] | None) -> tuple[list[tuple[np.ndarray, str]], str]:  # fmt: skip
            tags = [tag for chosen in tag_values for tag in (chosen or [])]
            reply = demo.handle(photo_value, source_value, target_value, tags, reference_value, paste_value)
            return reply.gallery, reply.status

        source_box.change(new_source, source_box, target_box)
        button.click(translate, [photo, source_box, target_box, reference, paste, *groups], [gallery, status],
                     preprocess=False, api_name="translate")  # fmt: skip
    return app


def _stop_hint() -> str:
    """How to stop this process, for the start-up line. An ignored SIGINT (a background job of a shell script,
    which POSIX shells start so) stays ignored: undoing the parent's choice is not ours to do."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return f"Ctrl+C is ignored here: `kill {os.getpid()}` stops it"
    return "Ctrl+C stops it"


@contextmanager
def _signals_held(signums: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold SIGINT and SIGTERM while Gradio starts, and run their handlers once it has.

    A KeyboardInterrupt raised inside Gradio's launch can land after its server thread started but before
    Blocks records the server; close() then cannot stop it and the port keeps serving. Held, the handler
    runs after launch has returned, and close() stops the whole server. Only Python handlers are held
    (`twingan demo`'s, or Python's own for SIGINT): an ignored signal stays ignored and a default action
    stays immediate. A second signal of a kind runs its handler at once, so a start-up that hangs
    can still be interrupted. Off the main thread (Python runs handlers only there) nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers: dict[int, Callable[[int, Any], Any]] = {}
    for signum in signums:
        handler = signal.getsignal(signum)
        if callable(handler):
            handlers[signum] = handler
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if signum not in held:
            held.append(signum)
            return
        held.remove(signum)
        signal.signal(signum, handlers[signum])
        handlers[signum](signum, frame)

    for signum in handlers:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        if held:
            handlers[held[0]](held[0], None)


def launch(
    app: Any,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    share: bool = False,
    *,
    block: bool = True,
    stop: threading.Event | None = None,
) -> tuple[Any, str]:
    """Serve the page on host:port (share=True would open a public gradio.live tunnel: needs the internet).
    Returns the FastAPI app and the local URL. With block=True it serves until Ctrl+C (KeyboardInterrupt; under
    `twingan demo` also SIGTERM) or until `stop` is set (the caller's signal handlers set it, in case Python
    dropped their KeyboardInterrupt), then closes the server and returns; with block=False it returns at once,
    serving from a thread (call app.close() to stop). A Ctrl+C while Gradio starts closes what it started and
    raises KeyboardInterrupt. A port in use raises OSError naming it."""
    try:
        with _signals_held():
            server, url, _ = app.launch(server_name=host, server_port=port, share=share, inbrowser=False,
                                        prevent_thread_lock=True, max_file_size=MAX_FILE_SIZE, ssr_mode=False,
                                        mcp_server=False, pwa=False, enable_monitoring=False, show_error=False,
                                        quiet=True)  # fmt: skip
    except KeyboardInterrupt:  # Ctrl+C while Gradio started: stop what it started, then report it
        _close(app)
        raise
    except OSError as error:
        if "Cannot find empty port" not in str(error):
            raise
        raise UsageError(f"cannot serve on {host}:{port}: the port is in use (another demo?) or {host} is not an "
                      f"address of this machine; pick another with --port or --host") from None  # fmt: skip
    log.info("serving the demo on %s (%s)", url, _stop_hint())
    if block:  # not Gradio's block_thread, which closes only the HTTP server (not the queue) and prints
        try:
            while app.is_running and not (stop and stop.is_set()):
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            _close(app)
    return server, url


def _close(app: Any) -> None:
    """Close the page's server: Gradio's queue and HTTP server stop and, as the server shuts down, Gradio
    deletes the page's uploads and results from its cache."""
    url = getattr(app, "local_url", None)
    running = getattr(app, "is_running", False)
    app.close(verbose=False)
    if running:
        log.info("closed the server on %s", url)


__all__ = ["DemoInputError", "DemoModel", "DemoReply", "build_app", "launch", "read_image", "tag_groups"]
