"""The ``batch``, ``query`` and ``diff`` commands, registered on the main typer app.

Kept apart from :mod:`forensics.cli` so the batch machinery can grow without touching the
single-bundle commands; heavy modules (pandas, pyarrow, duckdb, dask) are imported inside
the command functions so ``forensics --help`` stays instant.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

BATCH_HELP = """Analyze every bundle under SOURCE: one report each, a Parquet dataset, an index.

SOURCE is a folder (searched recursively for .tar.gz/.tgz/.tar/.zip archives and for
folders holding a capture.json), a glob ('archive/2026-*/*.tgz'), a list file (one path
or URL per line), or an fsspec URL such as s3://bucket/captures/ (needs fsspec and the
backend, e.g. s3fs). Writes DIR/reports/<bundle>.<fmt>, DIR/dataset/<table>/bundle=<id>/
part-0.parquet, DIR/bundles.parquet and DIR/index.html. A re-run skips bundles whose
content and analyzer version are unchanged (--force redoes them); a bad bundle is recorded
as failed with its reason and the batch goes on. With --executor dask, DIR must be on a
file system every Dask worker can write.

Exit codes: 0 every bundle analyzed or skipped; 2 usage error; 3 some bundles failed;
4 no bundle could be analyzed.
"""


class Executor(str, Enum):
    local = "local"
    dask = "dask"


class DiffFormat(str, Enum):
    table = "table"
    json = "json"


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, soft_wrap=False,
                   width=None if stream.isatty() else 160)


class _Progress:
    """A rich bar with counts and ETA on a terminal; one line per bundle otherwise."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.task: Any = None
        self.total = 0
        self.done = 0
        self.counts = {"ok": 0, "skipped": 0, "failed": 0}

    def __enter__(self) -> _Progress:
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(),
                                console=_console(stderr=True), transient=False)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def _text(self) -> str:
        c = self.counts
        return f"ok {c['ok']}  skipped {c['skipped']}  failed {c['failed']}"

    def start(self, total: int, skipped: int) -> None:
        self.total, self.done = total, skipped
        self.counts["skipped"] = skipped
        if self.bar is not None:
            self.task = self.bar.add_task("batch", total=total, completed=skipped,
                                          counts=self._text())
        elif skipped:
            _err(f"[{skipped}/{total}] skipped {skipped} unchanged bundles")

    def result(self, s: dict[str, Any]) -> None:
        self.done += 1
        self.counts[s["status"]] = self.counts.get(s["status"], 0) + 1
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, counts=self._text())
        else:
            why = f": {s['reason']}" if s["status"] == "failed" else ""
            _err(f"[{self.done}/{self.total}] {s['status']} {s['key']} "
                 f"({s.get('seconds') or 0:.1f} s){why}")


def _print_summary(result: Any, console: Any, max_rows: int = 50) -> None:
    from rich.table import Table
    from rich.text import Text

    from .batch import ranked

    failed = [r for r in result.results if r["status"] == "failed"]
    rows = ranked([r for r in result.results if r["status"] != "failed"]) + failed
    t = Table(title=f"{len(rows)} bundles")
    for col in ("bundle", "status", "severity", "top call site / reason", "findings", "s"):
        t.add_column(col, overflow="fold", justify="right" if col in ("findings", "s")
                     else "left")
    for r in rows[:max_rows]:
        what = r.get("reason") if r["status"] == "failed" else r.get("top_site")
        t.add_row(Text(str(r.get("key"))), r["status"], Text(r.get("severity") or ""),
                  Text(what or ""), str(r.get("findings") or 0),
                  f"{r.get('seconds') or 0:.1f}")
    console.print(t)
    if len(rows) > max_rows:
        console.print(f"... and {len(rows) - max_rows} more", highlight=False)
    c = result.counts()
    rate = (c["ok"] + c["failed"]) / result.seconds * 60 if result.seconds else 0.0
    console.print(f"ok {c['ok']}, skipped {c['skipped']}, failed {c['failed']} in "
                  f"{result.seconds:.1f} s ({rate:.1f} bundles/min)\n"
                  f"index: {result.out / 'index.html'}", highlight=False, markup=False)


def batch(
    source: Annotated[str, typer.Argument(
        metavar="SOURCE", help="Folder, glob, list file or fsspec URL.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder.")],
    formats: Annotated[str, typer.Option(
        "--format", "-f", metavar="FORMATS",
        help="Report formats, comma-separated: html, md, json.")]
        = "html,json",
    workers: Annotated[int | None, typer.Option(
        min=1, metavar="N", help="Local worker processes (default: number of cores).")] = None,
    force: Annotated[bool, typer.Option(help="Redo bundles already done.")] = False,
    executor: Annotated[Executor, typer.Option(help="Where the work runs.")]
        = Executor.local,
    scheduler: Annotated[str | None, typer.Option(
        metavar="ADDRESS",
        help="Dask scheduler address for --executor dask, e.g. tcp://host:8786.")] = None,
    max_member_bytes: Annotated[int | None, typer.Option(
        "--max-member-bytes", metavar="BYTES",
        help="Per bundle: skip members that inflate beyond this.")]
        = None,
    max_total_bytes: Annotated[int | None, typer.Option(
        "--max-total-bytes", metavar="BYTES",
        help="Per bundle: stop reading after this many bytes.")] = None,
    max_artifacts: Annotated[int | None, typer.Option(
        "--max-artifacts", min=0, metavar="N",
        help="Per bundle: parse at most this many recognised artifacts (default 1000).")]
        = None,
    parser_seconds: Annotated[float | None, typer.Option(
        "--parser-seconds", min=0, metavar="SECONDS",
        help="Time budget of one parser on one artifact, in seconds (default 120; 0 = "
             "none). An artifact over budget fails with a warning; the bundle goes on.")]
        = None,
) -> None:
    from .batch import BatchError, parse_formats, run_batch

    limits = {k: v for k, v in (("max_member_bytes", max_member_bytes),
                                ("max_total_bytes", max_total_bytes),
                                ("max_artifacts", max_artifacts),
                                ("parser_seconds", parser_seconds)) if v is not None}
    try:
        fmts = parse_formats(formats)
        with _Progress() as progress:
            result = run_batch(source, out, fmts, workers=workers, force=force,
                               executor=executor.value, scheduler=scheduler, limits=limits,
                               on_start=progress.start, on_result=progress.result)
    except BatchError as exc:
        _err(f"forensics batch: {exc}")
        raise typer.Exit(2) from exc
    _print_summary(result, _console())
    c = result.counts()
    if c["failed"] and not (c["ok"] or c["skipped"]):
        raise typer.Exit(4)
    raise typer.Exit(3 if c["failed"] else 0)


