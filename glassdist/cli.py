"""The `glassdist` command line (README, docs/campaign.md). Exit codes: 0 done, 1 failed work, 2 bad input,
130 interrupted (Ctrl-C)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from hpc import localhost
from hpc.mpi import abort_on_error

from . import spec as specmod
from .errors import GlassdistError, UsageError
from .pipeline import PIPELINE, STAGES


def cmd_init(args) -> int:
    if getattr(args, "from_", None):
        return cmd_derive(args)
    if not args.preset:
        raise UsageError(
            "init needs --preset NAME (a new campaign) or --from OLDDIR (a campaign derived from "
            "another, reusing its results)"
        )
    target = Path(args.dir) / "campaign.toml"
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; edit it, or pass --force to overwrite it")
    text = specmod.apply_overrides(specmod.preset_text(args.preset), args.set or [])
    spec = specmod.loads(text, source=f"preset {args.preset} with --set")  # validate before writing
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    for warning in specmod.warnings(spec):
        print(warning, file=sys.stderr)
    print(f"wrote {target} (preset {args.preset}); next: glassdist run {args.dir}")
    return 0


def cmd_derive(args) -> int:
    """`init NEW --from OLD [--set ...]`: a derived campaign (glassdist.commands.derive); on an existing
    derived NEW, point it to its (moved) upstream again."""
    from .commands.derive import derive, relink
    from .store import Store

    new = Path(args.dir)
    if args.preset:
        raise UsageError("--preset and --from exclude each other: --from starts from OLDDIR's campaign.toml")
    if (new / "store.zarr").is_dir() and Store(new, mode="r").upstream():
        if args.set:
            raise UsageError(f"{new} is derived already: pass --from alone to point it to its upstream again")
        stages = relink(new, args.from_)
        print(f"{new} reuses {', '.join(stages)} from {args.from_} again")
        return 0
    if (new / "campaign.toml").exists() and not args.force:
        raise UsageError(f"{new / 'campaign.toml'} exists; derive into a new directory")
    stages = derive(new, args.from_, args.set or [])
    print(
        f"wrote {new / 'campaign.toml'} from {args.from_}; reuses the results of "
        f"{', '.join(stages) or 'no stage (every stage depends on what changed)'}; next: glassdist run {new}"
    )
    return 0


def cmd_estimate(args) -> int:
    from .commands.estimate import run

    return run(args.dir, calibrate_now=args.calibrate, ranks=args.ranks, gpu_check=args.calibration)


def cmd_detach(args) -> int:
    from .commands.derive import detach

    stages = detach(args.dir)
    print(f"{args.dir}: copied in the results of {', '.join(stages)}; it no longer needs its upstream campaign")
    return 0


def reused_stage(campaign_dir, name: str) -> bool:
    """Whether stage `name` of a derived campaign is reused from its upstream (printed then)."""
    from .store import Store

    if not (Path(campaign_dir) / "store.zarr").is_dir():
        return False
    store = Store(campaign_dir, mode="r")
    if name not in store.reused_stages():
        return False
    print(f"{name}: done (results reused from {store.upstream_dir()})", flush=True)
    return True


def cmd_stage(args, stage) -> int:
    return 0 if reused_stage(args.dir, stage.name) else stage.run(args.dir, args)


def run_stage(name: str, campaign_dir: str, np_: int = 1) -> int:
    """Run one stage; an MPI stage with np_ > 1 runs as np_ ranks on this host with nothing
    listening beyond loopback (hpc.localhost; a SIGTERM to this process is passed on to them:
    its ranks checkpoint and stop)."""
    stage = STAGES[name]
    if reused_stage(campaign_dir, name):
        return 0
    if stage.kind == "mpi" and np_ > 1:
        try:
            return localhost.run_mpi(np_, [sys.executable, "-m", "glassdist", name, str(campaign_dir)])
        except FileNotFoundError as exc:  # no MPI launcher
            raise UsageError(f"{exc}; or run with --np 1") from None
    return stage.run(campaign_dir, stage.arguments(np=np_))


def cmd_run(args) -> int:
    stages = args.stages.split(",") if args.stages else list(PIPELINE)
    for name in stages:
        if name not in PIPELINE:
            raise UsageError(f"unknown stage {name!r}; stages are {', '.join(PIPELINE)}")
    spec = specmod.load(args.dir)  # bad campaign file: exit 2 before any stage starts
    for name in stages:
        if why := STAGES[name].skipped(spec):
            print(f"== {name} == skipped: {why}", flush=True)
            continue
        if stage_complete(args.dir, name, spec):
            print(f"== {name} == done", flush=True)
            continue
        print(f"== {name} ==", flush=True)
        code = run_stage(name, args.dir, args.np)
        if code == INTERRUPTED:  # its ranks were interrupted (Ctrl-C): said once, by main
            raise KeyboardInterrupt
        if code:
            print(f"stage {name} exited with {code}; fix and rerun `glassdist run {args.dir}` (done work is kept)")
            return code
        mark_complete(args.dir, name, spec)
    return 0


def stage_complete(campaign_dir, name: str, spec) -> bool:
    """True when `run` finished stage `name` before (exit 0) with the same campaign sections and
    the store still says it is done (Store.stage_state; a stage with nothing to do has no
    ledger): `run` then skips it without starting it (an MPI stage would pay an mpiexec start
    and its imports, some seconds, only to find nothing to do)."""
    from .store import Store

    if not (Path(campaign_dir) / "store.zarr").exists():
        return False
    store = Store(campaign_dir, mode="r")
    if store.root.attrs.get("completed", {}).get(name) != STAGES[name].section_hash(spec):
        return False
    return store.stage_state(name, spec).name in ("done", "not started")


def mark_complete(campaign_dir, name: str, spec) -> None:
    """Record that stage `name` exited 0 with the current campaign sections (see stage_complete)."""
    from .store import Store

    if not (Path(campaign_dir) / "store.zarr").exists():
        return
    store = Store(campaign_dir)
    completed = dict(store.root.attrs.get("completed", {}))
    completed[name] = STAGES[name].section_hash(spec)
    store.root.attrs["completed"] = completed


def cmd_status(args) -> int:
    from .commands.status import print_status

    return print_status(args.dir, show_spec=args.spec, verify=args.verify)


def cmd_import(args) -> int:
    from .commands.importer import run

    return run(args)


def cmd_export(args) -> int:
    from .commands.export import export

    return export(args)


DEMO_SYSTEMS = ("kam", "abm", "ka3d")  # DIR/<system> from the preset demo-<system>


def cmd_demo(args) -> int:
    base = Path(args.dir)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in DEMO_SYSTEMS]
    if unknown or not systems:
        raise UsageError(f"--systems {args.systems!r}: use a comma-separated subset of {','.join(DEMO_SYSTEMS)}")
    for system in systems:
        cdir = base / system
        if not (cdir / "campaign.toml").exists():
            cmd_init(argparse.Namespace(dir=str(cdir), preset=f"demo-{system}", set=[], force=False, from_=None))
    for system in systems:
        print(f"=== demo: {system.upper()} ({base / system}) ===", flush=True)
        code = cmd_run(argparse.Namespace(dir=str(base / system), stages=None, np=args.np))
        if code:
            return code
    for system in systems:
        print(f"report: {base / system / 'report' / 'index.html'}")
    return 0


def default_np() -> int:
    return max(1, min(os.cpu_count() or 1, 64))


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="glassdist", description=__doc__)
    p.add_argument("--version", action="version", version=f"glassdist {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="write DIR/campaign.toml from a preset")
    s.add_argument("dir")
    s.add_argument("--preset", help=f"one of {', '.join(specmod.PRESETS)}")
    s.add_argument(
        "--from",
        dest="from_",
        metavar="OLDDIR",
        help="derive from the campaign OLDDIR: its campaign.toml with the --set changes; the results "
        "of every stage the changes leave valid are reused, not copied (docs/store.md); on an "
        "existing derived DIR, point it to its moved upstream again",
    )
    s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a key (repeatable)")
    s.add_argument("--force", action="store_true", help="overwrite an existing campaign.toml")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("run", help="run stages in order, skipping done work")
    s.add_argument("dir")
    s.add_argument("--stages", help=f"comma-separated subset of {','.join(PIPELINE)}")
    s.add_argument("--np", type=int, default=default_np(), help="MPI ranks for MPI stages (default: cores)")
    s.set_defaults(func=cmd_run)

    for name, stage in STAGES.items():
        s = sub.add_parser(name, help=stage.help)
        s.add_argument("dir")
        for option in stage.options:
            option.add_to(s)
        s.set_defaults(func=lambda a, stage=stage: cmd_stage(a, stage))

    s = sub.add_parser("status", help="per stage: done / failed / pending")
    s.add_argument("dir")
    s.add_argument("--spec", action="store_true", help="also print the spec stored with the results")
    s.add_argument(
        "--verify",
        action="store_true",
        help="read back every chunk behind every done task; mark tasks whose data are missing "
        "or damaged pending (exit 1 when there were any)",
    )
    s.set_defaults(func=cmd_status)

    s = sub.add_parser(
        "estimate",
        help="per stage: work, core-hours, wall time, store size, memory (from a "
        "calibration on this machine, cached in DIR/estimate.json)",
    )
    s.add_argument("dir")
    s.add_argument(
        "--calibrate",
        action="store_true",
        help="measure one task of each stage on this machine first (under a minute at N = 2000)",
    )
    s.add_argument("--ranks", type=int, default=default_np(), help="ranks (or Dask workers) for the wall times")
    s.add_argument(
        "--calibration",
        metavar="GPU_JSON",
        help="time the GPU stages (quench, inherent, propensity, train, gradcam) from the JSON of "
        "benchmarks/gpu_check.py run on a GPU node: GPU-hours per stage",
    )
    s.set_defaults(func=cmd_estimate)

    s = sub.add_parser(
        "detach",
        help="copy the results a derived campaign reuses into it (it then no longer needs its upstream campaign)",
    )
    s.add_argument("dir")
    s.set_defaults(func=cmd_detach)

    from .commands.submit import add_arguments as add_submit_arguments

    add_submit_arguments(sub.add_parser("submit", help="run the stages as SLURM jobs (docs/slurm.md)"))

    s = sub.add_parser(
        "import",
        help="configurations from other tools (extended XYZ, LAMMPS dump or data, HOOMD "
        "GSD, npz) into a campaign with quench.source = 'import' (docs/import.md)",
    )
    s.add_argument("dir")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument(
        "--class",
        dest="cls",
        required=True,
        metavar="NAME",
        help="the class of these configurations (one of classes.names)",
    )
    s.add_argument("--frames", help="frames of each file: K, A:B[:S] or I,J,K (default: all)")
    s.add_argument("--format", help="extxyz, lammps-dump, lammps-data, gsd or npz (default: from the suffix)")
    s.add_argument(
        "--types",
        metavar="MAP",
        help="file types to species, e.g. 1=A,2=B (default: by name, else type number k = the k-th species)",
    )
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("export", help="data out: extended XYZ (OVITO, ASE), HOOMD GSD, LAMMPS dump, CSV, NPZ")
    s.add_argument("dir")
    s.add_argument("--what", required=True, choices=("configurations", "fields"))
    s.add_argument(
        "--format",
        required=True,
        choices=("extxyz", "gsd", "lammps-dump", "csv", "npz"),
        help="configurations: extxyz, gsd, lammps-dump (each with the per-particle fields as named "
        "properties) or npz; fields: csv or npz",
    )
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--replicas", help="e.g. 0,3,10-19 (default: all done)")
    s.add_argument("--class", dest="cls", metavar="NAME", help="one of classes.names (default: both)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser(
        "demo", help="init the demo presets in DIR/kam and DIR/abm (and more with --systems), run all, report"
    )
    s.add_argument("dir", nargs="?", default="glassdist-demo")
    s.add_argument(
        "--systems", default="kam,abm", help=f"comma-separated subset of {','.join(DEMO_SYSTEMS)} (default kam,abm)"
    )
    s.add_argument("--np", type=int, default=default_np(), help="MPI ranks for MPI stages")
    s.set_defaults(func=cmd_demo)
    return p


INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports it
COUNTS = ("np", "ranks", "nproc")  # command-line counts, 1 or more


def check_counts(args) -> None:
    """Refuse a non-positive --np, --ranks or --nproc before anything runs."""
    for name in COUNTS:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name} {value}: give a count of 1 or more")


def _interrupt(signum, frame):
    """SIGINT: KeyboardInterrupt, as Python's own handler, after silencing the loggers of the event
    loops: the interrupt cancels pending zarr or Dask tasks, whose "Task was destroyed but it is
    pending!" (asyncio), or a traceback of distributed's own cancel callback when the interrupt
    lands inside its `sync` (tornado), would bury the one line that says what happened."""
    for name in ("asyncio", "tornado.application"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    raise KeyboardInterrupt


def _describe(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, message) of the errors glassdist reports without a traceback."""
    if isinstance(exc, GlassdistError):
        return exc.exit_code, f"glassdist: error: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "glassdist: interrupted; done work is kept, rerun to continue"
    return None


