"""``gameday sandbox ...``: the local sandbox cell of real processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gameday.cli.output import exit_codes, literal, print_json, progress_printer, say
from gameday.cli.params import finite, whole
from gameday.errors import InputError
from gameday.sandbox.autoscaler import (
    BOUNDS,
    DEFAULT_SCALE_DOWN_WINDOW_S,
    DEFAULT_SCALE_UP_PERCENT,
    DEFAULT_SCALE_UP_PERIOD_S,
    DEFAULT_SCALE_UP_PODS,
    DEFAULT_SYNC_PERIOD_S,
    DEFAULT_TARGET_CPU_PCT,
)
from gameday.sandbox.faults import (
    FAULT_KINDS,
    MAX_DURATION_S,
    MAX_LATENCY_MS,
    MAX_WORKERS,
    MAX_WORKERS_PER_CPU,
)
from gameday.sandbox.state import DEFAULT_STATE_DIR, MAX_CELLS, MAX_REPLICAS, MAX_SCALED_REPLICAS

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


def _text(value: Any) -> str:
    """A value from a state file or a cell, safe to print (markup is off where it is printed)."""
    return "-" if value is None else literal(value)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) \
        else _text(value)


@click.group()
def sandbox() -> None:
    """The local sandbox: cells of real processes on 127.0.0.1 that can be broken for real."""


def _bounded(name: str) -> Any:
    low, high, _ = BOUNDS[name]
    return whole(int(low), int(high)) if name == "scale_up_pods" else finite(low, high)


def _range(name: str) -> str:
    low, high, _ = BOUNDS[name]
    return f"{low:g} to {high:g}"


@sandbox.command()
@click.option("--cells", type=whole(1, MAX_CELLS), default=1, show_default=True,
              help=f"How many cells (1 to {MAX_CELLS}).")
@click.option("--replicas", type=whole(1, MAX_REPLICAS), default=3, show_default=True,
              help=f"API replicas per cell (1 to {MAX_REPLICAS}); the autoscaler's minimum.")
@click.option("--autoscale/--no-autoscale", default=True, show_default=True,
              help="A horizontal autoscaler per cell, like a Kubernetes HPA on CPU.")
@click.option("--max-replicas", type=whole(1, MAX_SCALED_REPLICAS),
              help="autoscaler: most replicas per cell (--replicas to "
                   f"{MAX_SCALED_REPLICAS}; default twice --replicas).")
@click.option("--cpu-percent", type=_bounded("target_cpu_pct"), default=DEFAULT_TARGET_CPU_PCT,
              show_default=True,
              help="autoscaler: target CPU utilisation of the replicas' requests, percent "
                   f"({_range('target_cpu_pct')}).")
@click.option("--sync-period", type=_bounded("sync_period_s"), default=DEFAULT_SYNC_PERIOD_S,
              show_default=True,
              help=f"autoscaler: seconds between decisions ({_range('sync_period_s')}).")
@click.option("--scale-up-pods", type=_bounded("scale_up_pods"), default=DEFAULT_SCALE_UP_PODS,
              show_default=True,
              help="autoscaler: replicas a scale-up may add per --scale-up-period, or "
                   f"--scale-up-percent if more ({_range('scale_up_pods')}).")
@click.option("--scale-up-percent", type=_bounded("scale_up_percent"),
              default=DEFAULT_SCALE_UP_PERCENT, show_default=True,
              help="autoscaler: percent of the replicas a scale-up may add per "
                   f"--scale-up-period ({_range('scale_up_percent')}).")
@click.option("--scale-up-period", type=_bounded("scale_up_period_s"),
              default=DEFAULT_SCALE_UP_PERIOD_S, show_default=True,
              help=f"autoscaler: seconds of the scale-up limit ({_range('scale_up_period_s')}).")
@click.option("--scale-down-window", type=_bounded("scale_down_window_s"),
              default=DEFAULT_SCALE_DOWN_WINDOW_S, show_default=True,
              help="autoscaler: stabilization window of a scale-down, seconds "
                   f"({_range('scale_down_window_s')}).")
@state_dir_option
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def up(cells: int, replicas: int, autoscale: bool, max_replicas: int | None, cpu_percent: float,
       sync_period: float, scale_up_pods: int, scale_up_percent: float, scale_up_period: float,
       scale_down_window: float, state_dir: Path, quiet: bool) -> None:
    """Start the sandbox; returns once every cell is ready."""
    from gameday.sandbox import manager
    from gameday.sandbox.autoscaler import autoscaler_config

    # Progress, results and errors pass through say()/exit_codes(), which print literally.
    with exit_codes():
        scaling = autoscaler_config(
            replicas, enabled=autoscale, max_replicas=max_replicas, target_cpu_pct=cpu_percent,
            sync_period_s=sync_period, scale_up_pods=scale_up_pods,
            scale_up_percent=scale_up_percent, scale_up_period_s=scale_up_period,
            scale_down_window_s=scale_down_window)
        result = manager.sandbox_up(state_dir, cells, replicas, progress_printer(not quiet),
                                    autoscaler=scaling)
    names = ", ".join(result.cells)
    if result.already_running:
        say(f"sandbox already running in {result.state_dir} ({names}); "
            "nothing changed. `gameday sandbox down` stops it.")
        return
    say(f"sandbox up in {result.took_s:.1f} s: {names} (state in {result.state_dir})")


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
    """Each cell: URL, replicas (desired, current, ready) and autoscaler, database nodes,
    proxy, admin endpoint."""
    from gameday.sandbox import manager

    with exit_codes():
        data = manager.sandbox_status(state_dir)
    if as_json:
        print_json(data)
        return
    if not data["cells"]:
        click.echo(f"no sandbox in {literal(data['state_dir'])}")
        return
    click.echo(f"sandbox in {literal(data['state_dir'])}: "
               f"{'running' if data['running'] else 'stopped'}")
    for cell in data["cells"]:
        click.echo(_describe_cell(cell))


def _records(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _describe_autoscaler(cell: dict[str, Any]) -> list[str]:
    lines = [f"  replicas: desired {_text(cell.get('desired_replicas'))}, "
             f"current {_text(cell.get('current_replicas'))}, "
             f"ready {_text(cell.get('ready_replicas'))}"]
    hpa = cell.get("autoscaler")
    if not isinstance(hpa, dict):
        return lines
    if hpa.get("enabled") is not True:
        lines.append("  autoscaler: off")
        return lines
    cpu = hpa.get("cpu_pct")
    lines.append(
        f"  autoscaler: cpu {'-' if cpu is None else _number(cpu) + '%'} of requests "
        f"({_number(hpa.get('cpu_request_millicores'))}m a replica), "
        f"target {_number(hpa.get('target_cpu_pct'))}%, "
        f"replicas {_number(hpa.get('min_replicas'))}..{_number(hpa.get('max_replicas'))}, "
        f"sync {_number(hpa.get('sync_period_s'))} s")
    lines.append(
        f"              scale-up max({_number(hpa.get('scale_up_pods'))} pods, "
        f"{_number(hpa.get('scale_up_percent'))}%) per {_number(hpa.get('scale_up_period_s'))} s, "
        f"scale-down window {_number(hpa.get('scale_down_window_s'))} s, "
        f"tolerance {_number(hpa.get('tolerance'))}")
    return lines


def _describe_cell(cell: dict[str, Any]) -> str:
    lines = [f"{_text(cell.get('name'))}  {_text(cell.get('status'))}  {_text(cell.get('url'))}"]
    lines.extend(_describe_autoscaler(cell))
    lines.extend(f"  replica {_text(r.get('index'))}: pid {_text(r.get('pid'))} "
                 f"port {_text(r.get('port'))} {'ready' if r.get('ready') else 'NOT READY'} "
                 f"(restarts {_text(r.get('restarts'))})"
                 for r in _records(cell.get("replicas")))
    lines.extend(f"  {_text(n.get('role')):<8} {_text(n.get('name'))}: pid {_text(n.get('pid'))} "
                 f"port {_text(n.get('port'))}"
                 for n in _records(cell.get("database")))
    proxy = cell.get("proxy")
    if isinstance(proxy, dict):
        toxic = proxy.get("toxic")
        lines.append(f"  db proxy: port {_text(proxy.get('port'))} -> "
                     f"{_text(proxy.get('upstream_port'))}"
                     + (f", latency {_number(toxic.get('latency_ms'))} ms"
                        if isinstance(toxic, dict) else ""))
    lines.append(f"  admin:    {_text(cell.get('admin_url'))}  cpus {_text(cell.get('cpus'))}")
    lines.extend(f"  fault {_text(f.get('id'))} until {_text(f.get('expires_utc'))}"
                 for f in _records(cell.get("faults")) if f.get("reverted_utc") is None)
    return "\n".join(lines)


@sandbox.command()
@click.argument("cell")
@click.argument("kind", type=click.Choice(FAULT_KINDS))
@click.option("--count", type=whole(1, MAX_REPLICAS),
              help="kill-replica: how many replicas (1 to the cell's replicas).")
@click.option("--ms", type=finite(0, MAX_LATENCY_MS),
              help=f"latency: added latency in ms (0 to {MAX_LATENCY_MS:.0f}).")
@click.option("--jitter", type=finite(0, MAX_LATENCY_MS),
              help="latency: jitter in ms (uniform, +/-; 0 to --ms).")
@click.option("--duration", type=finite(0, MAX_DURATION_S, low_open=True),
              help=f"latency, cpu: seconds until the fault expires (above 0, at most "
                   f"{MAX_DURATION_S:.0f}).")
@click.option("--workers", type=whole(1, MAX_WORKERS),
              help=f"cpu: burner processes (1 to {MAX_WORKERS_PER_CPU} per CPU of the cell).")
@click.option("--load", type=whole(1, 100),
              help="cpu: load of each burner, percent of one CPU (1 to 100).")
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
        extra = " ".join(f"{literal(k)}={literal(v)}" for k, v in details.items())
        click.echo(f"{_text(record.get('utc'))}  {_text(record.get('cell')):<8} "
                   f"{_text(record.get('event')):<20} {extra}")
