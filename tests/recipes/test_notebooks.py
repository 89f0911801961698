"""The Colab notebooks: valid nbformat, and every cell runs in smoke mode on a CPU.

`KERAS_BARLOW_NOTEBOOK_SMOKE=1` makes the notebooks use this checkout and the recipes'
`--smoke` runs, and kill the first run after its first backup (a simulated Colab
disconnect), so that the resume cell must continue from that backup.
"""

import json
import os
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS = {"colab_tpu.ipynb": "imagenet_resnet50_tpu.py", "colab_gpu.ipynb": "pretrain.py"}


def _text_output(cell):
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append("\n".join(output.traceback))
    return "".join(parts)


def _tagged(notebook, tag):
    (cell,) = [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]
    return cell


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_is_valid_and_says_what_to_click(name):
    notebook = nbformat.read(os.path.join(REPO, "recipes", name), as_version=4)
    nbformat.validate(notebook)
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    assert "Runtime → Change runtime type" in first.source and "Runtime → Run all" in first.source
    assert ("TPU" if "tpu" in name else "GPU") in first.source
    sources = "\n".join(cell.source for cell in notebook.cells)
    assert f'"recipes", "{NOTEBOOKS[name]}"' in sources and "drive.mount(" in sources
    assert "KERAS_BARLOW_NOTEBOOK_SMOKE" in sources


@pytest.mark.slow
@pytest.mark.tensorflow_only  # each notebook picks its own backend in its kernel: once is enough
@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_every_cell_in_smoke_mode_and_resumes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BARLOW_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("KERAS_BARLOW_REPO", REPO)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # CI checks the CPU path
    notebook = nbformat.read(os.path.join(REPO, "recipes", name), as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell's traceback, when a cell fails

    run_output = _text_output(_tagged(notebook, "run"))
    assert "simulated disconnect: killed the run after its backup step-" in run_output, run_output[-3000:]
    resume_output = _text_output(_tagged(notebook, "resume"))
    resumed_at = re.search(r"resuming at step (\d+)", resume_output)
    assert resumed_at and int(resumed_at.group(1)) >= 1, resume_output[-3000:]
    assert "done:" in resume_output

    run_name = re.search(r"RUN_NAME = [\"']([^\"']+)[\"']", notebook.cells[1].source).group(1)
    output_dir = tmp_path / "colab_runs" / run_name
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["optimizer_steps"] == 4 * 2  # --epochs 4 × the smoke run's 2 steps, none repeated or lost
    assert summary["backend"] == ("jax" if "tpu" in name else "tensorflow")
    assert not (output_dir / "backup").exists()  # deleted once the run completed
    history = (output_dir / "history.csv").read_text().strip().splitlines()
    assert history[0].startswith("epoch") and len(history) >= 2
