"""Chaos benchmark: N cameras recorded for M minutes while random faults hit them, then what was
lost, stuck, unplayable or wrongly indexed.

Faults (one at a time, random kind, target, length and quiet spell before, from `--seed`):
Vigil killed with SIGKILL and restarted as systemd would; a group of cameras restarted; a group
of cameras cut off the network (link down in their namespace); a recording volume pulled
(`umount -l`) and put back; SQLite's write lock held by another process. Every figure is read
from the files and the database after the run (chaos_files.py, chaos_analysis.py), never from
Vigil's state.

Run (root: it makes network namespaces and mounts): `./dev bench chaos [--cameras 50]
[--minutes 20] [--seed 1] [--faults vigil_kill,net_cut] [--keep]`. Everything it starts or
makes is undone in `finally`, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType

from benchmarks.chaos_analysis import (
    attribute,
    log_summary,
    read_gaps,
    recorded,
    restart_times,
    stuck_streams,
    unaccounted,
)
from benchmarks.chaos_faults import KINDS, Fault, Injector, plan
from benchmarks.chaos_files import (
    FileFacts,
    check_index,
    examine,
    find_files,
    read_packets,
    read_rows,
)
from benchmarks.chaos_monitor import WriteMonitor
from benchmarks.chaos_report import Result, details, render
from benchmarks.chaos_rig import CameraGroup, Disk, LockHolder, free_subnets
from benchmarks.chaos_service import VigilService
from benchmarks.common import free_port, write_section

SIZE, FPS, BITRATE_KBIT = "640x360", 15, 256
QUIET_GAP = (15.0, 30.0)  # quiet spell before each fault, s
AFTER_S = 10.0  # a fault's window runs this long past its end (recovery); < QUIET_GAP[0] - 2
MIN_HOLE_S = 1.5 / FPS  # shorter than a frame and a half: timestamp jitter, not a lost frame


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--cameras", type=int, default=50)
    add("--minutes", type=float, default=20.0, help="measured time, faults included")
    add("--seed", type=int, default=1)
    add("--faults", default=",".join(KINDS), help=f"a subset of {','.join(KINDS)}")
    add("--keep", action="store_true", help="keep the work directory and a copy of the volumes")
    add("--group-size", type=int, default=10, help="cameras per simulator and namespace")
    add("--segment-seconds", type=int, default=10)
    add("--warmup", type=float, default=15.0, help="s recorded before the first fault may come")
    add("--settle", type=float, default=20.0, help="s after the last fault before stopping")
    add("--quiet", type=float, default=10.0, help="a stream not written this long is stuck")
    add("--restart-sec", type=float, default=1.0, help="the systemd unit's RestartSec")
    add("--watchdog-sec", type=float, default=30.0, help="the systemd unit's WatchdogSec")
    add("--probe-max", type=int, default=2000, help="decode at most this many files")
    add("--output", type=Path, default=Path("docs/PERFORMANCE.md"))
    add("--no-write", action="store_true", help="print the report only")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
    if not kinds or set(kinds) - set(KINDS):
        parser.error(f"--faults: choose among {', '.join(KINDS)}")
    args.kinds = kinds
    if args.cameras < 2:
        parser.error("--cameras: at least 2 (two groups)")
    if os.geteuid() != 0:
        parser.error("run as root: it makes network namespaces and mounts tmpfs volumes")
    return args


def command_line(args: argparse.Namespace) -> str:
    line = (
        f"./dev bench chaos --cameras {args.cameras} --minutes {args.minutes:g} --seed {args.seed}"
    )
    if args.kinds != list(KINDS):
        line += f" --faults {','.join(args.kinds)}"
    for name, default in (("group_size", 10), ("segment_seconds", 10)):
        if getattr(args, name) != default:
            line += f" --{name.replace('_', '-')} {getattr(args, name)}"
    return line


def make_groups(args: argparse.Namespace) -> list[CameraGroup]:
    count = max(2, math.ceil(args.cameras / args.group_size))
    size = math.ceil(args.cameras / count)
    subnets = free_subnets(count)
    groups, first = [], 1
    for index, subnet in enumerate(subnets, 1):
        n = min(size, args.cameras - first + 1)
        groups.append(CameraGroup(index, first, n, subnet, str(os.getpid()), SIZE, FPS,
                                  BITRATE_KBIT))  # fmt: skip
        first += n
    return groups


def write_config(work: Path, groups: list[CameraGroup], disks: list[Disk],
                 segment_seconds: int) -> Path:  # fmt: skip
    volumes = "".join(f"    - {{path: {d.slot}, min_free_bytes: 16MiB, max_usage_percent: 100}}\n"
                      for d in disks)  # fmt: skip
    streams = "".join(f'  - {{name: {s}, source: "{g.url(s)}", transport: tcp}}\n'
                      for g in groups for s in g.streams)  # fmt: skip
    config = work / "vigil.yml"
    config.write_text(
        f"data_dir: {work / 'vigil'}\nlog: {{level: info}}\n"
        f"recording: {{segment_seconds: {segment_seconds}}}\n"
        f"storage:\n  policy: spread\n  volumes:\n{volumes}"
        f'api: {{listen: "127.0.0.1:{free_port()}"}}\nrtsp: {{listen: "127.0.0.1:0"}}\n'
        f"streams:\n{streams}"
    )
    return config


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    # Ctrl-C and SIGTERM both end the run through `finally` (SIGINT explicitly: a shell
    # starting the benchmark in the background would have it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run(args)
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped and undone", flush=True)
        sys.exit(130)


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="vigil-chaos-"))
    print(f"work directory: {work}", flush=True)
    # Room for the whole run on either volume (the other may be out): tmpfs takes only what
    # is written.
    mib = math.ceil(args.cameras * BITRATE_KBIT / 8 / 1024 * (args.minutes * 60 + 300) * 1.5)
    disks = [Disk(work, 1, max(256, mib)), Disk(work, 2, max(256, mib))]
    groups = make_groups(args)
    lock = LockHolder(work / "vigil" / "vigil.db")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "NOTIFY_", "WATCHDOG_"))
    }
    service: VigilService | None = None
    monitor: WriteMonitor | None = None
    injector: Injector | None = None
    try:
        for group in groups:
            group.create()
            group.sim.start()
        for disk in disks:
            disk.mount()
        config = write_config(work, groups, disks, args.segment_seconds)
        service = VigilService(work, config, env, restart_s=args.restart_sec,
                               watchdog_s=args.watchdog_sec, start_timeout_s=90)  # fmt: skip
        streams = [s for g in groups for s in g.streams]
        monitor = WriteMonitor([(d.disk, d.slot) for d in disks], streams, lock.db)
        injector = Injector(service, groups, disks, lock)
        service.start()
        monitor.start()
        deadline = time.monotonic() + 180
        while monitor.silent(5.0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not recording within 180 s: {monitor.silent(5.0)}")
            time.sleep(1)
        time.sleep(args.warmup)
        t0, load_start = time.time(), os.getloadavg()
        t1 = t0 + args.minutes * 60
        print(f"every camera recording; faults for {args.minutes:g} min", flush=True)
        faults: list[Fault] = []
        for planned in plan(args.seed, args.kinds, len(groups), len(disks), QUIET_GAP):
            if time.time() + planned.gap_s + planned.seconds + 5 > t1 - args.settle:
                break
            time.sleep(planned.gap_s)
            faults.append(injector.inject(planned))
            f = faults[-1]
            print(f"{time.time() - t0:6.0f} s  {f.name}: {f.end - f.start:.1f} s", flush=True)
        time.sleep(max(0.0, t1 - time.time()))
        load = (load_start, os.getloadavg())
        monitor.stop()
        silent_at_end = monitor.silent(args.quiet)
        service.stop()
        for group in groups:
            group.destroy()  # the cameras' CPU is the analysis's now
        print("analysing the recordings…", flush=True)
        result = analyse(args, work, groups, disks, service, monitor, faults, (t0, t1),
                         silent_at_end, load)  # fmt: skip
        report = render(result)
        print(report)
        print(details(result), flush=True)
        if not args.no_write:
            write_section(args.output, "chaos", report)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the clean-up is not to be interrupted
        print("cleaning up…", flush=True)
        steps: list[Callable[[], object]] = []
        if monitor is not None:
            steps.append(monitor.stop)
        if injector is not None:
            steps.append(injector.restore_all)  # lock released, links up, volumes back
        if service is not None:
            steps.append(service.stop)  # cleanly: the files it has open are finished
        steps += [lock.release, *[g.destroy for g in groups]]
        if args.keep:
            steps += [partial(_copy, disk, work) for disk in disks]
        steps += [d.unmount for d in disks]
        for step in steps:
            try:
                step()
            except Exception as exc:  # one step failing must not leave the rest undone
                print(f"clean-up step failed: {exc!r}", flush=True)
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _copy(disk: Disk, work: Path) -> None:
    """--keep: the volume's files outlive its tmpfs."""
    if disk.mounted:
        copy = work / f"copy-of-volume{disk.index}"
        subprocess.run(["cp", "-a", str(disk.disk), str(copy)], check=False)


