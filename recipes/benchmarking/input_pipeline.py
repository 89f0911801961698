"""Input-pipeline benchmark: our two-view pipeline against the official Barlow Twins one.

On one folder of real JPEG files (written once: smooth random colour fields with fine
noise, deterministic, quality 90), each side delivers batches of two normalised float32
views of the ImageNet preset, after warm-up, every side in a process of its own:

- `ours`: `keras_barlow.data.pretraining_dataset(folder, augment="imagenet")` (NHWC);
- `official`: facebookresearch/barlowtwins' PIL `Transform` in a `DataLoader` with one
  worker per core (`benchmarking.official_transform`; NCHW);
- `torchvision-v2`: the same recipe with torchvision's transforms v2 on uint8 tensors;
- `ours@PATH` (`--ours-baseline PATH`): ours with the `keras_barlow` package found in
  PATH first on the path (e.g. a `git worktree` of an earlier commit), for before/after.

The processes warm up one after the other, then time one block each in turns (ours,
official, v2, ours, ...), as `benchmarking.serving` does for training, so that they never
run at once and a change of load falls on all alike. A block first sets aside what its
pipeline buffered while it waited (ours starts a fresh iterator and discards its ramp-up;
a `DataLoader` is drained of its prefetched batches: `BatchRunner`), times `--batches`
batches (or `--seconds`), and returns once its processes are idle again, so that it takes
no CPU from the next block. Reported per side: pairs/s (median over blocks, and the slowest
and fastest block), CPU seconds per pair over all its processes (less sensitive to other
jobs than the wall clock), the ratio to the official pipeline, the load average, the CPU.

Usage (from the repository root):
    python recipes/benchmark.py --suite input-pipeline                 # 256 JPEGs 500×375 → 224, batch 64
    python recipes/benchmark.py --suite input-pipeline --repeats 7 --json runs/input_pipeline.json
    python recipes/benchmark.py --suite input-pipeline --ours-baseline /tmp/before   # + an older ours
    python recipes/benchmark.py --suite input-pipeline --smoke         # tiny, for CI

The driver imports no framework (and only NumPy and Pillow to write the images).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from benchmarking import pytorch_worker, serving
from benchmarking.timing import cpu_description, load1, load_range

RECIPES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDES = ("ours", "official", "torchvision-v2")
CLASS_FOLDER = "synthetic"  # one class sub-folder, as torchvision's ImageFolder needs
IDLE_CPU_FRACTION = 0.05  # of one core: a process tree below this is idle
IDLE_POLL_S = 0.25
IDLE_TIMEOUT_S = 120.0
MAX_DRAIN = 32
RESTART_SKIP = 2  # batches a fresh tf.data iterator ramps up in, discarded


# --- the images ------------------------------------------------------------------------------


def natural_image(rng, width, height):
    """A deterministic natural-looking uint8 RGB image `(height, width, 3)`: colour noise at
    four scales, smoothly upsampled and summed (a 1/f-like spectrum), plus pixel noise."""
    import numpy as np
    from PIL import Image

    field = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((4, 1.0), (12, 0.6), (40, 0.35), (120, 0.2)):
        small = rng.standard_normal((max(2, cells * height // width), cells, 3)).astype(np.float32)
        channels = [
            np.asarray(Image.fromarray(small[..., c], mode="F").resize((width, height), Image.BICUBIC))
            for c in range(3)
        ]
        field += weight * np.stack(channels, axis=-1)
    field += 0.08 * rng.standard_normal(field.shape).astype(np.float32)
    return np.clip(128.0 + 45.0 * field, 0, 255).astype(np.uint8)


def write_images(root, count, size, *, seed=0, quality=90):
    """Writes `count` JPEG files of `size` `(width, height)` under `root/synthetic/`, once.

    Returns:
        `root`. A `root` already holding the same images (same count, size, seed and
        quality, recorded in `root/images.json`) is left as it is.
    """
    import numpy as np
    from PIL import Image

    record = {"count": count, "size": list(size), "seed": seed, "quality": quality}
    marker = os.path.join(root, "images.json")
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f) == record:
                return root
    folder = os.path.join(root, CLASS_FOLDER)
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(natural_image(rng, *size)).save(os.path.join(folder, f"{i:05d}.jpg"), quality=quality)
    with open(marker, "w") as f:
        json.dump(record, f)
    return root


# --- CPU time of a process and its children --------------------------------------------------


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()  # after the command name (which may hold spaces)


def tree_cpu_seconds(pid=None):
    """User + system CPU seconds of process `pid` (default: this one) and its live
    descendants (e.g. `DataLoader` workers), from `/proc`; `None` where there is no `/proc`."""
    pid = os.getpid() if pid is None else pid
    try:
        tick = os.sysconf("SC_CLK_TCK")
        parents, cpu = {}, {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    fields = _stat_fields(entry)
                except OSError:  # ended meanwhile
                    continue
                parents[int(entry)] = int(fields[1])
                cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    except (OSError, ValueError):
        return None
    tree, frontier = {pid}, [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier and p not in tree]
        tree.update(children)
        frontier = children
    return sum(cpu.get(p, 0.0) for p in tree)


def wait_idle(timeout_s=IDLE_TIMEOUT_S, poll_s=IDLE_POLL_S, idle_fraction=IDLE_CPU_FRACTION):
    """Waits until this process tree uses less than `idle_fraction` of a core; returns the
    seconds waited (`timeout_s` at most)."""
    start = time.perf_counter()
    before = tree_cpu_seconds()
    if before is None:
        return 0.0
    while time.perf_counter() - start < timeout_s:
        time.sleep(poll_s)
        after = tree_cpu_seconds()
        if after - before < idle_fraction * poll_s:
            break
        before = after
    return time.perf_counter() - start


# --- the measuring processes' runner ---------------------------------------------------------


class BatchRunner:
    """Times batches of an endless iterator for `serving` (`warm_up`, `block`, `extra`).

    Between two blocks a pipeline fills its buffers, which the next block must not count.
    With `restart` (a function giving a fresh iterator: tf.data, whose autotuned prefetch
    buffer grows while the driver times the other sides, to dozens of batches), a block
    starts a new iterator, discards its first `RESTART_SKIP` batches (the ramp-up), and
    drops the iterator when done, which stops its threads. Without (a `DataLoader`, whose
    workers hold at most `prefetch_factor` batches each), a block first drains the batches
    that come in under a quarter of the warm-up's batch time (`MAX_DRAIN` at most). Then
    it times `spec["steps"]` batches (or batches for `spec["seconds"]`), records the CPU
    seconds of the process tree, and waits until the tree is idle.
    """

    spe = 1

    def __init__(self, spec, batches, extra, restart=None):
        self.spec = spec
        self.batches = batches
        self.restart = restart
        self.extra = dict(extra)
        self.typical_s = None
        self.cpu_per_pair = []
        self.drained = []
        self.idle_wait_s = []

    def _next(self):
        start = time.perf_counter()
        views = next(self.batches)
        return time.perf_counter() - start, views

    def warm_up(self, calls):
        durations = [self._next()[0] for _ in range(max(1, calls))]
        # The mean, not the median: a DataLoader's workers deliver their batches in bursts.
        self.typical_s = statistics.fmean(durations[len(durations) // 2 :])
        self.output = describe(self._next()[1])
        self.extra["output_views"] = self.output
        if self.restart:
            self.batches = None
        self.idle_wait_s.append(wait_idle())
        return durations

    def _drain(self):
        if self.restart:
            self.batches = self.restart()
            for _ in range(RESTART_SKIP):
                self._next()
            return RESTART_SKIP
        drained = 0
        while drained < MAX_DRAIN:
            seconds, _ = self._next()
            drained += 1
            if seconds > 0.25 * self.typical_s:
                break
        return drained

    def block(self, steps):
        self.drained.append(self._drain())
        cpu_before = tree_cpu_seconds()
        durations = []
        start = time.perf_counter()
        seconds = self.spec.get("seconds")
        while (len(durations) < steps) if not seconds else (time.perf_counter() - start < seconds):
            durations.append(self._next()[0])
        cpu_after = tree_cpu_seconds()
        if cpu_before is not None:
            self.cpu_per_pair.append((cpu_after - cpu_before) / (len(durations) * self.spec["batch_size"]))
        if self.restart:
            self.batches = None
        self.idle_wait_s.append(wait_idle())
        return durations

    def result(self):
        return {
            **self.extra,
            "cpu_s_per_pair": self.cpu_per_pair,
            "drained_batches": self.drained,
            "idle_wait_s": self.idle_wait_s,
        }

    def close(self):
        self.batches = None


def describe(views):
    """`[shape, dtype]` of each view of a batch (NumPy, TensorFlow or PyTorch)."""
    return [[list(view.shape), str(view.dtype).replace("torch.", "").replace("<dtype: '", "").rstrip("'>")]
            for view in views]  # fmt: skip


def _ours_batches(spec):
    import keras_barlow  # noqa: F401  (first: it switches oneDNN on before TensorFlow is imported)
    from keras_barlow import augment, data

    views = "imagenet"
    if spec["image_size"] != 224:
        views = augment.AugmentationConfig.preset("imagenet", image_size=spec["image_size"])
    dataset = data.pretraining_dataset(
        spec["images_root"], batch_size=spec["batch_size"], augment=views, seed=spec["seed"]
    ).repeat()
    return lambda: iter(dataset)


def ours_worker(spec):
    """Our measuring process: `pretraining_dataset` on the folder, served in blocks."""
    side = spec["side"]

    def make_runner(spec, measure):
        import tensorflow as tf

        import keras_barlow

        try:
            restart = _ours_batches(spec)
        except ValueError as error:
            return serving.refuse(f"{measure}: {error}")
        extra = {
            "framework": "tensorflow",
            "tensorflow": tf.__version__,
            "keras_barlow": keras_barlow.__version__,
            "keras_barlow_path": os.path.dirname(os.path.dirname(os.path.abspath(keras_barlow.__file__))),
            "output": "float32 NHWC",
        }
        return BatchRunner(spec, restart(), extra, restart=restart)

    runners, records = serving.set_up(spec, [side], make_runner)
    serving.serve(spec, runners, records, lambda: {"results": [runners[side].result()]})
    sys.stdout.flush()
    os._exit(0)  # at once: tf.data's threads can keep the interpreter's exit waiting for minutes


# --- the driver ------------------------------------------------------------------------------


def _size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 500x375, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return width, height


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="benchmark.py --suite input-pipeline",
        description="Our two-view input pipeline against the official Barlow Twins one (pairs/s).",
    )
    add = parser.add_argument
    add("--images", type=int, default=256, help="JPEG files to write (default 256)")
    add("--source-size", type=_size, default=(500, 375), help="their WIDTHxHEIGHT (default 500x375)")
    add("--image-size", type=int, default=224, help="output size of the views (default 224)")
    add("--batch-size", type=int, default=64, help="pairs per batch (default 64)")
    add("--batches", type=int, default=12, help="batches timed per block (default 12)")
    add("--seconds", type=float, help="time blocks of this many seconds instead of --batches")
    add("--repeats", type=int, default=5, help="blocks per side, in turns (default 5)")
    add("--warmup", type=int, default=6, help="untimed batches first (default 6)")
    add("--workers", type=int, help="DataLoader workers (default: one per schedulable core)")
    add("--sides", default=",".join(SIDES), help=f"comma-separated, of {', '.join(SIDES)} (default all)")
    add("--ours-baseline", action="append", default=[], metavar="PATH",
        help="also time ours with the keras_barlow package in PATH (a git worktree); repeatable")  # fmt: skip
    add("--images-dir", help="where the JPEG files are written (reused when they match; default a temp dir)")
    add("--seed", type=int, default=0, help="image, shuffle and augmentation seed")
    add("--json", help="also write the results to this JSON file")
    add("--smoke", action="store_true", help="tiny: 8 images 64x48 → 32 px, batch 4, 2 batches × 1 block")
    add("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.source_size, args.image_size, args.batch_size = 8, (64, 48), 32, 4
        args.batches, args.repeats, args.warmup, args.seconds = 2, 1, 1, None
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = [s for s in sides if s not in SIDES]
    if unknown or not sides:
        parser.error(f"--sides: unknown {unknown}; choose from {', '.join(SIDES)}")
    args.sides = sides
    for name in ("images", "image_size", "batch_size", "batches", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.images < args.batch_size:
        parser.error(f"--images ({args.images}) must hold one batch ({args.batch_size})")
    return args


def build_spec(args, images_root):
    return {
        "images_root": images_root,
        "images": args.images,
        "source_size": list(args.source_size),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.batches,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "workers": args.workers or schedulable_cpus(),
        "seed": args.seed,
    }


def schedulable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _environment(first=None):
    path = [p for p in (first, RECIPES, os.environ.get("PYTHONPATH")) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "TF_CPP_MIN_LOG_LEVEL": "2"}


def side_command(spec, side):
    """`(label, command, env)` of the process that measures `side`."""
    if side in ("official", "torchvision-v2"):
        command = [
            sys.executable,
            "-m",
            "benchmarking.official_transform",
            json.dumps({**spec, "side": side}),
        ]
        # The PyTorch sides keep freed memory in their process, as in `--compare pytorch`.
        return side, command, {**pytorch_worker.KEEP_FREED_MEMORY, **_environment()}
    baseline = os.path.abspath(side[len("ours@") :]) if side.startswith("ours@") else None
    if baseline:
        spec = {**spec, "keras_barlow_path": baseline}
    # `-P`: no working directory in front of PYTHONPATH, which names the baseline's package first.
    command = [
        sys.executable,
        *(["-P"] if baseline else []),
        "-m",
        "benchmarking.input_pipeline",
        "--worker",
        json.dumps({**spec, "side": side}),
    ]
    return side, command, _environment(first=baseline)


def start_sides(spec, sides, log=print):
    """Starts and warms up each side in turn; `(servers, {side: why it was skipped})`."""
    servers, skipped = [], {}
    for side in sides:
        label, command, env = side_command(spec, side)
        server = serving.Server(label, command, env)
        try:
            ready = server.wait_ready()
        except serving.WorkerError as error:
            if not error.refused:
                for other in servers:
                    other.close()
                raise
            skipped[side] = str(error)
            log(f"{side}: skipped ({error})")
            server.close()
            continue
        servers.append(server)
        log(f"{side}: warm (warm-up batches {', '.join(f'{s:.2f}' for s in ready['warmup'][side])} s)")
    return servers, skipped


def _rate(durations, batch_size):
    return len(durations) * batch_size / sum(durations)


def summarize_side(side, blocks, report, batch_size):
    """A side's statistics from its block lines and its report."""
    rates = [_rate(durations, batch_size) for durations in blocks]
    cpu = report.get("cpu_s_per_pair") or []
    return {
        "side": side,
        "pairs_per_s": statistics.median(rates),
        "pairs_per_s_min": min(rates),
        "pairs_per_s_max": max(rates),
        "blocks_pairs_per_s": rates,
        "cpu_s_per_pair": statistics.median(cpu) if cpu else None,
        **{k: v for k, v in report.items() if k != "cpu_s_per_pair"},
        "cpu_s_per_pair_blocks": cpu,
    }


