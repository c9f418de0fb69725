"""`twingan`: the stage entry points that `dvc.yaml` calls, and the commands users run.

Each subcommand loads and validates `params.yaml`, then runs one stage; the stage's code lives in the
module named in its help. Errors a user can fix (a wrong parameter, a missing folder, an unreadable
archive) print one message naming the key or file and exit with status 2, without a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.runtime import configure_environment

configure_environment()  # before anything imports Prefect

from twingan.params import ParamsError, load_params  # noqa: E402

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
    for name in ("twingan", "flows", "preprocessing", "scraping", "training"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def _stderr_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True)


def _fail(message: str) -> None:
    from rich.text import Text

    # As Text, not markup: a path or key in the message may contain "[...]".
    _stderr_console().print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    raise typer.Exit(code=2)


def _user_errors() -> tuple[type[Exception], ...]:
    from preprocessing.ingest.sources import SourceError
    from twingan.parquet import SchemaMismatchError

    try:
        from preprocessing.faces.detectors import ModelFileMissing
    except ImportError:  # the detector libraries are not installed
        return (ParamsError, SourceError, SchemaMismatchError, FileNotFoundError)
    return (ParamsError, SourceError, SchemaMismatchError, FileNotFoundError, ModelFileMissing)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    _setup_logging(verbose)


@app.command()
def check(params: ParamsOption = Path("params.yaml")) -> None:
    """Validate params.yaml and list the domains and their sources."""
    try:
        loaded = load_params(params)
    except ParamsError as error:
        _fail(str(error))
    for name, domain in loaded.params.domains.items():
        typer.echo(f"{name}: {domain.source.kind} {domain.source.path}")


@app.command("demo-data")
def demo_data(params: ParamsOption = Path("params.yaml")) -> None:
    """Stage demo_data: write the demo profile's inputs (twingan/demo_data.py)."""
    from twingan.demo_data import write_demo_data

    try:
        loaded = load_params(params)
        write_demo_data(loaded.params.demo_data, loaded.root)
    except _user_errors() as error:
        _fail(str(error))


@app.command()
def ingest(domain: DomainOption, params: ParamsOption = Path("params.yaml")) -> None:
    """Stage ingest@<domain>: a folder or archive into data/raw/<domain>/ (flows/ingest.py)."""
    try:
        loaded = load_params(params)
        loaded.source_path(domain)
        from flows.ingest import run_ingest

        run_ingest(loaded, domain)
    except _user_errors() as error:
        _fail(str(error))


@app.command()
def faces(domain: DomainOption, params: ParamsOption = Path("params.yaml")) -> None:
    """Stage faces@<domain>: aligned face crops of data/raw/<domain>/ into data/faces/<domain>/ (flows/faces.py)."""
    try:
        loaded = load_params(params)
        from flows.faces import run_faces

        run_faces(loaded, domain)
    except _user_errors() as error:
        _fail(str(error))


@app.command()
def tags(domain: DomainOption, params: ParamsOption = Path("params.yaml")) -> None:
    """Stage tags@<domain>: named tags and colours of data/faces/<domain>/ into data/tags/<domain>/ (flows/tags.py)."""
    try:
        loaded = load_params(params)
        from flows.tags import run_tags

        run_tags(loaded, domain)
    except _user_errors() as error:
        _fail(str(error))


@app.command()
def dataset(domain: DomainOption, params: ParamsOption = Path("params.yaml")) -> None:
    """Stage dataset@<domain>: faces and tags into training manifests and pixel shards (flows/dataset.py)."""
    try:
        loaded = load_params(params)
        from flows.dataset import run_dataset

        run_dataset(loaded, domain)
    except _user_errors() as error:
        _fail(str(error))


@app.command()
def train(params: ParamsOption = Path("params.yaml")) -> None:
    """Stage train: the Twin-GAN on data/datasets/<domains>/ into models/twingan.pt (training/train.py)."""
    try:
        loaded = load_params(params)
        from training.checkpoint import CheckpointError
        from training.loop import NonFiniteLoss
        from training.train import run_train

        try:
            run_train(loaded)
        except (CheckpointError, NonFiniteLoss) as error:
            _fail(str(error))
    except _user_errors() as error:
        _fail(str(error))


@app.command()
def fetch(
    model: Annotated[str, typer.Argument(help="What to download: illust2vec.")],
    dest: Annotated[Path, typer.Option("--dest", help="Folder to write the files into.")] = Path("models/illust2vec"),
    base_url: Annotated[str | None, typer.Option("--base-url", help="A mirror of the release.")] = None,
) -> None:
    """Download released model files, checking SHA-256 (twingan/fetch.py). Needs the network."""
    from twingan.fetch import FetchError, fetch_release

    try:
        for path in fetch_release(model, dest, base_url=base_url):
            typer.echo(str(path))
    except (FetchError, ValueError) as error:
        _fail(str(error))


@app.command()
def scrape(
    crawl: Annotated[str, typer.Option("--crawl", "-c", help="A key of `scrape:` in params.yaml.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Stage scrape@<crawl>: Getchu character portraits into data/scrape/<crawl>/ (flows/scrape.py)."""
    try:
        loaded = load_params(params)
        loaded.crawl(crawl)
        from flows.scrape import CrawlIncomplete, run_scrape

        try:
            run_scrape(loaded, crawl)
        except CrawlIncomplete as stopped:
            _stderr_console().print(str(stopped), soft_wrap=True)
            raise typer.Exit(code=3) from None
    except _user_errors() as error:
        _fail(str(error))


@app.command()
def rebuild(
    params: ParamsOption = Path("params.yaml"),
    serve: Annotated[bool, typer.Option("--serve", help="Keep running and rebuild on a schedule.")] = False,
    cron: Annotated[str, typer.Option("--cron", help="Schedule for --serve, e.g. '0 3 * * *'.")] = "0 3 * * *",
    targets: Annotated[list[str] | None, typer.Argument(help="Stages to rebuild (default: all).")] = None,
) -> None:
    """Run the whole DVC pipeline as a Prefect flow, retrying flaky stages, then push (flows/rebuild.py)."""
    try:
        loaded = load_params(params)
    except ParamsError as error:
        _fail(str(error))
    from flows.rebuild import rebuild_flow, serve_rebuild

    if serve:
        serve_rebuild(loaded, cron, targets or [])
        return
    summary = rebuild_flow(str(loaded.file), targets or [])
    if summary.get("failed"):
        _fail(f"rebuild failed at stage {summary['failed']}: {summary.get('error', '')}")


def run() -> None:  # pragma: no cover - console entry for `python -m twingan`
    sys.exit(app())
