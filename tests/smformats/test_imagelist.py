"""The .lst image-list format (SageMaker Image Classification's image format) and image files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from smformats.imagelist import (
    LstEntry,
    LstError,
    encode_image,
    format_lst,
    list_class_folders,
    parse_lst,
    read_lst,
    save_image,
    save_png,
    write_lst,
)


def test_write_then_read_round_trips_rows_in_order(tmp_path):
    entries = [LstEntry(5, 1, "dog/train_img_dog1.jpg"), (1000, 0, "cat/train_img_cat1.jpg"),
               LstEntry(22, 1, "dir with space/img 2.png")]
    path = tmp_path / "sub" / "train.lst"
    assert write_lst(path, entries) == 3
    assert path.read_text() == ("5\t1\tdog/train_img_dog1.jpg\n1000\t0\tcat/train_img_cat1.jpg\n"
                                "22\t1\tdir with space/img 2.png\n")
    assert read_lst(path) == [LstEntry(5, 1, "dog/train_img_dog1.jpg"), LstEntry(1000, 0, "cat/train_img_cat1.jpg"),
                              LstEntry(22, 1, "dir with space/img 2.png")]


def test_reads_im2rec_float_labels_crlf_and_blank_lines():
    text = "0\t2.000000\ta/x.png\r\n\n1\t0.000000\tb/y.jpg\r\n"
    assert parse_lst(text) == [LstEntry(0, 2, "a/x.png"), LstEntry(1, 0, "b/y.jpg")]


@pytest.mark.parametrize(("text", "message"), [
    ("0 1 a.png\n", "separated by tabs, not spaces"),
    ("0\t1\n", "expected 3 tab-separated columns"),
    ("0\t1\t0\ta.png\n", "only single-label rows"),
    ("0\t1.5\ta.png\n", "label '1.5' must be a non-negative integer"),
    ("0\tcat\ta.png\n", "label 'cat' is not a number"),
    ("x\t1\ta.png\n", "index 'x' is not a number"),
    ("0\t-1\ta.png\n", "must be a non-negative integer"),
    ("0\t1\t/abs/a.png\n", "must be relative"),
    ("0\t1\ts3://b/a.png\n", "must be relative"),
    ("0\t1\t../a.png\n", "must not contain '..'"),
    ("0\t1\ta\\\\b.png\n", "must use '/' separators"),
    ("0\t1\t \n", "path is empty"),
    ("3\t1\ta.png\n3\t0\tb.png\n", "line 2: index 3 was already used on line 1"),
])
def test_malformed_rows_are_named_by_file_and_line(text, message):
    with pytest.raises(LstError, match="train.lst line") as e:
        parse_lst(text, "train.lst")
    assert message in str(e.value)


@pytest.mark.parametrize(("entries", "message"), [
    ([(0, 1, "a\tb.png")], "contains a tab or newline"),
    ([(0, 1, "a.png"), (0, 2, "b.png")], "index 0 is used twice"),
    ([(0, -1, "a.png")], "label must be a non-negative integer"),
    ([(0, True, "a.png")], "label must be a non-negative integer"),
    ([(0, 1.0, "a.png")], "label must be a non-negative integer"),
    ([(0, 1)], "expected (index, label, path)"),
])
def test_bad_entries_are_refused_and_nothing_is_written(tmp_path, entries, message):
    path = tmp_path / "x.lst"
    with pytest.raises(LstError) as e:
        write_lst(path, entries)
    assert message in str(e.value)
    assert not path.exists()


def test_class_folders_are_listed_like_im2rec(tmp_path):
    for rel in ("dog/b.png", "dog/a.jpg", "cat/z.png", "cat/deep/y.JPEG", "cat/notes.txt", ".hidden/x.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    entries, classes = list_class_folders(tmp_path)
    assert classes == ["cat", "dog"]
    assert entries == [LstEntry(0, 0, "cat/z.png"), LstEntry(1, 0, "cat/deep/y.JPEG"),
                       LstEntry(2, 1, "dog/a.jpg"), LstEntry(3, 1, "dog/b.png")]
    assert parse_lst(format_lst(entries)) == entries


def test_save_png_renders_grey_digit_as_rgb_at_a_new_size(tmp_path):
    digit = np.zeros((8, 8))
    digit[2:6, 3:5] = 1.0
    path = save_png(tmp_path / "d" / "img.png", digit, size=(32, 32), mode="RGB")
    img = Image.open(path)
    assert img.format == "PNG" and img.mode == "RGB" and img.size == (32, 32)
    px = np.asarray(img)
    assert px[16, 16].tolist() == [255, 255, 255] and px[0, 0].tolist() == [0, 0, 0]


def test_encode_image_png_is_lossless_and_jpeg_decodes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(encode_image(rgb, "PNG"))))
    assert np.array_equal(back, rgb)
    jpeg = encode_image(rgb, "jpeg")
    assert jpeg[:3] == b"\xff\xd8\xff" and Image.open(io.BytesIO(jpeg)).size == (12, 10)
    assert save_image(tmp_path / "a.jpg", rgb).read_bytes()[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize(("array", "message"), [
    (np.full((4, 4), 1.5), "within [0, 1]"),
    (np.full((4, 4), 300), "within 0..255"),
    (np.zeros((4, 4, 2)), "expected an HxW"),
    (np.zeros((0, 4)), "empty"),
])
def test_bad_arrays_are_refused(tmp_path, array, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        save_png(tmp_path / "x.png", array)


def test_save_png_wants_a_png_name(tmp_path):
    with pytest.raises(ValueError, match="must end in .png"):
        save_png(tmp_path / "x.jpg", np.zeros((4, 4)))
