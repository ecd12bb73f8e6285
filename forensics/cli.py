"""The ``forensics`` command line.

Heavy libraries (pandas, pyarrow, protobuf) are imported inside the commands, so that
``forensics --help`` answers at once. Bad input never shows a traceback: it becomes a
warning in the output and an exit code (see ``EXIT CODES`` in the help).
"""

from __future__ import annotations

import gc
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

EXIT_HELP = """
Exit codes: 0 analyzed, no warnings; 1 a finding at or above --fail-on; 2 usage error;
3 analyzed, but some artifacts had warnings or failed; 4 nothing usable in the bundle.
"""

class _App(typer.Typer):
    """The ``forensics`` program. Tests drive the same commands through typer's
    CliRunner, which does not come through :meth:`__call__`."""

    #: Set when this is the ``forensics`` process itself: what it imports lives until
    #: it exits, so the garbage collector may leave that alone (see :func:`_imports`).
    owns_process = False

    def __call__(self, *args, **kwargs):
        _App.owns_process = True
        try:
            return super().__call__(*args, **kwargs)
        finally:
            # The process ends here, and Python's shutdown would spend 0.2-0.3 s letting
            # the garbage collector walk every object that pandas, pyarrow and the
            # analysis created (longer than rendering the report). Frozen objects are
            # left to the operating system instead; files are all closed by now.
            gc.freeze()


@contextmanager
def _imports():
    """Around the imports of pandas, pyarrow, numpy and the parsers: they make a few
    hundred thousand objects that live as long as the process, none of them garbage,
    and the cyclic collector scans them over and over while they load (0.1 s). In the
    ``forensics`` process it pauses for the imports, and what they made is then frozen
    (left out of every later collection). Elsewhere (tests), or once they are imported,
    nothing changes."""
    if not _App.owns_process or "forensics.pipeline" in sys.modules:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()


