"""Where a TensorFlow training step spends its time, op by op, from TensorFlow's profiler.

`profile_train_step` runs the model's `train_step` under `tf.profiler.experimental` and
sums the duration of every op TensorFlow executed, attributed to a part of the step by
the op's name scope: the encoder's convolutions (forward, input gradient, filter
gradient, per stage), its batch norms and other layers, the projector's matrix products
and other layers, the loss (standardisation, `C`, its terms), the sums of the two views'
gradients and the optimizer. Unlike timing parts alone (`breakdown.py`), this sees the
whole step as it runs, ops of the two views overlapping on the inter-op threads included.

Times are *op-thread seconds*: the ops' own durations summed over every thread that ran
them, so on 2 busy threads they add up to about twice the wall time.
"""

import collections
import re
import time

# Attribution of an op to a part of the step, from its (uniquified) name scope.
GRADIENT_PREFIX = "gradient_tape/"
_UNIQUE_SUFFIX = re.compile(r"_\d+$")
_STAGE = re.compile(r"^(conv1|stack\d+|stage\d+|pool\d+)")


def _strip_suffix(segment):
    """`"dense_1_1"` → `"dense_1"`: the suffix TensorFlow adds to a reused name scope."""
    return _UNIQUE_SUFFIX.sub("", segment)


def _lookup(segment, names):
    if segment in names:
        return names[segment]
    return names.get(_strip_suffix(segment))


def keras_kind(layer):
    """The name of the nearest Keras class of `layer` (`"Conv2D"` for a `Conv2D` subclass)."""
    for cls in type(layer).__mro__:
        if cls.__module__.split(".")[0] == "keras":
            return cls.__name__
    return type(layer).__name__


def layer_kinds(model):
    """`{part: {layer name: Keras class name}}` for the encoder and the projector of `model`."""
    from keras_barlow._compat import flatten_layers

    parts = {}
    for part, sub_model in (("encoder", model.encoder), ("projector", model.projector)):
        parts[part] = {layer.name: keras_kind(layer) for layer in flatten_layers(sub_model)}
        parts[part][sub_model.name] = None  # the part's own scope
    return parts


def categorize(op_name, kinds, part_names, optimizer_scope="sgd"):
    """The part of the step an executed op belongs to.

    Args:
        op_name: the op's name as the profiler records it, `scope/.../name:OpType`.
        kinds: `layer_kinds(model)`.
        part_names: `{scope name of the encoder: "encoder", of the projector: "projector"}`.
        optimizer_scope: the optimizer's name scope (its lower-case name).

    Returns:
        `(category, stage)`: e.g. `("encoder Conv2D filter gradient", "stack3 filter
        gradient")`; `stage` names the ResNet stage and direction of a convolution, else `None`.

    Example:
    >>> kinds = {"encoder": {"enc": None, "stack3_block1_1_conv": "Conv2D"}, "projector": {"projector": None}}
    >>> categorize("gradient_tape/bt_1/enc_1/stack3_block1_1_conv_1/convolution/Conv2DBackpropFilter:X",
    ...            kinds, {"enc": "encoder", "projector": "projector"})
    ('encoder Conv2D filter gradient', 'stack3 filter gradient')
    """
    name, _, op_type = op_name.partition(":")
    backward = name.startswith(GRADIENT_PREFIX)
    segments = name[len(GRADIENT_PREFIX) :].split("/") if backward else name.split("/")
    part = next((part_names[s] for s in segments if s in part_names), None)
    if part is None:
        part = next(
            (part_names.get(_strip_suffix(s)) for s in segments if _strip_suffix(s) in part_names), None
        )
    if part is not None:
        for segment in reversed(segments):
            kind = _lookup(segment, kinds[part])
            if kind is None:
                continue
            if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv1D", "Conv3D"):
                direction = (
                    "filter gradient"
                    if "BackpropFilter" in name
                    else "input gradient"
                    if "BackpropInput" in name
                    else "backward (other)"
                    if backward
                    else "forward"
                )
                stage = _STAGE.match(segment)
                return f"{part} {kind} {direction}", f"{stage.group(1)} {direction}" if stage else None
            if kind == "BatchNormalization":
                return f"{part} batch norm (forward + backward)", None
            if kind == "Dense":
                return f"{part} Dense matmul (forward + backward)", None
            return f"{part} other layers (forward + backward)", None
        return f"{part} other (forward + backward)", None
    if segments[0].lower().startswith(optimizer_scope):
        return "optimizer update", None
    if op_type == "AddN" or segments[0].startswith("AddN"):
        return "gradient sums (both views share the weights)", None
    if "MatMul" in op_type or "MatMul" in name:
        return "C = z_aᵀ z_b (forward + backward)", None
    return "loss, standardisation, metrics (forward + backward)", None


