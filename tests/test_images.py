"""Decoding gives what an image viewer shows, for each mode and metadata; which files are images."""

import logging
import os
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from catdog.data.images import find_images, list_image_folder, load_image
from catdog.data.files import image_files

RED, BLUE, WHITE = (200, 30, 60), (20, 40, 220), (255, 255, 255)


def blocks(height, width) -> np.ndarray:
    """An upright test picture with no symmetry: four colour quadrants, the top half striped black every 8
    columns (lost by decoding at too small a scale)."""
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 2, : width // 2] = RED
    img[: height // 2, width // 2:] = (30, 200, 40)
    img[height // 2:, : width // 2] = BLUE
    img[height // 2:, width // 2:] = (240, 220, 30)
    img[: height // 2, np.arange(width) % 8 < 4] = 0
    return img


def reference(array, size) -> np.ndarray:
    """`array` resized as load_image resizes, from its exact pixels."""
    return np.asarray(Image.fromarray(array).resize(size[::-1], Image.BILINEAR))


def mean_error(a, b) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


# Stored = the upright picture turned back by the orientation; a viewer turns it upright again.
STORE = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("size", [(48, 32), (50, 100)])  # (50, 100): a draft sized by the stored sides is too small
def test_exif_orientation_is_applied_after_jpeg_draft(tmp_path, orientation, size):
    upright = blocks(800, 200) if size == (50, 100) else blocks(240, 160)
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(upright).transpose(STORE[orientation]).save(tmp_path / "turned.jpg", quality=95, exif=exif)
    decoded = load_image(tmp_path / "turned.jpg", size)
    assert decoded.shape == (*size, 3)
    assert mean_error(decoded, load_image(tmp_path / "upright.jpg", size)) < 1  # as the upright file, same scale
    assert mean_error(decoded, reference(upright, size)) < 7


def test_sixteen_bit_gradient_is_scaled_not_clipped(tmp_path):
    gradient = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (4, 1))
    Image.fromarray(gradient).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode == "I;16"
    decoded = load_image(tmp_path / "g.png", (4, 256))
    expected = np.round(gradient / 257).astype(np.uint8)
    assert np.array_equal(decoded, np.repeat(expected[..., None], 3, axis=-1))


@pytest.mark.parametrize("values,mode", [
    ((np.arange(16).reshape(4, 4) * 4000).astype(">u2"), "I;16B"),  # big-endian 16-bit: / 257
    (np.arange(16, dtype=np.int32).reshape(4, 4) * 4000, "I"),  # 32-bit holding 16-bit values: / 257
    (np.arange(16, dtype=np.int32).reshape(4, 4) * 40000 - 100000, "I"),  # any other range: min..max
    (np.arange(16, dtype=np.float32).reshape(4, 4) / 15, "F"),  # float 0..1: times 255
    (np.arange(16, dtype=np.float32).reshape(4, 4) * 100 - 50, "F"),  # any other range: min..max
])
def test_deep_integer_and_float_tiffs_are_scaled_to_8_bits(tmp_path, values, mode):
    Image.fromarray(values).save(tmp_path / "x.tif")
    assert Image.open(tmp_path / "x.tif").mode == mode
    v = values.astype(float)
    if mode.startswith("I") and v.min() >= 0:
        expected = v / 257
    elif mode == "F" and v.max() <= 1:
        expected = v * 255
    else:
        expected = (v - v.min()) * 255 / (v.max() - v.min())
    assert np.array_equal(load_image(tmp_path / "x.tif", (4, 4))[..., 0], np.round(expected).astype(np.uint8))


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[:, :2] = (*RED, 255)  # opaque
    rgba[:, 2:4] = (0, 0, 255, 0)  # transparent: white, whatever its colour
    rgba[:, 4:] = (0, 0, 0, 128)  # half transparent black: mid grey
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    la.save(tmp_path / "la.png")
    decoded = load_image(tmp_path / "rgba.png", (4, 6))
    assert (decoded[:, :2] == RED).all() and (decoded[:, 2:4] == WHITE).all()
    assert np.abs(decoded[:, 4:].astype(int) - 127).max() <= 1
    gray = load_image(tmp_path / "la.png", (4, 6))
    assert (gray[:, :2] == RED[0]).all() and (gray[:, 2:4] == 255).all()


@pytest.mark.parametrize("ext", ["png", "gif"])
def test_palette_transparency_is_white(tmp_path, ext):
    palette = Image.new("P", (6, 4), 1)
    palette.putpalette([0, 0, 255, *RED, *BLUE])
    palette.paste(0, (0, 0, 3, 4))  # index 0, transparent
    palette.paste(2, (3, 0, 6, 2))
    palette.save(tmp_path / f"p.{ext}", transparency=0)
    decoded = load_image(tmp_path / f"p.{ext}", (4, 6))
    assert (decoded[:, :3] == WHITE).all() and (decoded[:2, 3:] == BLUE).all() and (decoded[2:, 3:] == RED).all()


def test_grayscale_and_one_bit_are_gray_rgb(tmp_path):
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (3, 1))
    Image.fromarray(gray).save(tmp_path / "l.png")
    assert np.array_equal(load_image(tmp_path / "l.png", (3, 16)), np.repeat(gray[..., None], 3, axis=-1))
    checker = (np.indices((4, 4)).sum(axis=0) % 2).astype(bool)
    Image.fromarray(checker).save(tmp_path / "one.png")
    assert Image.open(tmp_path / "one.png").mode == "1"
    assert np.array_equal(load_image(tmp_path / "one.png", (4, 4))[..., 1], checker * np.uint8(255))


def test_cmyk_jpeg_decodes_to_its_rgb(tmp_path):
    picture = blocks(64, 64)
    Image.fromarray(picture).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert mean_error(load_image(tmp_path / "cmyk.jpg", (64, 64)), picture) < 4


def srgb_profile(swap_red_and_blue=False) -> bytes:
    """LittleCMS's sRGB profile; swapped: its red and blue primaries exchanged (a profile that is not sRGB)."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = {bytes(profile[132 + 12 * i: 136 + 12 * i]): 136 + 12 * i
            for i in range(struct.unpack(">I", profile[128:132])[0])}
    if swap_red_and_blue:
        r, b = tags[b"rXYZ"], tags[b"bXYZ"]
        profile[r:r + 8], profile[b:b + 8] = profile[b:b + 8], profile[r:r + 8]
    return bytes(profile)


@pytest.mark.parametrize("mode", ["RGB", "P", "RGBA"])
def test_embedded_icc_profiles_are_converted_to_srgb(tmp_path, mode):
    img = Image.new("RGB", (8, 8), RED)
    img = img.quantize(4) if mode == "P" else img.convert(mode)
    img.save(tmp_path / "srgb.png", icc_profile=srgb_profile())
    img.save(tmp_path / "swapped.png", icc_profile=srgb_profile(swap_red_and_blue=True))
    assert np.abs(load_image(tmp_path / "srgb.png", (8, 8)).astype(int) - RED).max() <= 1
    assert np.abs(load_image(tmp_path / "swapped.png", (8, 8)).astype(int) - RED[::-1]).max() <= 1


def test_a_profile_that_does_not_fit_the_mode_is_ignored_with_a_warning(tmp_path, caplog):
    Image.new("L", (4, 4), 90).save(tmp_path / "gray.png", icc_profile=srgb_profile())  # an RGB profile on gray
    with caplog.at_level(logging.WARNING, "catdog.data.images"):
        assert (load_image(tmp_path / "gray.png", (4, 4)) == 90).all()
    assert "ICC profile" in caplog.text


def test_without_littlecms_a_profile_is_ignored_with_a_warning(tmp_path, caplog, monkeypatch):
    from catdog.data import images

    profile = srgb_profile(swap_red_and_blue=True) + b"\0"  # bytes of its own: no transform cached for it
    Image.new("RGB", (4, 4), RED).save(tmp_path / "swapped.png", icc_profile=profile)
    monkeypatch.setattr(images, "ImageCms", None)
    with caplog.at_level(logging.WARNING, "catdog.data.images"):
        assert (load_image(tmp_path / "swapped.png", (4, 4)) == RED).all()
    assert "no LittleCMS" in caplog.text


@pytest.mark.parametrize("ext", ["gif", "tif", "webp"])
def test_animations_and_multi_page_files_give_their_first_frame(tmp_path, ext):
    frames = [Image.new("RGB", (8, 8), c) for c in (RED, (0, 255, 0), BLUE)]
    frames[0].save(tmp_path / f"a.{ext}", save_all=True, append_images=frames[1:], lossless=True)
    assert Image.open(tmp_path / f"a.{ext}").n_frames == 3
    assert np.abs(load_image(tmp_path / f"a.{ext}", (8, 8)).astype(int) - RED).max() <= 2


def test_listing_rule_nested_hidden_links_and_skips(tmp_path, caplog):
    root = tmp_path / "data"
    cats, dogs = root / "cats", root / "dogs"
    for d in (cats / "indoor" / "sofa", dogs, root / ".hidden_class", cats / ".thumbnails"):
        d.mkdir(parents=True)
    for f in (cats / "a.jpg", cats / "indoor" / "b.PNG", cats / "indoor" / "sofa" / "c.jpeg", dogs / "d.jpg",
              cats / ".thumbnails" / "x.jpg", cats / ".e.jpg", root / ".hidden_class" / "y.jpg", root / "z.jpg"):
        Image.new("RGB", (4, 4)).save(f, format="PNG")
    (cats / "notes.txt").write_text("not an image")
    (dogs / "linked.jpg").symlink_to(cats / "a.jpg")  # a link to a file: followed
    (dogs / "gone.jpg").symlink_to(tmp_path / "missing.jpg")  # dangling: skipped
    (dogs / "more").symlink_to(cats / "indoor" / "sofa", target_is_directory=True)  # a link to a folder: followed
    (cats / "indoor" / "loop").symlink_to(cats, target_is_directory=True)  # a cycle: walked once
    with caplog.at_level(logging.WARNING, "catdog.data.images"):
        folder = list_image_folder(root)
    assert folder.class_names == ["cats", "dogs"]
    rel = {os.path.relpath(p, root): int(label) for p, label in zip(folder.paths, folder.labels)}
    assert rel == {"cats/a.jpg": 0, "cats/indoor/b.PNG": 0, "cats/indoor/sofa/c.jpeg": 0, "dogs/d.jpg": 1,
                   "dogs/linked.jpg": 1, "dogs/more/c.jpeg": 1}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Skipped 3 file(s)" in warnings[0].getMessage()
    for name in ("notes.txt", "gone.jpg", "z.jpg"):
        assert name in warnings[0].getMessage()
    assert find_images(cats)[0] == [p for p in folder.paths if os.path.relpath(p, root).startswith("cats/")]
    predicted = image_files(root)  # predict: the same rule in one walk, so the linked folder's file once
    assert predicted == find_images(root)[0]
    assert set(predicted) == {*folder.paths, str(root / "z.jpg")} - {str(dogs / "more" / "c.jpeg")}