app = _App(
    name="forensics",
    help="Find the line of a Go service that leaks database or network connections, "
    "from a capture bundle (goroutine dumps, heap profiles, lsof/ss/netstat, db.Stats)."
    + EXIT_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

BundleArg = Annotated[
    Path,
    typer.Argument(
        metavar="BUNDLE",
        help="A bundle: .tar.gz/.tgz/.tar/.zip, a folder, or a single artifact file."),
]


class Format(str, Enum):
    html = "html"
    md = "md"
    json = "json"


class Severity(str, Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


@contextmanager
def _progress(label: str):
    """A progress bar on stderr when it is a terminal; silent in scripts and CI."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[item]}"), transient=True) as bar:
        task = bar.add_task(label, total=None, item="")

        def update(item: str, i: int, n: int) -> None:
            bar.update(task, completed=i + 1, total=n, item=item[-50:])

        yield update


def _load(bundle: Path, limits_kwargs: dict | None = None, detect: bool = False):
    with _imports():
        from .bundle import BundleError, Limits
        from .parsers import available
        from .pipeline import EXIT_NOTHING_USABLE, analyze, build_tables

        available()

    limits = Limits(**{k: v for k, v in (limits_kwargs or {}).items() if v is not None})
    try:
        with _progress("parsing") as progress:
            run = analyze if detect else build_tables
            return run(bundle, limits, progress)
    except BundleError as exc:
        _err(f"forensics: {exc}")
        raise typer.Exit(EXIT_NOTHING_USABLE) from exc


MaxMember = Annotated[int | None, typer.Option(
    "--max-member-bytes", metavar="BYTES",
    help="Skip members that inflate beyond this many bytes.")]
MaxTotal = Annotated[int | None, typer.Option(
    "--max-total-bytes", metavar="BYTES",
    help="Stop reading the bundle after this many bytes in all.")]
MaxArtifacts = Annotated[int | None, typer.Option(
    "--max-artifacts", min=0, metavar="N",
    help="Parse at most this many recognised artifacts (default 1000).")]
ParserSeconds = Annotated[float | None, typer.Option(
    "--parser-seconds", min=0, metavar="SECONDS",
    help="Time budget of one parser on one artifact, in seconds "
    "(default 120; 0 = none). An artifact over budget fails with a warning.")]


def _limits(member: int | None, total: int | None, artifacts: int | None,
            seconds: float | None) -> dict:
    return {"max_member_bytes": member, "max_total_bytes": total,
            "max_artifacts": artifacts, "parser_seconds": seconds}


@app.command()
def inspect(
    bundle: BundleArg,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON, not a table.")] = False,
    max_member_bytes: MaxMember = None,
    max_total_bytes: MaxTotal = None,
    max_artifacts: MaxArtifacts = None,
    parser_seconds: ParserSeconds = None,
) -> None:
    """List what the bundle holds: each member, its kind, round, time, and any warning."""
    analysis = _load(bundle, _limits(max_member_bytes, max_total_bytes, max_artifacts,
                                     parser_seconds))
    if json_out:
        from .report import inventory_document, to_json

        typer.echo(to_json(inventory_document(analysis)))
    else:
        _print_inventory(analysis)
    raise typer.Exit(analysis.exit_code())


def _clean(value: object) -> str:
    """Bundle text for a terminal: no control characters (ESC sequences could retitle,
    recolour or write the clipboard of the reader's terminal) and no bidi overrides."""
    from .render import text

    return text(value)


def _print_inventory(analysis) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Bundle text goes in as Text, never as markup: a member named "[/yellow]" must
    # neither crash rich nor restyle the table.
    con = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)
    t = Table(title=Text(_clean(f"{analysis.bundle.source}  ({len(analysis.artifacts)} "
                                f"members, {len(analysis.rounds)} rounds)")))
    for col in ("round", "kind", "path", "captured at", "time from", "status", "message"):
        t.add_column(col, overflow="fold")
    for a in analysis.artifacts:
        when = a.captured_at.strftime("%Y-%m-%d %H:%M:%S") if a.captured_at else ""
        fmt = a.result.meta.get("format") if a.result else None
        kind = f"{a.kind} ({fmt})" if fmt and fmt != a.kind else a.kind
        t.add_row(*(Text(_clean(v)) for v in (a.round, kind, a.path, when, a.time_source,
                                              a.status, a.message)))
    con.print(t)
    for w in analysis.bundle.warnings:
        con.print(Text.assemble(("warning", "yellow"), " ", _clean(f"{w.path}: {w.message}")),
                  highlight=False)


@app.command()
def tables(
    bundle: BundleArg,
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="DIR", help="Folder for the Parquet files.")],
    max_member_bytes: MaxMember = None,
    max_total_bytes: MaxTotal = None,
    max_artifacts: MaxArtifacts = None,
    parser_seconds: ParserSeconds = None,
) -> None:
    """Normalize every artifact into typed tables and write them as Parquet."""
    analysis = _load(bundle, _limits(max_member_bytes, max_total_bytes, max_artifacts,
                                     parser_seconds))
    written = _write_out(lambda: analysis.tables.write_parquet(out), out)
    for path in written:
        name = path.stem
        typer.echo(f"{name:16} {len(analysis.tables[name]):>9} rows  {path}")
    for w in analysis.warnings:
        _err(_clean(f"warning: {w['path']}: {w['message']}"))
    raise typer.Exit(analysis.exit_code())


@app.command()
def analyze(
    bundle: BundleArg,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="FILE", help="Report file (.html, .md or .json; '-' for stdout). "
        "Default: <bundle>-report.html in the current folder.")] = None,
    fmt: Annotated[Format | None, typer.Option(
        "--format", "-f", help="Report format; default from the --output extension, else html.")]
        = None,
    templates: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Folder with your own report.html.j2 / report.md.j2.")] = None,
    fail_on: Annotated[Severity | None, typer.Option(
        help="Exit 1 when a finding of this severity or higher exists.")] = None,
    tables_out: Annotated[Path | None, typer.Option(
        "--tables", metavar="DIR",
        help="Also write the tables as Parquet into this folder.")] = None,
    redact: Annotated[bool, typer.Option(
        help="Mask IPs, hostnames, user names and home paths in the report and tables.")] = False,
    redact_map: Annotated[Path | None, typer.Option(
        "--redact-map", metavar="FILE",
        help="Save the token -> value map of --redact here (implies --redact); "
        "keep it with the bundle's owner, not in the ticket.")] = None,
    max_member_bytes: MaxMember = None,
    max_total_bytes: MaxTotal = None,
    max_artifacts: MaxArtifacts = None,
    parser_seconds: ParserSeconds = None,
) -> None:
    """Find leaking call sites and write the incident report (HTML by default)."""
    from .report import render, summary_lines

    if fmt is None:
        ext = (output or "").rsplit(".", 1)[-1].lower() if output and output != "-" else ""
        fmt = {"md": Format.md, "markdown": Format.md, "json": Format.json}.get(ext, Format.html)
    if redact_map is not None:
        redact = True
        _check_map_path(redact_map, output, tables_out)
    analysis = _load(bundle, _limits(max_member_bytes, max_total_bytes, max_artifacts,
                                     parser_seconds), detect=True)
    if redact:
        from .redact import redact_analysis, write_map

        redactor = redact_analysis(analysis)
        if redact_map is not None:
            _write_out(lambda: write_map(redactor, redact_map, str(bundle)), redact_map)
    text = render(analysis, fmt.value, templates)
    if output == "-":
        sys.stdout.write(text)
        if not text.endswith("\n"):
            sys.stdout.write("\n")
    else:
        path = Path(output) if output else Path(f"{analysis.bundle.bundle_id}-report.{fmt.value}")
        _write_out(lambda: _write_text(path, text), path)
        for line in summary_lines(analysis):
            typer.echo(_clean(line))
        typer.echo(f"report: {path}")
    if tables_out is not None:
        _write_out(lambda: analysis.tables.write_parquet(tables_out), tables_out)
    for w in analysis.warnings:
        _err(_clean(f"warning: {w['path']}: {w['message']}"))
    code = analysis.exit_code()
    if fail_on is not None and code != 4:
        from .findings import severity_level, worst_level

        if worst_level(analysis.findings) >= severity_level(fail_on.value):
            code = 1
    raise typer.Exit(code)