def analyse(args: argparse.Namespace, work: Path, groups: list[CameraGroup], disks: list[Disk],
            service: VigilService, monitor: WriteMonitor, faults: list[Fault],
            span: tuple[float, float], silent_at_end: list[str],
            load: tuple[tuple[float, ...], tuple[float, ...]]) -> Result:  # fmt: skip
    t0, t1 = span
    files, quarantined = find_files([(d.disk, d.slot) for d in disks])
    leftovers = []  # what Vigil set aside as unusable: does it hold video?
    for path in quarantined:
        facts = FileFacts(str(path), "", 0.0)
        read_packets(facts, path, FPS)
        leftovers.append(facts)
    real_of = {}
    for facts in files:
        for disk in disks:
            if facts.path.startswith(f"{disk.slot}/"):
                real_of[facts.path] = disk.disk / Path(facts.path).relative_to(disk.slot)
    probed_how = examine(files, real_of, FPS, args.probe_max, args.seed)
    rows = read_rows(work / "vigil" / "vigil.db")
    streams = [s for g in groups for s in g.streams]
    covered = recorded(rows, files)
    loss = attribute(streams, covered, faults, t0, t1, AFTER_S, MIN_HOLE_S)
    gaps = read_gaps(work / "vigil" / "vigil.db", t1)
    counts, examples = log_summary(service.log)
    top = [(line, n) for line, (_key, n) in zip(examples, counts.most_common(), strict=False)]
    return Result(
        command=command_line(args), cameras=args.cameras, groups=len(groups),
        group_size=max(g.count for g in groups), size=SIZE, fps=FPS, bitrate_kbit=BITRATE_KBIT,
        segment_seconds=args.segment_seconds, minutes=args.minutes, t0=t0, t1=t1,
        faults=faults, loss=loss, files=files, probed_how=probed_how,
        quarantined=leftovers, check=check_index(rows, files, FPS),
        stuck=stuck_streams(monitor.samples, faults, service.events, args.quiet),
        silent_at_end=silent_at_end, unlisted=monitor.unlisted_for(args.quiet),
        unplanned=service.unplanned(), unaccounted=unaccounted(streams, covered, gaps, t0, t1),
        restarts=restart_times(faults, service.events, covered), load=load,
        restart_s=args.restart_sec, watchdog_s=args.watchdog_sec, after_s=AFTER_S,
        quiet_s=args.quiet, min_hole_s=MIN_HOLE_S, log_top=top, vigil_version=vigil_version(),
    )  # fmt: skip


def vigil_version() -> str:
    """The commit Vigil ran from, and whether src/ had changes not committed yet."""
    top = Path(__file__).resolve().parents[1]
    git = ["git", "-C", str(top)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True,
                           text=True).stdout.strip()  # fmt: skip
    return (head.stdout.strip() or "?") + (" (with uncommitted changes in src/)" if dirty else "")


if __name__ == "__main__":
    main()