def format_table(rows, loads, reference="official"):
    """The results as a Markdown table (pairs/s median and block range, CPU ms per pair,
    ratio to `reference`, load average during the side's blocks)."""
    ref = next((r for r in rows if r["side"] == reference), None)
    lines = [
        f"| pipeline | pairs/s (median) | blocks min–max | CPU ms/pair | vs {reference} | load |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row['pairs_per_s'] / ref['pairs_per_s']:.2f}×" if ref else "-"
        cpu = f"{1000 * row['cpu_s_per_pair']:.1f}" if row.get("cpu_s_per_pair") else "-"
        lines.append(
            f"| {row['side']} | {row['pairs_per_s']:.1f} | {row['pairs_per_s_min']:.1f}–"
            f"{row['pairs_per_s_max']:.1f} | {cpu} | {ratio} | {load_range(loads[row['side']])} |"
        )
    return "\n".join(lines)


def run(args, log=print):
    """Writes the images (once), measures the sides in turns; returns the results dict."""
    images_root = args.images_dir or os.path.join(
        tempfile.gettempdir(),
        f"keras_barlow_input_pipeline_{args.images}_{args.source_size[0]}x{args.source_size[1]}_{args.seed}",
    )
    start = time.perf_counter()
    write_images(images_root, args.images, args.source_size, seed=args.seed)
    log(f"images: {args.images} JPEGs {args.source_size[0]}×{args.source_size[1]} in {images_root} "
        f"({time.perf_counter() - start:.1f} s)")  # fmt: skip
    spec = build_spec(args, images_root)
    sides = [*args.sides, *(f"ours@{path}" for path in args.ours_baseline)]
    servers, skipped = start_sides(spec, sides, log=log)
    try:
        order = serving.interleave(
            servers,
            args.repeats,
            log=lambda repeat, label, block: log(
                f"block {repeat} {label}: {_rate(block['blocks'][label], spec['batch_size']):.1f} pairs/s "
                f"(load {block['load1']})"
            ),
        )
        reports = {server.label: server.report()["results"][0] for server in servers}
    finally:
        serving.stop_all(servers)
    rows, loads = [], {}
    for server in servers:
        blocks = [block["blocks"][label] for _, label, block in order if label == server.label]
        loads[server.label] = [block["load1"] for _, label, block in order if label == server.label]
        rows.append(summarize_side(server.label, blocks, reports[server.label], spec["batch_size"]))
    table = format_table(rows, loads)
    return {
        "spec": spec,
        "results": rows,
        "skipped": skipped,
        "loads": loads,
        "load1_end": load1(),
        "cpu": cpu_description(),
        "cores": schedulable_cpus(),
        "python": sys.version.split()[0],
        "table": table,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        ours_worker(json.loads(args.worker))
        return None
    results = run(args)
    cpu = results["cpu"]
    print()
    print(results["table"])
    print()
    cores = results["cores"]
    print(f"{cores} cores, {cpu['model']} ({', '.join(cpu['simd_flags'])}); one-minute load average "
          f"per block above (the machine's cores are shared when it exceeds {cores})")  # fmt: skip
    for side, why in results["skipped"].items():
        print(f"{side}: not measured: {why}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
