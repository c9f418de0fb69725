"""`twingan`: the stage entry points that `dvc.yaml` calls, and the commands users run.

Each stage command loads and validates `params.yaml`, then runs its stage module, `flows/<stage>.py`.
Errors a user can fix (core.errors.UserError: a wrong parameter, a missing folder, an unreadable archive,
an option the model does not fit) print one message naming the key or file and exit with status 2,
without a traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from core.environment import configure_environment

configure_environment()  # before anything imports Prefect

from core.errors import UserError  # noqa: E402
from core.params import load_params  # noqa: E402

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Twin-GAN pipeline: the stages of dvc.yaml, and the end-to-end rebuild.",
)

ParamsOption = Annotated[Path, typer.Option("--params", help="The params file (paths in it are relative to it).")]
DomainOption = Annotated[str, typer.Option("--domain", "-d", help="A key of `domains:` in params.yaml.")]


def _setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    # Our own loggers say what each stage read, wrote and skipped; libraries only warn.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, show_time=False, console=_stderr_console())],
        force=True,
    )
    packages = "twingan flows inference evaluation reporting training scraping preprocessing core"
    for name in packages.split():
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def _stderr_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True)


def _error_text(message: str):  # type: ignore[no-untyped-def]
    from rich.text import Text

    # As Text, not markup: a path or key in the message may contain "[...]".
    return Text.assemble(("error: ", "bold red"), message)


def _fail(message: str) -> None:
    _stderr_console().print(_error_text(message), soft_wrap=True)
    raise typer.Exit(code=2)


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """A UserError ends the command with its one line and status 2; anything else keeps its traceback."""
    try:
        yield
    except UserError as error:
        _fail(str(error))


def _stage(run: Callable[..., Any], params: Path, *keys: str) -> None:
    """Run a stage module's entry on the validated params (and its domain or crawl)."""
    with _reported():
        run(load_params(params), *keys)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    _setup_logging(verbose)


@app.command()
def check(params: ParamsOption = Path("params.yaml")) -> None:
    """Validate params.yaml as every stage would before its work: sources, detectors, taggers, crawls and
    train.domains; list the domains. Every problem is printed; the status is 2 if there is any."""
    with _reported():
        loaded = load_params(params)
    from flows.faces import check_faces
    from flows.ingest import check_ingest
    from flows.tags import check_tags
    from flows.train import train_domains

    problems: list[str] = []

    def attempt(check: Callable[..., object], *args: object) -> None:
        try:
            check(*args)
        except UserError as error:
            problems.append(str(error))

    made = {"demo_data": loaded.resolve(loaded.params.demo_data.out)}
    made.update({f"scrape@{name}": loaded.root / "data" / "scrape" / name for name in loaded.params.scrape})
    for name, domain in loaded.params.domains.items():
        path = loaded.resolve(domain.source.path)
        stage = next((stage for stage, out in made.items() if path == out or out in path.parents), None)
        if stage is not None and not path.exists():
            note = f" (written by stage {stage}, not run yet)"
        else:
            note = ""
            attempt(check_ingest, loaded, name)
        if domain.detector is not None:
            attempt(check_faces, loaded, name)
        attempt(check_tags, loaded, name)
        typer.echo(f"{name}: {domain.source.kind} {domain.source.path}{note}")
    for crawl in loaded.params.scrape:
        attempt(loaded.crawl, crawl)
    attempt(train_domains, loaded)
    if problems:
        for problem in problems:
            _stderr_console().print(_error_text(problem), soft_wrap=True)
        raise typer.Exit(code=2)


