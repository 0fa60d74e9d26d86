"""``gameday sandbox ...``: the local sandbox cell of real processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gameday.cli.output import exit_codes, print_json, progress_printer, say
from gameday.errors import InputError
from gameday.sandbox.faults import FAULT_KINDS
from gameday.sandbox.state import DEFAULT_STATE_DIR

state_dir_option = click.option(
    "--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE_DIR,
    envvar="GAMEDAY_SANDBOX_DIR", show_default=True,
    help="Where the sandbox keeps its state (env GAMEDAY_SANDBOX_DIR).",
)

# Which options each fault kind takes; any other is an error, not silently ignored.
KIND_OPTIONS: dict[str, set[str]] = {
    "kill-replica": {"count"},
    "latency": {"ms", "jitter", "duration"},
    "cpu": {"workers", "load", "duration"},
    "kill-primary": set(),
}
REQUIRED_OPTIONS: dict[str, set[str]] = {"latency": {"ms", "duration"}, "cpu": {"duration"}}


@click.group()
def sandbox() -> None:
    """The local sandbox: cells of real processes on 127.0.0.1 that can be broken for real."""


@sandbox.command()
@click.option("--cells", type=int, default=1, show_default=True, help="How many cells.")
@click.option("--replicas", type=int, default=3, show_default=True, help="API replicas per cell.")
@state_dir_option
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def up(cells: int, replicas: int, state_dir: Path, quiet: bool) -> None:
    """Start the sandbox; returns once every cell is ready."""
    from gameday.sandbox import manager

    with exit_codes():
        result = manager.sandbox_up(state_dir, cells, replicas, progress_printer(not quiet))
    if result.already_running:
        say(f"sandbox already running in {result.state_dir} ({', '.join(result.cells)}); "
            "nothing changed. `gameday sandbox down` stops it.")
        return
    say(f"sandbox up in {result.took_s:.1f} s: {', '.join(result.cells)} "
        f"(state in {result.state_dir})")


@sandbox.command()
@state_dir_option
def down(state_dir: Path) -> None:
    """Stop everything the sandbox started and check, by pid, that nothing is left."""
    from gameday.sandbox import manager

    with exit_codes():
        result = manager.sandbox_down(state_dir)
    if result.survivors:
        raise click.ClickException(f"processes still running after down: {result.survivors}")
    if not result.was_running and not result.stopped:
        say(f"no sandbox running in {result.state_dir}")
        return
    say(f"sandbox down: {len(result.stopped)} processes stopped, none left running")


@sandbox.command()
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(state_dir: Path, as_json: bool) -> None:
    """Each cell: URL, replicas, database nodes, proxy, admin endpoint."""
    from gameday.sandbox import manager

    with exit_codes():
        data = manager.sandbox_status(state_dir)
    if as_json:
        print_json(data)
        return
    if not data["cells"]:
        click.echo(f"no sandbox in {data['state_dir']}")
        return
    click.echo(f"sandbox in {data['state_dir']}: {'running' if data['running'] else 'stopped'}")
    for cell in data["cells"]:
        click.echo(_describe_cell(cell))


def _describe_cell(cell: dict[str, Any]) -> str:
    lines = [f"{cell['name']}  {cell.get('status')}  {cell.get('url') or '-'}"]
    lines.extend(f"  replica {r['index']}: pid {r['pid']} port {r['port']} "
                 f"{'ready' if r['ready'] else 'NOT READY'} (restarts {r['restarts']})"
                 for r in cell.get("replicas", []))
    lines.extend(f"  {n['role']:<8} {n['name']}: pid {n['pid']} port {n['port']}"
                 for n in cell.get("database", []))
    proxy = cell.get("proxy") or {}
    if proxy:
        toxic = proxy.get("toxic")
        lines.append(f"  db proxy: port {proxy['port']} -> {proxy['upstream_port']}"
                     + (f", latency {toxic['latency_ms']:g} ms" if toxic else ""))
    lines.append(f"  admin:    {cell.get('admin_url') or '-'}  cpus {cell.get('cpus')}")
    lines.extend(f"  fault {f['id']} until {f['expires_utc']}"
                 for f in cell.get("faults", []) if f.get("reverted_utc") is None)
    return "\n".join(lines)


@sandbox.command()
@click.argument("cell")
@click.argument("kind", type=click.Choice(FAULT_KINDS))
@click.option("--count", type=int, help="kill-replica: how many replicas.")
@click.option("--ms", type=float, help="latency: added latency in ms.")
@click.option("--jitter", type=float, help="latency: jitter in ms (uniform, +/-).")
@click.option("--duration", type=float, help="latency, cpu: seconds until the fault expires.")
@click.option("--workers", type=int, help="cpu: burner processes.")
@click.option("--load", type=int, help="cpu: load of each burner, percent of one CPU.")
@state_dir_option
def fault(cell: str, kind: str, state_dir: Path, **options: Any) -> None:
    """Inject a fault in CELL: kill-replica, latency, cpu or kill-primary.

    Prints one JSON line with the fault id and its expiry.
    """
    from gameday.sandbox import manager

    params = {k: v for k, v in options.items() if v is not None}
    with exit_codes():
        _check_options(kind, params)
        record = manager.inject_fault(state_dir, cell, kind, params)
    click.echo(json.dumps({"fault_id": record["id"], "cell": cell, "kind": kind,
                           "expires_utc": record["expires_utc"], "targets": record["targets"],
                           "revert": record["revert"]}))


def _check_options(kind: str, params: dict[str, Any]) -> None:
    for name in params:
        if name not in KIND_OPTIONS[kind]:
            allowed = ", ".join(f"--{o}" for o in sorted(KIND_OPTIONS[kind])) or "no options"
            raise InputError(f"--{name}", f"options of {kind}: {allowed}", f"--{name}",
                             f"drop --{name}; it does not apply to {kind}")
    for name in sorted(REQUIRED_OPTIONS.get(kind, set()) - params.keys()):
        raise InputError(f"--{name}", f"--{name} for {kind}", "nothing",
                         f"add --{name}, e.g. `gameday sandbox fault cell-1 {kind} "
                         + ("--ms 200 --duration 10`" if kind == "latency"
                            else "--workers 1 --load 80 --duration 10`"))


@sandbox.command()
@click.argument("cell")
@click.argument("fault_id", required=False)
@state_dir_option
def revert(cell: str, fault_id: str | None, state_dir: Path) -> None:
    """Revert FAULT_ID in CELL, or every active fault of CELL; reverting twice is harmless."""
    from gameday.sandbox import manager

    with exit_codes():
        reverted = manager.revert_fault(state_dir, cell, fault_id)
    for record in reverted:
        click.echo(json.dumps({"fault_id": record["id"], "reverted_utc": record["reverted_utc"],
                               "reason": record["revert_reason"]}))


@sandbox.command()
@click.option("--cell", help="Only this cell's events.")
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def events(cell: str | None, state_dir: Path, as_json: bool) -> None:
    """The ground-truth event log: what really happened, with UTC and monotonic times."""
    from gameday.sandbox import manager

    with exit_codes():
        records = manager.sandbox_events(state_dir, cell)
    if as_json:
        print_json(records)
        return
    for record in records:
        details = {k: v for k, v in record.items() if k not in ("cell", "event", "utc", "monotonic")}
        extra = " ".join(f"{k}={v}" for k, v in details.items())
        click.echo(f"{record['utc']}  {record['cell']:<8} {record['event']:<20} {extra}")
