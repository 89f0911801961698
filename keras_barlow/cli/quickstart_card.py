"""The README.md of a quick-start export: the evaluation table (few-shot with its spread), the
protocol, and the exact command that produced the export."""

import os

ENCODER_LABELS = {"barlow_twins": "Barlow Twins", "random_init": "same architecture, random init"}


def markdown_table(evaluation_rows, shots=5, seeds=10):
    """The evaluation as a Markdown table (few-shot as mean ± std).

    Args:
        evaluation_rows: dict encoder name → `keras_barlow.evaluation.summary_row`.
        shots, seeds: the few-shot protocol, for the header.

    Returns:
        The table, one line per encoder.
    """
    first = next(iter(evaluation_rows.values()))
    knn = sorted((int(k[3:-5]), k) for k in first if k.startswith("knn"))
    header = f"| encoder | linear top-1 (C) | {shots}-shot top-1, mean ± std ({seeds} seeds) | "
    header += " | ".join(f"kNN-{k}" for k, _ in knn) + " |"
    lines = [header, "|---" * (3 + len(knn)) + "|"]
    for name, row in evaluation_rows.items():
        label = ENCODER_LABELS.get(name, name.replace("_", " "))
        cells = [
            label,
            f"{row['linear_top1']:.3f} ({row['linear_C']:g})",
            f"{row['fewshot_top1_mean']:.3f} ± {row['fewshot_top1_std']:.3f}",
            *(f"{row[key]:.3f}" for _, key in knn),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_card_readme(metrics):
    """The README.md of a quick-start export: what it is, its evaluation with spread and
    protocol, and the exact command.

    Args:
        metrics: the dict `keras_barlow.cli.quickstart.main` returns (as in `metrics.json`).

    Returns:
        Markdown text.
    """
    settings = metrics["settings"]
    size = settings["image_size"][0]
    channels = "grey digits repeated to 3 channels"
    if settings.get("grayscale"):
        channels = "turned into one grey channel inside the encoder (`grayscale=True`)"
    precision = settings.get("precision", "float32")
    trained_in = ""
    if precision != "float32":  # float32 runs keep their text
        trained_in = (
            f" under the `{precision}` dtype policy (C and the loss in float32; the evaluation and "
            "this export compute in float32)"
        )
    lines = [
        f"# {metrics['dataset']}: a Barlow Twins {settings['backbone']} (width {settings['width']}) "
        "pretrained by the quick start",
        "",
        f"Command: `{metrics['recipe']}` ({settings['epochs']} epochs, batch {settings['batch_size']}, "
        f"{size}×{size} px, preset `{settings['preset']}`, projector {settings['projector']}); "
        f"pretraining {metrics['train_seconds']:.0f} s on the CPU{trained_in}. "
        "Exact settings: `model_card.json`.",
        "",
        "Load: `keras_barlow.load_encoder(path)` (`encoder.keras`, normalisation inside; input "
        f"{size}×{size} RGB in [0, 1], {channels}), or `saved_model/` "
        "(signature `serving_default`).",
        "",
        "`cross_correlation.png`: the cross-correlation matrix C of a fixed batch of views at the end "
        "of pretraining (blue −1, white 0, red +1).",
    ]
    names = {os.path.basename(path) for path in metrics.get("pictures", ())}
    if "training.png" in names:
        lines.append(
            "`training.png`: the loss, its on- and off-diagonal terms and the kNN / linear-probe monitors "
            "over the epochs."
        )
    if "embedding.png" in names:
        lines.append(
            "`embedding.png`: a 2-D t-SNE of the test features of the Barlow Twins encoder, the same "
            "architecture randomly initialised and the raw pixels, coloured by class."
        )
    if metrics.get("evaluation"):
        lines += [
            "",
            f"## Evaluation on the {metrics['dataset']} test split",
            "",
            markdown_table(metrics["evaluation"], settings.get("shots", 5), settings.get("eval_seeds", 10)),
            "",
            f"Protocol: {metrics['evaluation_protocol']}",
        ]
    return "\n".join(lines) + "\n"
