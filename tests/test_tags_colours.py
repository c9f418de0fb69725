"""The shared vocabulary, colour naming, AnimeFace colours and the human hair-colour estimate."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.params import TagsParams
from preprocessing.tags.human_hair import PHOTO_HAIR_COLORS, estimate_hair, eye_frame_matrix
from preprocessing.tags.taggers import AnimeFaceColorsTagger, FaceToTag, HumanHairTagger, TaggerError, make_tagger
from preprocessing.tags.vocabulary import Palette, Vocabulary, srgb_to_lab

VOCABULARY = Vocabulary.from_params(TagsParams())


def delta_e(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    return float(np.linalg.norm(srgb_to_lab(a) - srgb_to_lab(b)))


def test_cielab_matches_scikit_image() -> None:
    from skimage.color import rgb2lab

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(500, 3))
    expected = rgb2lab(colours[None].astype(np.float64) / 255.0)[0]
    assert np.abs(srgb_to_lab(colours) - expected).max() < 0.05
    assert np.allclose(srgb_to_lab((255, 255, 255)), (100, 0, 0), atol=0.01)


def test_nearest_colour_is_perceptual_and_can_be_restricted() -> None:
    palette = Palette.from_mapping(
        {"black": [(25, 25, 25)], "brown": [(110, 72, 44), (76, 52, 38)], "blue": [(60, 90, 200)]}
    )
    assert palette.nearest((70, 50, 40))[0] == "brown"  # the dark shade of brown is nearest
    name, distance = palette.nearest((110, 72, 44))
    assert name == "brown" and distance == pytest.approx(0.0, abs=1e-9)
    assert palette.nearest((80, 100, 190))[0] == "blue"
    assert palette.nearest((80, 100, 190), allowed=["black", "brown"])[0] in ("black", "brown")
    with pytest.raises(ValueError, match="green"):
        palette.nearest((0, 0, 0), allowed=["green"])


def test_vocabulary_order_is_hair_then_eyes_then_other() -> None:
    tags = VOCABULARY.tags
    assert tags[0] == "blonde hair" and tags[len(VOCABULARY.hair_tags)] == "blue eyes" and tags[-1] == "blush"
    vector = VOCABULARY.multi_hot(["green hair", "male"])
    assert vector.sum() == 2 and vector[tags.index("green hair")] == 1 and vector[tags.index("male")] == 1
    with pytest.raises(ValueError, match="'teal hair'"):
        VOCABULARY.multi_hot(["teal hair"])


def test_animeface_colours_are_named_with_the_palette() -> None:
    tagger = AnimeFaceColorsTagger(VOCABULARY)
    faces = [
        FaceToTag("a", b"", {"hair_color": [80, 170, 90], "skin_color": [250, 225, 210],
                             "eye_left_color": [40, 90, 210], "eye_right_color": [45, 95, 205]}, {}),
        FaceToTag("b", b"", {"hair_color": [245, 150, 190], "eye_left_color": None,
                             "eye_right_color": [220, 180, 40]}, {}),
        FaceToTag("c", b"", {"hair_color": None, "eye_left_color": None, "eye_right_color": None}, {}),
        FaceToTag("d", b"", {}, {}),
    ]  # fmt: skip
    rows = tagger.tag(faces)
    assert rows[0]["tags"] == ["green hair", "blue eyes"] and rows[0]["hair_rgb"] == (80, 170, 90)
    assert rows[0]["eye_rgb"] in ((40, 90, 210), (45, 95, 205)) and rows[0]["skin_rgb"] == (250, 225, 210)
    assert rows[0]["hair_delta_e"] < 10 and rows[0]["detail"] == ""
    assert rows[1]["tags"] == ["pink hair", "yellow eyes"]
    assert rows[2]["tags"] == [] and "hair, eyes" in rows[2]["detail"]
    assert rows[3]["tags"] == [] and "animeface" in rows[3]["detail"]


def portrait(background: tuple[int, int, int], hair: tuple[int, int, int], skin=(224, 172, 150), size=400,
             eye_y=210, distance=60):  # fmt: skip
    """A drawn head: a hair mass, a face ellipse over it, two dark eyes. Returns image and eye centres."""
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    cx = size / 2
    d = distance
    draw.ellipse((cx - 1.3 * d, eye_y - 2.2 * d, cx + 1.3 * d, eye_y + 1.2 * d), fill=hair)
    draw.ellipse((cx - 0.95 * d, eye_y - 1.0 * d, cx + 0.95 * d, eye_y + 1.75 * d), fill=skin)
    eyes = ((cx - d / 2, eye_y), (cx + d / 2, eye_y))
    for x, y in eyes:
        draw.ellipse((x - 8, y - 5, x + 8, y + 5), fill=(40, 30, 30))
    return np.asarray(image), eyes


@pytest.mark.parametrize("background", [(255, 255, 255), (20, 200, 40), (120, 190, 240), (240, 230, 120)])
@pytest.mark.parametrize(
    ("hair", "name"), [((25, 22, 22), "black"), ((200, 165, 120), "blonde"), ((140, 70, 40), "red")]
)
def test_hair_colour_ignores_the_backdrop_and_the_skin(background, hair, name) -> None:
    image, (left, right) = portrait(background, hair)
    estimate = estimate_hair(image, left, right)
    assert estimate.detail == "" and estimate.hair_rgb is not None
    assert delta_e(estimate.hair_rgb, hair) < 8, estimate
    assert delta_e(estimate.skin_rgb, (224, 172, 150)) < 5
    assert Palette.from_mapping(PHOTO_HAIR_COLORS).nearest(estimate.hair_rgb)[0] == name


def test_the_naive_box_above_the_eyes_is_what_the_backdrop_spoils() -> None:
    """The failure the seed names: a box above the eyes mixes hair with a bright backdrop."""
    import cv2

    image, (left, right) = portrait((20, 200, 40), (200, 165, 120), eye_y=200, distance=60)
    frame = cv2.warpAffine(image, eye_frame_matrix(left, right), (128, 128), flags=cv2.INTER_AREA)
    naive = tuple(int(v) for v in np.median(frame[14:50, 24:104].reshape(-1, 3), axis=0))  # 1-2.8 d above, +-2 d
    assert delta_e(naive, (200, 165, 120)) > 15
    assert delta_e(estimate_hair(image, left, right).hair_rgb, (200, 165, 120)) < 8


def test_a_bald_head_and_a_cut_off_head_give_no_colour_and_say_why() -> None:
    skin = (224, 172, 150)
    image, (left, right) = portrait((255, 255, 255), skin, skin=skin)
    estimate = estimate_hair(image, left, right)
    assert estimate.hair_rgb is None and "no hair" in estimate.detail
    image, (left, right) = portrait((255, 255, 255), (25, 22, 22), eye_y=30, distance=60)
    assert estimate_hair(image, left, right).hair_rgb is None
    with pytest.raises(ValueError, match="same point"):
        eye_frame_matrix((10, 10), (10, 10))


def test_rotated_and_scaled_heads_give_the_same_colour() -> None:
    image, (left, right) = portrait((20, 200, 40), (140, 70, 40), size=400)
    base = estimate_hair(image, left, right).hair_rgb
    rotated = Image.fromarray(image).rotate(25, resample=Image.Resampling.BILINEAR, center=(200, 200),
                                            fillcolor=(20, 200, 40))  # fmt: skip
    angle = np.deg2rad(-25)  # PIL rotates counter-clockwise; image y points down
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = [tuple(turn @ (np.array(p) - 200) + 200) for p in (left, right)]
    assert delta_e(estimate_hair(np.asarray(rotated), *moved).hair_rgb, base) < 5
    small = Image.fromarray(image).resize((100, 100), Image.Resampling.LANCZOS)
    scaled = [(x / 4, y / 4) for x, y in (left, right)]
    assert delta_e(estimate_hair(np.asarray(small), *scaled).hair_rgb, base) < 8


def test_human_hair_tagger_reads_the_photo_once_per_image_and_names_its_options(tmp_path) -> None:
    image, (left, right) = portrait((255, 255, 255), (25, 22, 22))
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    tagger = HumanHairTagger(VOCABULARY)
    rows = tagger.tag([FaceToTag("a", b"", {}, {"eye_left": left, "eye_right": right}, path),
                       FaceToTag("b", b"", {}, {"nose": (1.0, 1.0)}, path)])  # fmt: skip
    assert rows[0]["tags"] == ["black hair"] and rows[0]["hair_delta_e"] < 10
    assert rows[1]["tags"] == [] and "eye landmarks" in rows[1]["detail"]
    with pytest.raises(TaggerError, match=r"options.hair_colors.teal: not a hair colour"):
        HumanHairTagger(VOCABULARY, hair_colors={"teal": [[0, 128, 128]]})
    with pytest.raises(TaggerError, match=r"options.grabcut_iteration: unknown option"):
        HumanHairTagger(VOCABULARY, grabcut_iteration=3)
    with pytest.raises(TaggerError, match=r"name: unknown tagger 'deepdanbooru'"):
        make_tagger("deepdanbooru", {}, VOCABULARY, TagsParams())