QUERY_HELP = """Run SQL (DuckDB) over a batch output folder.

Every table is a view: call_sites, findings, goroutines, stacks, sockets, connections,
fds, heap_samples, dbstats, artifacts, ... each with the partition column 'bundle' plus
bundle_content_hash and analyzer_version; 'bundles' has one row per bundle (status,
reason, severity). Example: forensics query out "SELECT function, count(DISTINCT bundle)
FROM call_sites GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
"""


def query(
    out: Annotated[Path, typer.Argument(
        metavar="DIR", help="The --out folder of 'forensics batch'.")],
    sql: Annotated[str, typer.Argument(metavar="SQL", help="The SQL statement.")],
    csv: Annotated[Path | None, typer.Option(
        "--csv", metavar="FILE", help="Write the result as CSV.")]
        = None,
    parquet: Annotated[Path | None, typer.Option(
        "--parquet", metavar="FILE", help="Write the result as Parquet.")] = None,
    max_rows: Annotated[int, typer.Option(
        min=1, metavar="N", help="Rows to print on the terminal.")] = 100,
) -> None:
    from .query import QueryError, rows_for_display, run, write_csv, write_parquet

    if csv is not None and parquet is not None:
        _err("forensics query: give --csv or --parquet, not both")
        raise typer.Exit(2)
    try:
        tbl = run(out, sql)
    except QueryError as exc:
        _err(f"forensics query: {exc}")
        raise typer.Exit(2) from exc
    if csv is not None:
        write_csv(tbl, csv)
        typer.echo(f"{tbl.num_rows} rows -> {csv}")
        return
    if parquet is not None:
        write_parquet(tbl, parquet)
        typer.echo(f"{tbl.num_rows} rows -> {parquet}")
        return
    from rich.table import Table
    from rich.text import Text

    names, rows = rows_for_display(tbl, max_rows)
    t = Table()
    for n in names:
        t.add_column(Text(n), overflow="fold")
    for r in rows:
        t.add_row(*[Text(v) for v in r])
    con = _console()
    con.print(t)
    more = f" (first {max_rows} shown)" if tbl.num_rows > max_rows else ""
    con.print(f"{tbl.num_rows} rows{more}", highlight=False)


DIFF_HELP = """Compare two captures: BEFORE and AFTER bundles, or two rounds of one bundle
(forensics diff BUNDLE --rounds 1:3). Per call site and per goroutine signature: counts
and live heap objects before, after and the delta; totals; findings that appeared or
disappeared. For bundles, each table's latest round is compared.
"""


def diff(
    before: Annotated[Path, typer.Argument(
        metavar="BEFORE", help="The earlier bundle (or the only one).")],
    after: Annotated[Path | None, typer.Argument(metavar="AFTER", help="The later bundle.")] = None,
    rounds: Annotated[str | None, typer.Option(
        metavar="FIRST:SECOND",
        help="Compare two rounds of BEFORE: FIRST:SECOND, e.g. 1:3.")] = None,
    fmt: Annotated[DiffFormat, typer.Option("--format", "-f", help="table or json.")]
        = DiffFormat.table,
    top: Annotated[int, typer.Option(
        min=1, metavar="N", help="Rows per section in the table view.")]
        = 20,
) -> None:
    from .bundle import BundleError
    from .diff import diff_bundles, diff_rounds, parse_rounds, print_terminal
    from .pipeline import analyze

    if (after is None) == (rounds is None):
        _err("forensics diff: give BEFORE AFTER, or BUNDLE --rounds FIRST:SECOND")
        raise typer.Exit(2)
    try:
        if rounds is not None:
            first, second = parse_rounds(rounds)
            d = diff_rounds(analyze(before), first, second)
        else:
            d = diff_bundles(analyze(before), analyze(after))
    except BundleError as exc:
        _err(f"forensics diff: {exc}")
        raise typer.Exit(4) from exc
    except ValueError as exc:
        _err(f"forensics diff: {exc}")
        raise typer.Exit(2) from exc
    if fmt is DiffFormat.json:
        from .report import to_json

        typer.echo(to_json(d.to_dict()))
    else:
        print_terminal(d, _console(), top=top)


def register(app: typer.Typer) -> None:
    """Add ``batch``, ``query`` and ``diff`` to the main app."""
    app.command("batch", help=BATCH_HELP)(batch)
    app.command("query", help=QUERY_HELP)(query)
    app.command("diff", help=DIFF_HELP)(diff)