def _write_out(write, where: Path):
    """Run one output write; a bad output path is a usage error, not a traceback."""
    try:
        return write()
    except OSError as exc:
        _err(f"forensics: cannot write {where}: {exc.strerror or exc}")
        raise typer.Exit(2) from exc


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _check_map_path(redact_map: Path, output: str | None, tables_out: Path | None) -> None:
    """The map undoes the redaction: it must not overwrite the report or sit among the
    tables that go into the ticket."""
    target = redact_map.resolve()
    if output and output != "-" and Path(output).resolve() == target:
        _err("forensics: --redact-map must not be the report file")
        raise typer.Exit(2)
    if tables_out is not None and target.is_relative_to(tables_out.resolve()):
        _err("forensics: --redact-map must not be inside the --tables folder")
        raise typer.Exit(2)


@app.command()
def collect(
    pid: Annotated[int | None, typer.Option(metavar="PID", help="PID of the Go service.")] = None,
    pprof_url: Annotated[str, typer.Option(
        metavar="URL",
        help="Base URL of the service's net/http/pprof handler.")] = "http://127.0.0.1:6060",
    dbstats_url: Annotated[str | None, typer.Option(
        metavar="URL", help="URL that returns json.Marshal(db.Stats()).")] = None,
    rounds: Annotated[int, typer.Option(min=1, metavar="N", help="Capture rounds.")] = 3,
    interval: Annotated[str, typer.Option(
        metavar="DURATION", help="Time between rounds, e.g. 10s, 1m.")] = "10s",
    db: Annotated[list[str] | None, typer.Option(
        metavar="HOST:PORT",
        help="Database address host:port (repeatable), recorded in the manifest.")] = None,
    out: Annotated[Path, typer.Option(
        "-o", "--out", metavar="PATH", help="Bundle to write (.tar.gz or folder).")]
        = Path("bundle.tar.gz"),
    print_script: Annotated[bool, typer.Option(
        "--print-script", help="Print a POSIX shell collector for hosts without Python.")] = False,
) -> None:
    """Capture a bundle from a live Go service (run on its host)."""
    from . import collect as collector

    if print_script:
        sys.stdout.write(collector.script_text())
        return
    if pid is None:
        _err("forensics collect: --pid is required (or use --print-script)")
        raise typer.Exit(2)
    seconds = _duration(interval)
    try:
        path = collector.run(pid=pid, pprof_url=pprof_url, out=out, dbstats_url=dbstats_url,
                             rounds=rounds, interval=seconds, db_addresses=db or None,
                             progress=lambda msg: _err(msg))
    except collector.CollectError as exc:
        _err(f"forensics collect: {exc}")
        raise typer.Exit(2) from exc
    typer.echo(str(path))


def _duration(text: str) -> float:
    import re

    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip()):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
        pos = m.end()
    if pos != len(text.strip()) or pos == 0:
        raise typer.BadParameter(f"not a duration: {text!r} (use e.g. 10s, 1m30s)")
    return total


from .cli_batch import register as _register_batch  # noqa: E402

_register_batch(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