@app.command()
def profile(
    name: Annotated[str | None, typer.Argument(help="A profile of profiles/ (see --list).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-S",
            help="key.path=value (YAML) applied after the profile, e.g. "
            "domains.human.source.path=/data/photos; repeatable.",
        ),
    ] = None,
    list_profiles: Annotated[bool, typer.Option("--list", help="List the profiles.")] = False,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Switch params.yaml to a profile (core/profiles.py), e.g. `twingan profile real`, then check it as the
    stages will. Run it with `dvc exp run` (a DVC experiment); `git checkout params.yaml` is the demo again."""
    from core.profiles import apply_profile, available, profiles_dir

    root = params.absolute().parent
    if list_profiles or name is None:
        for known in available(root):
            typer.echo(f"{known}: {profiles_dir(root) / known}.yaml")
        return
    with _reported():
        keys = apply_profile(params, name, set_ or [])
    typer.echo(f"{params}: profile {name}: set {', '.join(keys)}")
    typer.echo("run it with `dvc exp run` (or `dvc repro`); `git checkout params.yaml` returns to the demo")
    check(params)


@app.command("demo-data")
def demo_data(params: ParamsOption = Path("params.yaml")) -> None:
    """Stage demo_data: write the demo profile's inputs (flows/demo_data.py)."""
    from flows.demo_data import run_demo_data

    _stage(run_demo_data, params)


@app.command()
def ingest(domain: DomainOption, params: ParamsOption = Path("params.yaml")) -> None:
    """Stage ingest@<domain>: a folder or archive into data/raw/<domain>/ (flows/ingest.py)."""
    from flows.ingest import run_ingest

    _stage(run_ingest, params, domain)


@app.command()
def faces(domain: DomainOption, params: ParamsOption = Path("params.yaml")) -> None:
    """Stage faces@<domain>: aligned face crops of data/raw/<domain>/ into data/faces/<domain>/ (flows/faces.py)."""
    from flows.faces import run_faces

    _stage(run_faces, params, domain)


@app.command()
def tags(domain: DomainOption, params: ParamsOption = Path("params.yaml")) -> None:
    """Stage tags@<domain>: named tags and colours of data/faces/<domain>/ into data/tags/<domain>/ (flows/tags.py)."""
    from flows.tags import run_tags

    _stage(run_tags, params, domain)


@app.command()
def dataset(domain: DomainOption, params: ParamsOption = Path("params.yaml")) -> None:
    """Stage dataset@<domain>: faces and tags into training manifests and pixel shards (flows/dataset.py)."""
    from flows.dataset import run_dataset

    _stage(run_dataset, params, domain)


@app.command()
def train(params: ParamsOption = Path("params.yaml")) -> None:
    """Stage train: the Twin-GAN on data/datasets/<domains>/ into models/twingan.pt (flows/train.py)."""
    from flows.train import run_train

    _stage(run_train, params)


@app.command()
def fetch(
    model: Annotated[
        str | None, typer.Argument(help="What to download: illust2vec or a detector's weights (see --list).")
    ] = None,
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest",
            help="Folder to write into (default: models/illust2vec; for detectors the weights dir, "
            "$TWINGAN_DETECTOR_WEIGHTS or models/detectors, which gets <model>/).",
        ),
    ] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="A mirror of the release.")] = None,
    accept_no_licence: Annotated[
        bool, typer.Option("--accept-no-licence", help="Fetch weights whose source states no licence.")
    ] = False,
    list_models: Annotated[bool, typer.Option("--list", help="List what can be fetched, with licences.")] = False,
) -> None:
    """Download released model files, checking SHA-256 against pins (twingan/fetch.py). Needs the network;
    nothing else in the project downloads."""
    from twingan.fetch import RELEASES, describe_models, fetch_detector_weights, fetch_release

    with _reported():
        if list_models or model is None:
            for line in describe_models():
                typer.echo(line)
            return
        if model in RELEASES:
            paths = fetch_release(model, dest or Path("models/illust2vec"), base_url=base_url)
        else:
            paths = fetch_detector_weights(model, dest, base_url=base_url, accept_no_licence=accept_no_licence)
            from preprocessing.faces.weights import MODELS, licence_text

            typer.echo(f"{model}: licence: {licence_text(MODELS[model])} ({MODELS[model].source})")
        for path in paths:
            typer.echo(str(path))


