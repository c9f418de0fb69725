"""How well translations keep what the input had or what was asked for: pose, and the requested hair colour.

Each summary is a dict of JSON-ready values; a value that cannot be computed is None with a `<name>_status`
entry saying why (too few pairs, no variance, no face found), never a number made up for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evaluation.pose import Pose
from preprocessing.faces.detectors import Face
from preprocessing.tags.taggers import AnimeFaceColorsTagger, FaceToTag
from preprocessing.tags.vocabulary import Vocabulary


def _angle_difference(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def not_computed(name: str, reason: str) -> dict[str, Any]:
    return {name: None, f"{name}_status": f"not computed: {reason}"}


def pose_agreement(
    pairs: Sequence[tuple[Pose, Pose]], *, source_min_yaw: float, target_min_yaw: float
) -> dict[str, Any]:
    """Input pose against output pose over the pairs where both were measured.

    - pose_roll_error_degrees: mean absolute difference of the rolls;
    - pose_yaw_correlation: Pearson correlation of the two yaw proxies (their scales differ, their order
      should not); needs 3 pairs and some spread on both sides;
    - pose_flip_rate: among pairs turned clearly on both sides (|yaw| above each side's threshold), the
      fraction turned opposite ways: the orientation flips the original Twin-GAN reported.
    """
    out: dict[str, Any] = {"pose_pairs": len(pairs)}
    if not pairs:
        out.update(not_computed("pose_roll_error_degrees", "no input-output pair with a pose on both sides"))
        out.update(not_computed("pose_yaw_correlation", "no input-output pair with a pose on both sides"))
        out.update(not_computed("pose_flip_rate", "no input-output pair with a pose on both sides"))
        return out
    source = np.array([[p.roll, p.yaw] for p, _ in pairs])
    target = np.array([[q.roll, q.yaw] for _, q in pairs])
    out["pose_roll_error_degrees"] = float(
        np.mean([_angle_difference(a, b) for a, b in zip(source[:, 0], target[:, 0], strict=True)])
    )
    if len(pairs) < 3:
        out.update(not_computed("pose_yaw_correlation", f"{len(pairs)} pairs (3 needed)"))
    elif np.std(source[:, 1]) < 1e-9 or np.std(target[:, 1]) < 1e-9:
        out.update(not_computed("pose_yaw_correlation", "the yaw of one side does not vary"))
    else:
        out["pose_yaw_correlation"] = float(np.corrcoef(source[:, 1], target[:, 1])[0, 1])
    clear = (np.abs(source[:, 1]) > source_min_yaw) & (np.abs(target[:, 1]) > target_min_yaw)
    out["pose_turned_pairs"] = int(clear.sum())
    if not clear.any():
        out.update(not_computed("pose_flip_rate", "no pair turned clearly on both sides"))
    else:
        flips = np.sign(source[clear, 1]) != np.sign(target[clear, 1])
        out["pose_flip_rate"] = float(flips.mean())
    return out


def hair_colour_of(face: Face, tagger: AnimeFaceColorsTagger) -> str | None:
    """The vocabulary's name of a drawn face's hair colour, measured as the anime tags stage measures it
    (AnimeFace's box, named by the animeface_colors tagger); None when no colour could be measured."""
    row = tagger.tag([FaceToTag(face_id="", crop=b"", attributes=face.attributes, landmarks=face.landmarks)])[0]
    hair = [tag for tag in row["tags"] if tag.endswith(" hair")]
    return hair[0].removesuffix(" hair") if hair else None


def hair_agreement(found: Mapping[str, Sequence[list[Face]]], vocabulary: Vocabulary) -> dict[str, Any]:
    """`found[colour]`: AnimeFace's faces in each output asked for `colour` hair. The fraction of outputs
    with a measured hair colour whose colour is the one asked for, overall and per colour."""
    tagger = AnimeFaceColorsTagger(vocabulary)
    per_colour: dict[str, Any] = {}
    agree = measured = outputs = 0
    for colour, outputs_faces in found.items():
        named = [hair_colour_of(faces[0], tagger) if faces else None for faces in outputs_faces]
        hits = [name for name in named if name is not None]
        outputs += len(named)
        measured += len(hits)
        agree += sum(name == colour for name in hits)
        per_colour[colour] = sum(name == colour for name in hits) / len(hits) if hits else None
    out: dict[str, Any] = {"hair_outputs": outputs, "hair_outputs_measured": measured}
    if not measured:
        out.update(not_computed("hair_agreement", f"AnimeFace found no face in any of the {outputs} outputs"))
    else:
        out["hair_agreement"] = agree / measured
    out["hair_agreement_by_colour"] = per_colour
    return out
