"""`yolox`: whole objects (by default cats) from Megvii's COCO YOLOX-Nano, an ONNX file run by onnxruntime.

It finds the cat, not its face: it is the `object` of a `within` chain, whose `face` detector (`dlib_svm`)
then searches only the cat's box, where a lower face threshold stays free of false faces:

    detector:
      name: within
      options: {object: {name: yolox}, face: {name: dlib_svm, options: {threshold: -0.6, max_side: 480}}}

The network and its post-processing, as the pinned export expects them (../shared/models/yolox_nano_coco):
- input `images`, float32 1x3x416x416, BGR 0-255 without mean or std; the picture is letterboxed: scaled by
  r = min(416/H, 416/W) to (int(W r), int(H r)) with bilinear resizing, at the top left of a canvas of 114;
- output 1 x priors x 85: per prior x, y, log w, log h, objectness, 80 class scores (objectness and classes
  already through a sigmoid); priors are the cells of the stride 8, 16 and 32 grids, in that order, row-major;
  cx = (x + col) s, cy = (y + row) s, w = exp(log w) s, h = exp(log h) s, in input pixels (divide by r);
- score of a class = objectness x class score; non-maximum suppression per class.

onnxruntime runs on the CPU with one thread: the faces stage already runs one detector per worker process
(more threads per process would oversubscribe the cores), a single thread keeps every reduction in one order
so the same image gives the same bytes, and the net is small enough that one thread costs little.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from preprocessing.faces.detectors import (
    Face,
    _as_rgb,
    _largest_first,
    _too_small,
    nms,
    register,
)
from preprocessing.faces.weights import WeightsDamaged, weights_file

MODEL = "yolox_nano_coco"
WEIGHTS = "yolox_nano.onnx"
STRIDES = (8, 16, 32)
PAD_VALUE = 114
INPUT_SIZE = 416  # used when the graph's input size is not fixed
THREADS = 1

# COCO's 80 detection classes in the 0-based order of YOLOX's head (COCO category ids without the gaps).
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


def class_ids(classes: Any) -> tuple[int, ...]:
    """COCO class names or 0-based ids to sorted unique ids; an unknown name or id is an error."""
    if isinstance(classes, str | int) and not isinstance(classes, bool):
        classes = [classes]
    if not isinstance(classes, list | tuple) or not classes:
        raise ValueError(f"option 'classes' must list COCO class names or ids, e.g. ['cat'], got {classes!r}")
    ids = set()
    for item in classes:
        if isinstance(item, str) and item in COCO_CLASSES:
            ids.add(COCO_CLASSES.index(item))
        elif isinstance(item, int | np.integer) and not isinstance(item, bool) and 0 <= item < len(COCO_CLASSES):
            ids.add(int(item))
        else:
            raise ValueError(
                f"option 'classes': {item!r} is not a COCO class name or an id 0-{len(COCO_CLASSES) - 1} "
                f"(names: {', '.join(COCO_CLASSES)})"
            )
    return tuple(sorted(ids))


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not 0 <= value <= 1:
        raise ValueError(f"option {name!r} must be a number from 0 to 1, got {value!r}")
    return float(value)


def priors(size: int, strides: Iterable[int] = STRIDES) -> np.ndarray:
    """(col, row, stride) of every prior of a `size` x `size` input, in the head's order."""
    rows = []
    for stride in strides:
        cells = size // stride
        row, col = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        rows.append(np.stack([col.ravel(), row.ravel(), np.full(cells * cells, stride)], axis=1))
    return np.concatenate(rows).astype(np.float64)