@app.command()
def scrape(
    crawl: Annotated[str, typer.Option("--crawl", "-c", help="A key of `scrape:` in params.yaml.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Stage scrape@<crawl>: Getchu character portraits into data/scrape/<crawl>/ (flows/scrape.py)."""
    from flows.scrape import CrawlIncomplete, run_scrape

    try:
        _stage(run_scrape, params, crawl)
    except CrawlIncomplete as stopped:  # resumes on the next run: status 3, not a failure to fix
        _stderr_console().print(str(stopped), soft_wrap=True)
        raise typer.Exit(code=3) from None


@app.command()
def rebuild(
    params: ParamsOption = Path("params.yaml"),
    serve: Annotated[bool, typer.Option("--serve", help="Keep running and rebuild on a schedule.")] = False,
    cron: Annotated[str, typer.Option("--cron", help="Schedule for --serve, e.g. '0 3 * * *'.")] = "0 3 * * *",
    targets: Annotated[list[str] | None, typer.Argument(help="Stages to rebuild (default: all).")] = None,
) -> None:
    """Run the whole DVC pipeline as a Prefect flow, retrying flaky stages, then push (flows/rebuild.py)."""
    with _reported():
        loaded = load_params(params)
    from flows.rebuild import rebuild_flow, serve_rebuild

    if serve:
        serve_rebuild(loaded, cron, targets or [])
        return
    summary = rebuild_flow(str(loaded.file), targets or [])
    if summary.get("failed"):
        _fail(f"rebuild failed at stage {summary['failed']}: {summary.get('error', '')}")


@app.command()
def index(params: ParamsOption = Path("params.yaml")) -> None:
    """Stage index: every dataset crop embedded by models/twingan.pt, in FAISS indexes (flows/index.py)."""
    from flows.index import run_index

    _stage(run_index, params)


@app.command()
def neighbors(
    photo: Annotated[Path, typer.Argument(help="A photo (faces are detected and aligned) or, with --aligned, a crop.")],
    k: Annotated[int, typer.Option("--k", "-k", help="Neighbours per domain.")] = 8,
    domains: Annotated[str, typer.Option("--domains", help="Comma-separated domains to search.")] = "anime,human",
    source: Annotated[str, typer.Option("--from", help="The domain of the photo's faces.")] = "human",
    aligned: Annotated[bool, typer.Option("--aligned", help="PHOTO is already a face crop: no detection.")] = False,
    model: Annotated[Path, typer.Option("--model", help="The model file.")] = Path("models/twingan.pt"),
    index_dir: Annotated[Path, typer.Option("--index", help="The index folder (twingan index).")] = Path("data/index"),
    datasets: Annotated[
        Path | None, typer.Option("--datasets", help="The dataset folders (default: as the index records).")
    ] = None,
    nprobe: Annotated[int | None, typer.Option("--nprobe", help="IVF lists to scan (default: as built).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")] = "auto",
    out: Annotated[Path, typer.Option("--out", "-o", help="The grid PNG to write.")] = Path("neighbors.png"),
) -> None:
    """The nearest dataset crops of each domain to a face, in the shared embedding (inference/neighbors.py)."""
    from inference.neighbors import find_neighbors, format_table

    wanted = [domain.strip() for domain in domains.split(",") if domain.strip()]
    with _reported():
        result = find_neighbors(photo, model_path=model, index_path=index_dir, domains=wanted, source=source, k=k,
                                aligned=aligned, datasets=datasets, device=device, nprobe=nprobe, out=out)  # fmt: skip
    typer.echo(format_table(result.faces, result.hits))
    typer.echo(f"wrote {out}")


@app.command()
def translate(
    photos: Annotated[list[str], typer.Argument(help="Photos: files, folders (searched recursively) or globs.")],
    target: Annotated[str, typer.Option("--to", help="The domain to translate faces into, e.g. anime.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <stem>-face<k>.png (and -pasted.png).")],
    source: Annotated[str, typer.Option("--from", help="The domain of the photos' faces.")] = "human",
    model: Annotated[Path, typer.Option("--model", help="The model file.")] = Path("models/twingan.pt"),
    tags: Annotated[str | None, typer.Option("--tags", help='Condition, e.g. "green hair, blue eyes".')] = None,
    reference: Annotated[
        Path | None,
        typer.Option("--reference", help="A picture of the target domain to take tags (and features) from."),
    ] = None,
    illust2vec: Annotated[
        Path, typer.Option("--illust2vec", help="Folder of the illust2vec files (models needing features).")
    ] = Path("models/illust2vec"),
    paste: Annotated[bool, typer.Option("--paste", help="Also write each photo with its faces pasted back.")] = False,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Faces per forward pass (default: 16 on CUDA, 4 on CPU).")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")] = "auto",
    size: Annotated[
        int | None, typer.Option("--size", min=8, help="Write portraits at N px (default: the model's).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            help="Processes finding faces (0: none; default: one per core up to 4, none under 8 photos).",
        ),
    ] = None,
    params: Annotated[Path, typer.Option("--params", help="Its `tags` colours name a reference's colours.")] = Path(
        "params.yaml"
    ),
    sheet: Annotated[
        Path | None,
        typer.Option("--sheet", help="Also draw each photo's largest face above its translation into this PNG."),
    ] = None,
) -> None:
    """Translate every face of raw photos with the trained model, optionally pasted back (inference/translate.py)."""
    from inference.translate import run_translate

    with _reported():
        summary = run_translate(photos, out, model=model, source=source, target=target, tags=tags, reference=reference,
                                illust2vec=illust2vec, paste=paste, batch_size=batch_size, device=device, size=size,
                                workers=workers, params=params, sheet=sheet)  # fmt: skip
    typer.echo(summary.line(out))


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write (.onnx or .pt).")],
    export_format: Annotated[str, typer.Option("--format", help="onnx | torchscript")] = "onnx",
    model: Annotated[Path, typer.Option("--model", help="The model file.")] = Path("models/twingan.pt"),
    source: Annotated[str, typer.Option("--from", help="The input domain.")] = "human",
    target: Annotated[str, typer.Option("--to", help="The output domain.")] = "anime",
    tags: Annotated[
        str | None, typer.Option("--tags", help="Bake this condition in (default: the condition is an input).")
    ] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Max |exported - eager| allowed.")] = 1e-4,
) -> None:
    """Export one translation direction as ONNX or TorchScript, checked against eager (inference/export.py)."""
    from inference.export import export_translation
    from training.conditioning import parse_tags

    with _reported():
        report = export_translation(model, out, format=export_format, source=source, target=target,
                                    tags=parse_tags(tags), tolerance=tolerance)  # fmt: skip
    typer.echo(
        f"wrote {report.path} ({report.format}, {source} -> {target}, inputs: {', '.join(report.inputs)}); "
        f"max |exported - eager| = {report.max_abs_diff:.2e} on a random batch of {report.check_batch} "
        f"(tolerance {report.tolerance:g})"
    )