def check_upstream(args) -> None:
    """Every command on a derived campaign first checks that the results it reuses are still
    there and unchanged (glassdist.commands.derive.check; exit 2 otherwise)."""
    directory = getattr(args, "dir", None)
    if args.command in ("init", "demo") or not directory or not (Path(directory) / "store.zarr").is_dir():
        return
    from .commands.derive import check
    from .store import Store

    store = Store(directory, mode="r")
    check(store, specmod.load(directory) if store.upstream() else None)


def main(argv=None) -> int:
    """Run a command. An MPI stage under mpiexec runs inside hpc.mpi.abort_on_error: an error
    on one rank only aborts every rank (printed once); errors every rank shares (a bad campaign
    file) end each rank normally, printed by rank 0."""
    args = build_parser().parse_args(argv)
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):  # not where SIGINT is ignored
        signal.signal(signal.SIGINT, _interrupt)
    if args.command != "submit":  # jobs inherit submit's environment; they may span nodes
        localhost.alone_on_loopback()
    comm = None
    if args.command in STAGES and STAGES[args.command].kind == "mpi":
        from .stages.common import world

        comm = world()
    try:
        with abort_on_error(comm, _describe):
            from .stages.common import on_root

            check_counts(args)
            on_root(comm, lambda: check_upstream(args))
            return int(args.func(args) or 0)
    except (GlassdistError, KeyboardInterrupt) as exc:
        code, message = _describe(exc)
        # an interrupted MPI rank stays quiet: the `glassdist run` (or mpiexec) that started it says it once
        if comm is None or (comm.Get_rank() == 0 and code != INTERRUPTED):
            print(message, file=sys.stderr)
        return code
    except BrokenPipeError:  # the reader of our output went away (`glassdist status DIR | head -1`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1


if __name__ == "__main__":
    sys.exit(main())