def decode(output: np.ndarray, size: int, strides: Iterable[int] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """The head's raw rows (priors x (5 + classes)) to corner boxes (x0, y0, x1, y1 in input pixels) and
    per-class scores (objectness x class score)."""
    rows = np.asarray(output, dtype=np.float64).reshape(-1, np.shape(output)[-1])
    grid = priors(size, strides)
    if len(grid) != len(rows):
        raise ValueError(f"YOLOX output has {len(rows)} priors; a {size} px input has {len(grid)}")
    stride = grid[:, 2:3]
    centre = (rows[:, 0:2] + grid[:, 0:2]) * stride
    half = np.exp(rows[:, 2:4]) * stride / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    return boxes, rows[:, 4:5] * rows[:, 5:]


def select(
    boxes: np.ndarray, scores: np.ndarray, classes: Sequence[int], score_threshold: float, nms_threshold: float
) -> list[tuple[int, int, float]]:
    """Class-aware selection: (prior, class, score) of the boxes kept, per class above `score_threshold` and
    through NMS within that class only (a cat box never suppresses a dog box)."""
    found = []
    for cls in classes:
        candidates = np.flatnonzero(scores[:, cls] >= score_threshold)
        for index in nms(np.asarray(boxes[candidates], dtype=np.float64), scores[candidates, cls], nms_threshold):
            prior = int(candidates[index])
            found.append((prior, int(cls), float(scores[prior, cls])))
    return found


@register("yolox")
class YoloxDetector:
    """COCO YOLOX-Nano object boxes as `Face`s: the object's box (clipped to the image), its score
    (objectness x class), no landmarks, and the class name in `attributes["class"]`.

    Options: `classes` (COCO names or ids to keep), `score_threshold` (0.3: a cat box in 41 of the 42 shared
    cat photos, no box on anything but a cat, and none in the shared photos of people), `nms_threshold` (IoU
    above which a box of the same class is dropped; YOLOX's 0.45),
    `weights` (an ONNX export of your own with the same input and output; empty: the pinned file).
    """

    name: str

    def __init__(
        self,
        *,
        classes: Sequence[str | int] = ("cat",),
        score_threshold: float = 0.3,
        nms_threshold: float = 0.45,
        weights: str = "",
    ) -> None:
        import cv2
        import onnxruntime

        self.classes = class_ids(classes)
        self.score_threshold = _fraction("score_threshold", score_threshold)
        self.nms_threshold = _fraction("nms_threshold", nms_threshold)
        if not isinstance(weights, str):
            raise ValueError(f"option 'weights' must be a path (empty: the pinned {WEIGHTS}), got {weights!r}")
        resolved = weights_file(MODEL, WEIGHTS, weights)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = THREADS
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        try:
            session = onnxruntime.InferenceSession(
                str(resolved.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise WeightsDamaged(f"detector weights {resolved.path}: onnxruntime cannot load it ({error})") from None
        self._session = session
        self._input = session.get_inputs()[0].name
        height, width = session.get_inputs()[0].shape[2:4]
        self.input_size = height if isinstance(height, int) and height == width else INPUT_SIZE
        self._cv2 = cv2
        names = "+".join(COCO_CLASSES[i].replace(" ", "_") for i in self.classes)
        self.version = (
            f"onnxruntime-{onnxruntime.__version__}/opencv-{cv2.__version__}/yolox-{resolved.tag}/in{self.input_size}"
            f"/{names}/sc{self.score_threshold:g}/nms{self.nms_threshold:g}"
        )

    def _letterbox(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        cv2 = self._cv2
        height, width = rgb.shape[:2]
        ratio = min(self.input_size / height, self.input_size / width)
        resized = cv2.resize(rgb, (int(width * ratio), int(height * ratio)), interpolation=cv2.INTER_LINEAR)
        canvas = np.full((self.input_size, self.input_size, 3), PAD_VALUE, dtype=np.uint8)
        canvas[: resized.shape[0], : resized.shape[1]] = resized[:, :, ::-1]  # RGB -> BGR
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32), ratio

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = _as_rgb(rgb)
        if _too_small(rgb):
            return []
        blob, ratio = self._letterbox(rgb)
        (output,) = self._session.run(None, {self._input: blob})
        boxes, scores = decode(output[0], self.input_size)
        if scores.shape[1] != len(COCO_CLASSES):
            raise ValueError(f"YOLOX output has {scores.shape[1]} classes, expected COCO's {len(COCO_CLASSES)}")
        height, width = rgb.shape[:2]
        boxes = np.clip(boxes / ratio, 0, [width, height, width, height])
        faces = [
            Face(
                box=tuple(float(v) for v in boxes[prior]),  # type: ignore[arg-type]
                score=score,
                landmarks={},
                attributes={"class": COCO_CLASSES[cls]},
            )
            for prior, cls, score in select(boxes, scores, self.classes, self.score_threshold, self.nms_threshold)
        ]
        return _largest_first(face for face in faces if face.area > 0)