@app.command()
def release(
    out: Annotated[Path, typer.Option("--out", "-o", help="The copy to write: models/pretrained/NAME.pt.")],
    model: Annotated[Path, typer.Option("--model", help="The model file.")] = Path("models/twingan.pt"),
    tolerance: Annotated[float, typer.Option("--tolerance", help="Max |fp16 copy - model| allowed.")] = 0.05,
) -> None:
    """Write a model file to ship: the same model with fp16 weights, checked against it (inference/export.py)."""
    from inference.export import release_model

    with _reported():
        report = release_model(model, out, tolerance=tolerance)
    typer.echo(
        f"wrote {report.path} ({report.bytes_out / 1e6:.2f} MB, from {report.bytes_in / 1e6:.2f} MB); "
        f"max |fp16 - fp32| = {report.max_abs_diff:.2e} over {report.directions} directions (tolerance "
        f"{report.tolerance:g})"
    )


@app.command()
def report(
    params: ParamsOption = Path("params.yaml"),
    html: Annotated[
        Path | None, typer.Option("--html", help="The page to write (default: plots/report.html beside params).")
    ] = None,
    picture: Annotated[
        Path | None,
        typer.Option("--picture", help="Also draw the README's picture there, e.g. docs/images/pipeline.png."),
    ] = None,
) -> None:
    """What the last `dvc repro` produced: per stage what it read, kept and dropped (and why), the model's
    metrics, the pictures to open, and one self-contained HTML page with all of them (reporting/)."""
    from rich.console import Console

    from reporting.report import report as write_report

    with _reported():
        write_report(load_params(params), Console(), html, picture)


@app.command()
def evaluate(params: ParamsOption = Path("params.yaml")) -> None:
    """Stage evaluate: FID/KID, AnimeFace, pose, hair-colour and reconstruction metrics of models/twingan.pt
    into metrics/evaluate.json and plots/evaluate/samples.png (flows/evaluate.py)."""
    from flows.evaluate import evaluate as run_evaluate

    _stage(run_evaluate, params)


@app.command()
def demo(
    model: Annotated[Path, typer.Option("--model", help="The model file.")] = Path("models/twingan.pt"),
    source: Annotated[str, typer.Option("--from", help="The domain of the photos' faces (the page can switch).")] = (
        "human"
    ),
    target: Annotated[str | None, typer.Option("--to", help="The domain to translate into (default: anime).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to serve on; 0.0.0.0 opens it to the network.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 7860,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")] = "auto",
    illust2vec: Annotated[
        Path, typer.Option("--illust2vec", help="Folder of the illust2vec files (models needing features).")
    ] = Path("models/illust2vec"),
    params: Annotated[Path, typer.Option("--params", help="Its `tags` colours name a reference's colours.")] = Path(
        "params.yaml"
    ),
) -> None:
    """A local web page: upload a photo, pick tags or a reference, see its faces translated (inference/web_demo.py)."""
    from core.processes import stop_requests

    log = logging.getLogger("twingan.demo")
    # From the start, so that a stop while torch and the model load (the first seconds) also ends here,
    # "stopped", with status 0.
    with stop_requests() as stop, contextlib.suppress(KeyboardInterrupt), _reported():
        from inference.translate import UserSettings
        from inference.web_demo import build_app, launch

        settings = UserSettings.from_params(params)  # the reference colours' names, the pixel bound of uploads
        if stop.is_set():
            raise KeyboardInterrupt
        app = build_app(model, source=source, target=target, device=device, illust2vec=illust2vec,
                        palette=settings.palette, max_pixels=settings.max_pixels)  # fmt: skip
        if stop.is_set():
            raise KeyboardInterrupt
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("serving on %s: anyone who can reach this address can use the page", host)
        launch(app, host=host, port=port, share=False, stop=stop)  # until a stop; closes the server
    log.info("stopped")


def run() -> None:  # pragma: no cover - console entry for `python -m twingan`
    sys.exit(app())
