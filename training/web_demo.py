"""`twingan demo`: a local web page to translate the faces of one photo with the trained model.

The page (Gradio) takes a photo, the domain of its faces and the domain to translate them into, tags of
the model's vocabulary and optionally a reference picture of the target domain, and shows every
translated face and, if asked, the photo with the faces pasted back. The work is done by the same code
as `twingan translate` (training/translate.py: the model file's detector and alignment, the training
loader's resize, training/paste.py), on the decoded photo in memory rather than on files.

The model is loaded once, when the page is built; each (source, target) direction gets its Translator
(and so its face detector) the first time it is asked for, and keeps it. Requests never raise into
Gradio: a missing or unreadable upload, a photo without a face, an unknown tag or a reference that
needs missing weights each give one line in the status box, and unexpected errors are logged with their
trace on the server and summarised in one line on the page.

Uploads reach the handler unprocessed (`preprocess=False`): Gradio's own image preprocessing opens the
file with PIL before our code runs, so a corrupt upload would fail inside Gradio with a generic error
toast. The handler decodes the uploaded file itself with `preprocessing.images.load_rgb`, as every stage
does (EXIF rotation, CMYK, 16-bit, alpha), and names what is wrong. Gradio still moves the upload into its
cache and checks that the path is an upload of this server before the handler sees it.

Nothing is fetched from the internet: the default theme's fonts and every script are served by the
local server (the browser test records every request the page makes and finds none to another host),
analytics are off (flows/runtime.py), `share` is off unless asked for, and server-side rendering (which
would need Node) is off.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.devices import resolve_device
from training.model_file import ModelInfo, load_model
from training.networks import TwinGAN
from training.paste import paste_faces
from training.translate import Translator, resize_portrait

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860
DISPLAY_SIZE = 256  # portraits are shown at this size (the demo model's are 32 px)
MAX_FILE_SIZE = "50mb"  # larger uploads are refused by the server before they reach the handler
CACHE_CLEANUP = (3600, 3600)  # every hour, delete uploads and results older than an hour


class DemoInputError(ValueError):
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


def read_image(value: Any, what: str) -> np.ndarray | None:
    """An upload as HxWx3 uint8 RGB, or None when nothing was given.

    `value` is what the page sends (Gradio's file payload, a dict with the cached upload's "path"), a
    path, or an array (the handler called directly, as the tests and other Python callers do).
    Undecodable files raise DemoInputError naming the file.
    """
    from PIL import Image

    from preprocessing.images import load_rgb, to_rgb

    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8 or value.ndim not in (2, 3) or (value.ndim == 3 and value.shape[2] not in (3, 4)):
            raise DemoInputError(
                f"the {what} must be an 8-bit grey, RGB or RGBA image, got {value.dtype} {value.shape}"
            )
        return np.asarray(to_rgb(Image.fromarray(np.ascontiguousarray(value))))
    name = None
    if isinstance(value, Mapping):
        name = value.get("orig_name")
        value = value.get("path")
        if not value:
            return None
    path = Path(value)
    name = name or path.name
    try:
        rgb = np.asarray(load_rgb(path))
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, DecompressionBombError, ...)
        raise DemoInputError(
            f"could not read the {what} {name!r} as an image ({type(error).__name__}: {error})"
        ) from None
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise DemoInputError(f"the {what} {name!r} is empty")
    return rgb


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
    ) -> None:
        self.model, self.info, self.path = model, info, Path(path)
        self.device = resolve_device(device)
        self.batch_size, self.palette, self.illust2vec = batch_size, palette, illust2vec
        self.display_size = display_size
        self._translators: dict[tuple[str, str], Translator] = {}
        self._lock = threading.Lock()  # one request at a time uses the model and the detectors

    @classmethod
    def from_file(cls, path: Path | str, **options: Any) -> DemoModel:
        """Load `path` (training/model_file.py) once; options as for the constructor."""
        model, info = load_model(path, "cpu")
        log.info("loaded %s: domains %s, %d px, %d tags, step %d", path, ", ".join(info.config.domains),
                 info.config.resolution, len(info.vocabulary), info.step)  # fmt: skip
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
            return DemoReply([], f"{str(error)[:1].upper()}{str(error)[1:]}")
        except Exception as error:  # the page must show a line, not hang; the trace goes to the server log
            log.exception("request failed")
            return DemoReply([], f"Something went wrong on the server ({type(error).__name__}: {error}); see its log.")
        seconds = time.perf_counter() - started
        log.info("%s (%.2f s)", reply.status, seconds)
        return DemoReply(reply.gallery, f"{reply.status} ({seconds:.1f} s)")

    def _translate(
        self, photo: Any, source: str, target: str, tags: list[str], reference: Any, paste: bool
    ) -> DemoReply:
        from training.conditioning import UnknownTagError

        translator = self.translator(source, target)
        rgb = read_image(photo, "photo")
        if rgb is None:
            raise DemoInputError("upload a photo first, then press Translate")
        details = []
        features = None
        reference_rgb = read_image(reference, "reference picture")
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
                f"no {source} face found in the photo ({translator.detector.name} found none in {width}x{height}); "
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
        condition_text = ", ".join(tags) if tags else "no tags"
        status = (f"{_plural(len(faces), 'face')} found in the {width}x{height} photo; {source} -> {target}, "
                  f"{condition_text}")  # fmt: skip
        return DemoReply(gallery, "; ".join([status, *details]))


def _quiet_gradio() -> None:
    """Gradio's and Hugging Face's analytics and hub look-ups off, unless the user set them: the same defaults
    as the stages (flows/runtime.py), for callers that import this module without the CLI."""
    from flows.runtime import QUIET_DEFAULTS

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
    display_size). The model is loaded here, once; `warm_up` also builds the source's face detector.
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
            f"step {info.step}. Upload a photo, choose tags or a reference picture, press **Translate**."
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


def launch(
    app: Any,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    share: bool = False,
    *,
    block: bool = True,
) -> tuple[Any, str]:
    """Serve the page on host:port (share=True would open a public gradio.live tunnel: needs the internet).
    Returns the FastAPI app and the local URL; with block=False it returns at once, serving from a thread
    (call app.close() to stop). A port in use raises OSError naming it."""
    try:
        server, url, _ = app.launch(server_name=host, server_port=port, share=share, inbrowser=False,
                                    prevent_thread_lock=True, max_file_size=MAX_FILE_SIZE, ssr_mode=False,
                                    mcp_server=False, pwa=False, enable_monitoring=False, show_error=False,
                                    quiet=True)  # fmt: skip
    except KeyboardInterrupt:  # Ctrl+C while Gradio still starts: stop what it started, then report it
        app.close()
        raise
    except OSError as error:
        if "Cannot find empty port" not in str(error):
            raise
        raise OSError(f"cannot serve on {host}:{port}: the port is in use (another demo?) or {host} is not an "
                      f"address of this machine; pick another with --port or --host") from None  # fmt: skip
    log.info("serving the demo on %s (Ctrl+C stops it)", url)
    if block:
        app.block_thread()  # until Ctrl+C; closes the server
    return server, url


__all__ = ["DemoInputError", "DemoModel", "DemoReply", "build_app", "launch", "read_image", "tag_groups"]
