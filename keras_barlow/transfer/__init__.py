"""Transfer a pretrained encoder to detection and segmentation (KerasCV or KerasHub).

Two lines take an exported encoder to a detector or a segmenter:

```python
model = keras_barlow.transfer.detector("savedmodels/digits", num_classes=20)  # KerasCV RetinaNet
keras_barlow.transfer.compile_detector(model, "adam").fit(images_0_255, {"boxes": ..., "classes": ...})
```

Modules: `backbone` (`TransferBackbone`: the encoder behind its pretraining
normalisation, with the pyramid `P2`–`P5`), `tasks` (`detector`, `segmenter`, their
`compile_*`), `task_metrics` (COCO mAP, mean IoU), `datasets` (PASCAL VOC and Oxford-IIIT Pets
from TFDS for the recipes), `synthetic_shapes` (generated shapes with boxes and masks,
for tests and smoke runs).
"""

from keras_barlow._io import write_json as save_metrics
from keras_barlow.transfer.backbone import (
    PYRAMID_LEVELS,
    TransferBackbone,
    resolve_encoder,
    transfer_backbone,
)
from keras_barlow.transfer.synthetic_shapes import SHAPE_CLASSES, shapes_dataset
from keras_barlow.transfer.task_metrics import (
    evaluate_detector,
    mean_iou,
    mean_iou_from_labels,
    set_confidence_threshold,
)
from keras_barlow.transfer.tasks import (
    DETECTOR_KINDS,
    LIBRARIES,
    compile_detector,
    compile_segmenter,
    detection_targets,
    detector,
    segmenter,
)

__all__ = [
    "DETECTOR_KINDS",
    "LIBRARIES",
    "PYRAMID_LEVELS",
    "SHAPE_CLASSES",
    "TransferBackbone",
    "compile_detector",
    "compile_segmenter",
    "detection_targets",
    "detector",
    "evaluate_detector",
    "mean_iou",
    "mean_iou_from_labels",
    "resolve_encoder",
    "save_metrics",
    "segmenter",
    "set_confidence_threshold",
    "shapes_dataset",
    "transfer_backbone",
]
