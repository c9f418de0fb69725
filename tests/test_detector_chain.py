"""`fallback` and `within`: detectors composed in params.yaml, on stand-in detectors (exact geometry) and on
real photos with the built-in detectors."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing.faces.detectors import Face, make_detector, register


@register("test_fixed_boxes")
class FixedBoxes:
    """Returns the boxes it was given, offset-free, clipped to nothing: a stand-in with exact geometry."""

    name: str

    def __init__(self, boxes: list[list[float]] | None = None, score: float = 1.0, min_width: int = 0) -> None:
        self.boxes = [tuple(map(float, box)) for box in boxes or []]
        self.score = score
        self.min_width = min_width
        self.version = f"fixed{self.boxes}/s{score}/w{min_width}"

    def detect(self, rgb: np.ndarray) -> list[Face]:
        if rgb.shape[1] < self.min_width:
            return []
        points = {"eye_left": (1.0, 2.0), "eye_right": (3.0, 2.0)}
        return [Face(box, self.score, points, {"seen": list(rgb.shape[:2])}) for box in self.boxes]  # type: ignore[arg-type]


def _spec(boxes: list[list[float]], score: float = 1.0, min_width: int = 0) -> dict:
    return {"name": "test_fixed_boxes", "options": {"boxes": boxes, "score": score, "min_width": min_width}}


IMAGE = np.zeros((200, 300, 3), np.uint8)


def test_fallback_takes_the_first_detector_that_finds_a_face() -> None:
    detector = make_detector(
        "fallback", {"detectors": [_spec([]), _spec([[0, 0, 10, 10]], 0.5), _spec([[1, 1, 5, 5]])]}
    )
    (face,) = detector.detect(IMAGE)
    assert face.box == (0, 0, 10, 10) and face.score == 0.5 and face.attributes["found_by"] == "test_fixed_boxes"
    assert detector.version.startswith("fallback(fixed[]") and "s0.5" in detector.version
    assert make_detector("fallback", {"detectors": [_spec([]), _spec([])]}).detect(IMAGE) == []


def test_within_maps_faces_found_in_padded_object_boxes_back_to_the_image() -> None:
    detector = make_detector(
        "within",
        {"object": _spec([[100, 50, 200, 150]]), "face": _spec([[20, 30, 60, 70]]), "padding": 0.1},
    )
    (face,) = detector.detect(IMAGE)
    # The object box grown by 10 px on every side starts at (90, 40): the crop's (20, 30) is the image's (110, 70).
    assert face.box == (110, 70, 150, 110)
    assert face.landmarks == {"eye_left": (91.0, 42.0), "eye_right": (93.0, 42.0)}
    assert face.attributes["seen"] == [120, 120] and face.attributes["object_box"] == [100, 50, 200, 150]


def test_within_clips_regions_to_the_image_and_keeps_a_face_seen_twice_once() -> None:
    detector = make_detector(
        "within", {"object": _spec([[-50, -50, 100, 100], [0, 0, 110, 110]]), "face": _spec([[5, 5, 45, 45]])}
    )
    faces = detector.detect(IMAGE)
    assert len(faces) == 1 and faces[0].box == (5, 5, 45, 45)  # both regions start at (0, 0) after clipping


def test_within_can_keep_an_object_box_whose_inside_has_no_face() -> None:
    spec = {"object": _spec([[0, 0, 50, 50]]), "face": _spec([[1, 1, 9, 9]], min_width=100)}
    assert make_detector("within", spec).detect(IMAGE) == []
    (face,) = make_detector("within", {**spec, "object_as_face": True}).detect(IMAGE)
    assert face.box == (0, 0, 50, 50) and face.attributes["object_index"] == 0


@pytest.mark.parametrize(
    ("name", "options", "says"),
    [
        ("fallback", {"detectors": [_spec([])]}, "at least two detectors"),
        (
            "fallback",
            {"detectors": [_spec([]), {"name": "nope"}]},
            "option 'detectors[1]': unknown face detector 'nope'",
        ),
        ("fallback", {"detectors": [_spec([]), {"name": "dlib_hog", "options": {"upsampel": 1}}]}, "'upsampel'"),
        ("within", {"object": "yolox", "face": _spec([])}, "option 'object' must be a mapping"),
        ("within", {"object": _spec([]), "face": {"name": "dlib_hog", "opts": {}}}, "unknown key(s) 'opts'"),
        ("within", {"object": _spec([]), "face": _spec([]), "padding": 3}, "option 'padding'"),
    ],
)
def test_a_wrong_spec_names_the_option(name: str, options: dict, says: str) -> None:
    with pytest.raises(ValueError) as error:
        make_detector(name, options)
    assert says in str(error.value)


def test_real_photos_through_a_chain_of_built_in_detectors() -> None:
    """Fallback: the photo of a person is dlib HOG's, the cat photo falls to the cat cascade. Within: the faces
    dlib HOG finds in the padded box of its own first pass is the one it finds in the whole photo."""
    import skimage.data

    chain = make_detector("fallback", {"detectors": [{"name": "dlib_hog"}, {"name": "opencv_cat"}]})
    person = chain.detect(skimage.data.astronaut())[0]
    assert person.attributes["found_by"] == "dlib_hog" and "eye_left" in person.landmarks
    (cat,) = chain.detect(skimage.data.chelsea())
    assert cat.attributes["found_by"] == "opencv_cat"
    assert cat.box == make_detector("opencv_cat", {}).detect(skimage.data.chelsea())[0].box

    photo = skimage.data.astronaut()
    direct = make_detector("dlib_hog", {}).detect(photo)
    within = make_detector("within", {"object": {"name": "dlib_hog"}, "face": {"name": "dlib_hog"}, "padding": 1.0})
    inside = within.detect(photo)
    assert inside and direct and inside == within.detect(photo)
    found, whole = inside[0], direct[0]  # the astronaut's face (dlib HOG's second box is on her suit)
    assert all(abs(a - b) <= 0.1 * (whole.box[2] - whole.box[0]) for a, b in zip(found.box, whole.box, strict=True))
    assert found.attributes["object_box"] == list(whole.box)


# The real-photo settings docs/faces.md recommends: each validates as a domain's params and finds the face
# of a real picture of its domain with the real weights.
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_PICTURES = {
    "human": "human/prnet_image00475.jpg",  # a profile
    "anime": "anime/moeface_akiyama_mio_face_149_174_127.png",
    "cat": "cat/catfaceid_c_c10.jpeg",
}


def _documented_settings() -> dict:
    import re

    import yaml

    text = (REPO / "docs" / "faces.md").read_text(encoding="utf-8")
    section = text[text.index("### Settings for real photos") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "docs/faces.md: no yaml block under 'Settings for real photos'"
    return yaml.safe_load(block.group(1))["domains"]


def test_the_documented_real_photo_settings_are_valid_domain_params() -> None:
    from core.params import DomainParams

    settings = _documented_settings()
    assert set(settings) == set(REAL_PICTURES)
    for domain, values in settings.items():
        parsed = DomainParams.model_validate({"source": {"kind": "folder", "path": "x"}, **values})
        assert parsed.detector.name == values["detector"]["name"], domain


@pytest.mark.skipif(not (SHARED / "models").is_dir(), reason="../shared/models absent: the real detector weights")
@pytest.mark.parametrize("domain", sorted(REAL_PICTURES))
def test_the_documented_real_photo_settings_find_a_real_face(domain: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from preprocessing.faces.align import align_face
    from preprocessing.images import load_rgb

    monkeypatch.setenv("TWINGAN_DETECTOR_WEIGHTS", str(SHARED / "models"))
    path = SHARED / "data" / "real" / REAL_PICTURES[domain]
    if not path.is_file():
        pytest.skip(f"{path} absent")
    settings = _documented_settings()[domain]
    detector = make_detector(settings["detector"]["name"], settings["detector"].get("options") or {})
    faces = detector.detect(np.asarray(load_rgb(str(path))))
    assert faces, f"{domain}: no face in {path.name}"
    spec = {"eye_distance": 0.3, "eye_height": 0.4, "margin": 1.5, "shift_up": 0.0, **settings["align"]}
    assert align_face(faces[0], spec).size == settings["align"]["size"]