def summarize_xspace(xspace, kinds, part_names, steps, optimizer_scope="sgd"):
    """Op-thread seconds per step of each category, from a profiler `XSpace`.

    Args:
        xspace: the parsed `.xplane.pb` of the profiled steps.
        kinds, part_names, optimizer_scope: see `categorize`.
        steps: how many steps the profile holds.

    Returns:
        dict: `categories` (category → seconds per step), `conv_stages` (`"stage direction"`,
        e.g. `"stack3 filter gradient"` → seconds per step), `op_types` (TensorFlow op type,
        e.g. `"_MklFusedBatchNormV3"` → seconds per step), `compute_threads` (threads that ran ops).
    """
    categories, stages, op_types = collections.Counter(), collections.Counter(), collections.Counter()
    threads = 0
    for plane in xspace.planes:
        metadata = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            threads += 1
            for event in line.events:
                op_name = metadata[event.metadata_id].name
                if ":" not in op_name or "::" in op_name:  # executor bookkeeping, not an op
                    continue
                category, stage = categorize(op_name, kinds, part_names, optimizer_scope)
                seconds = event.duration_ps / 1e12 / steps
                categories[category] += seconds
                op_types[op_name.partition(":")[2]] += seconds
                if stage is not None:
                    stages[stage] += seconds
    return {
        "categories": dict(categories.most_common()),
        "conv_stages": dict(sorted(stages.items())),
        "op_types": dict(op_types.most_common()),
        "compute_threads": threads,
    }


def profile_train_step(spec, steps=3, warmup=3, logdir=None):
    """Profiles `steps` calls of the model's `train_step` (TensorFlow backend).

    Args:
        spec: a benchmark spec (`recipes/benchmark.py`).
        steps: profiled steps.
        warmup: untimed steps first (tracing).
        logdir: where the profiler writes (default: a temporary folder, removed after).

    Returns:
        `summarize_xspace`'s dict, plus `wall_s_per_step` (of the profiled steps, profiler
        overhead included) and `unprofiled_s_per_step` (the same steps without the profiler).
    """
    import glob
    import shutil
    import tempfile

    import tensorflow as tf

    from benchmarking.runners import build_model, synthetic_views
    from keras_barlow._compat import tensorflow_xspace

    model = build_model(spec)
    view_a, view_b = synthetic_views(spec)
    iterator = iter(tf.data.Dataset.from_tensors((view_a, view_b)).repeat())
    step = tf.function(lambda batch: model.train_step(batch)["loss"])

    def run(calls):
        start = time.perf_counter()
        for _ in range(calls):
            float(step(next(iterator)))
        return (time.perf_counter() - start) / calls

    run(warmup)
    unprofiled = run(steps)
    own_logdir = logdir is None
    logdir = tempfile.mkdtemp(prefix="keras_barlow_profile_") if own_logdir else logdir
    try:
        tf.profiler.experimental.start(logdir)
        try:
            wall = run(steps)
        finally:
            tf.profiler.experimental.stop()
        paths = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True), key=lambda p: (len(p), p))
        xspace = tensorflow_xspace(paths[-1])
    finally:
        if own_logdir:
            shutil.rmtree(logdir, ignore_errors=True)
    kinds = layer_kinds(model)
    part_names = {model.encoder.name: "encoder", model.projector.name: "projector"}
    summary = summarize_xspace(xspace, kinds, part_names, steps, optimizer_scope=model.optimizer.name.lower())
    return {**summary, "wall_s_per_step": wall, "unprofiled_s_per_step": unprofiled}


def _table(title, seconds_by_name, total):
    rows = [
        f"| {name} | {seconds:.4f} | {100 * seconds / total:.1f} % |"
        for name, seconds in seconds_by_name.items()
    ]
    return ["", f"| {title} | op-thread s / step | share of op time |", "|---|---|---|", *rows]


def format_profile(profile, load=None):
    """`profile_train_step`'s result as Markdown tables: parts, convolution stages, top op types."""
    total = sum(profile["categories"].values())
    lines = [
        f"whole step: {profile['unprofiled_s_per_step']:.3f} s without the profiler, "
        f"{profile['wall_s_per_step']:.3f} s with it; ops ran on {profile['compute_threads']} threads, "
        f"{total:.3f} op-thread s per step" + (f" (load {load})" if load is not None else ""),
        *_table("part of the step", profile["categories"], total),
    ]
    if profile["conv_stages"]:
        lines += _table("encoder convolutions by stage", profile["conv_stages"], total)
    top_ops = dict(list(profile.get("op_types", {}).items())[:15])
    if top_ops:
        lines += _table("TensorFlow op type (15 largest)", top_ops, total)
    return "\n".join(lines)
