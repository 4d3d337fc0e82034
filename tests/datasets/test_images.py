"""Image files as the data pipeline reads them: 8-bit RGB from every mode, unreadable files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from clip_lightning.datasets import (
    ImageFiles,
    IndexedDataset,
    MultiLabelImageFiles,
    find_unreadable,
    image_problem,
    read_rgb,
    to_rgb,
    verify,
)
from clip_lightning.datasets.samples import unreadable_marks
from clip_lightning.errors import UnreadableImageError, UserError
from clip_lightning.tasks.unreadable import raise_on_every_process, read_error
from tests.helpers import make_image_folder, write_bad_image


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(read_rgb(str(path)))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    rgb = _pixels(tmp_path / "deep.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255] and (rgb == rgb[..., :1]).all()
    # What Pillow's convert("RGB") (and OpenAI's preprocess) does: everything above 255 clips to white.
    assert np.asarray(Image.open(tmp_path / "deep.png").convert("RGB"))[0, :, 0].tolist() == [
        0,
        255,
        255,
        255,
    ]


def test_int_and_float_images_are_scaled_to_eight_bits() -> None:
    sixteen = Image.fromarray(np.array([[0, 257, 65535]], dtype=np.int32))
    assert sixteen.mode == "I" and np.asarray(to_rgb(sixteen))[0, :, 0].tolist() == [0, 1, 255]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32))
    assert unit.mode == "F" and np.asarray(to_rgb(unit))[0, :, 0].tolist() == [0, 128, 255, 0]
    wide = Image.fromarray(np.array([[-1.0, 1.0, 3.0]], dtype=np.float32))  # outside 0..1: its own range
    assert np.asarray(to_rgb(wide))[0, :, 0].tolist() == [0, 128, 255]
    flat = Image.fromarray(np.full((2, 2), -70000, dtype=np.int32))
    assert np.asarray(to_rgb(flat)).max() == 0


def test_other_modes_convert_exactly_as_pillow_does() -> None:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (9, 7, 4), dtype=np.uint8))
    for image in (rgb, rgb.convert("L"), rgb.convert("P"), rgba, rgb.convert("CMYK"), rgb.convert("1")):
        assert to_rgb(image).tobytes() == image.convert("RGB").tobytes()


def test_animated_gif_reads_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (6, 6), colour) for colour in ("red", "blue", "green")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert getattr(Image.open(tmp_path / "anim.gif"), "n_frames", 1) == 3
    assert _pixels(tmp_path / "anim.gif")[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    ("kind", "name", "decode", "reason"),
    [
        ("truncated", "t.png", True, "image file is truncated"),
        ("empty", "e.jpg", False, "an empty file (0 bytes)"),
        ("text", "x.png", False, "not an image file Pillow recognises"),
    ],
)
def test_unreadable_files_are_found_with_a_reason(
    tmp_path: Path, kind: str, name: str, decode: bool, reason: str
) -> None:
    bad = str(write_bad_image(tmp_path / name, kind))
    Image.new("RGB", (4, 4)).save(tmp_path / "good.png")
    good = str(tmp_path / "good.png")
    problem = image_problem(bad, decode=decode)
    assert problem is not None and reason in problem and "\n" not in problem
    assert image_problem(good) is None and image_problem(good, decode=False) is None
    for workers in (1, 3):
        assert find_unreadable([good, bad, good], decode=True, workers=workers) == [(bad, problem)]
    if kind == "truncated":  # its header is fine: only decoding finds it
        assert image_problem(bad, decode=False) is None


def test_a_file_that_fails_to_decode_is_named_with_its_split_in_one_line(tmp_path: Path) -> None:
    bad = str(write_bad_image(tmp_path / "cat" / "t.png", "truncated"))
    files = ImageFiles([bad], [0], ["cat"], split="test")
    with pytest.raises(UnreadableImageError) as raised:
        files[0]
    message = str(raised.value)
    assert isinstance(raised.value, UserError) and "\n" not in message
    assert message.startswith(f"cannot read image {bad} of the test split (OSError: image file is truncated")
    assert "--data.skip_bad_images true" in message
    # Raised in a DataLoader worker, it reaches the main process as the same one line.
    loader = DataLoader(IndexedDataset(files, lambda image: torch.zeros(1)), num_workers=1)
    with pytest.raises(UnreadableImageError) as from_worker:
        next(iter(loader))
    assert str(from_worker.value) == message


def test_an_unreadable_image_can_come_marked_in_a_batch_of_the_same_structure(tmp_path: Path) -> None:
    """Under DDP the data marks an unreadable sample (blank image, valid label, index -(i + 1))
    rather than raise in one process; the batch collates as any other."""
    make_image_folder(tmp_path, ["a"], {"test": 2})
    good = [str(tmp_path / "test" / "a" / f"{i}.png") for i in range(2)]
    bad = str(write_bad_image(tmp_path / "test" / "a" / "t.png", "truncated"))
    files = ImageFiles([good[0], bad, good[1]], [1, 1, 1], ["x", "y"], split="test")

    def transform(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.resize((4, 4)), dtype=np.float32).copy())

    with pytest.raises(UnreadableImageError):  # unmarked (one process): raised as it is read
        IndexedDataset(files, transform)[1]
    images, labels, index = next(iter(DataLoader(IndexedDataset(files, transform, mark_unreadable=True), 3)))
    assert index.tolist() == [0, -2, 2] and labels.tolist() == [1, 0, 1]  # 0: a class every step accepts
    assert images.shape == (3, 4, 4, 3) and not images[1].any()
    assert unreadable_marks(torch.tensor([0, -2, 2, -2, -1])) == [0, 1]  # padding may repeat a sample
    multi = MultiLabelImageFiles([good[0], bad], np.array([[1, 0, 1], [0, 1, 0]]), ["x", "y", "z"])
    _, labels, index = next(iter(DataLoader(IndexedDataset(multi, transform, mark_unreadable=True), 2)))
    assert labels.tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]] and index.tolist() == [0, -2]


def test_images_found_unreadable_are_raised_once_naming_each(tmp_path: Path) -> None:
    """Without a process group: nothing found is no error; one is the data's own message; several
    are listed in the splits' order."""
    make_image_folder(tmp_path, ["a"], {"test": 1})
    bad = str(write_bad_image(tmp_path / "test" / "a" / "t.png", "truncated"))
    files = ImageFiles([str(tmp_path / "test" / "a" / "0.png"), bad], [0, 0], ["a"], split="test")
    message = read_error(files, "test", 1)
    assert message.startswith(f"cannot read image {bad} of the test split (OSError: image file is truncated")
    assert read_error(files, "test", 0).startswith(
        "image 0 of the test split could not be read during the run"
    )
    raise_on_every_process({})
    with pytest.raises(UnreadableImageError) as one:
        raise_on_every_process({("test", 1): message})
    assert str(one.value) == message
    with pytest.raises(UnreadableImageError) as two:
        raise_on_every_process({("test", 1): message, ("train", 7): "train 7"})
    assert str(two.value) == f"2 images could not be read:\n  train 7\n  {message}"


def test_verify_command_lists_every_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_image_folder(tmp_path, ["a", "b"], {"train": 2, "val": 1, "test": 1})
    text = write_bad_image(tmp_path / "train" / "a" / "x.png", "text")
    truncated = write_bad_image(tmp_path / "test" / "b" / "t.png", "truncated")
    root = str(tmp_path)
    assert verify.main(["imagefolder", "--root", root, "--workers", "2"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"train: {text} (not an image file Pillow recognises)",
        f"test: {truncated} (OSError: image file is truncated)",
    ]
    assert err == f"imagefolder under {root}: 2 unreadable image files\n"
    text.unlink()
    truncated.unlink()
    assert verify.main(["imagefolder", "--root", root]) == 0
    assert capsys.readouterr().err == f"imagefolder under {root}: every image file decodes\n"
    assert verify.main(["imagefolder", "--root", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("verify: error: imagefolder: no folder ")
    assert verify.unreadable_images("digits", "unused") == []  # pixels in memory: nothing to decode
