"""Shared test helpers: tiny random CLIP models, oracle copies, TorchScript archives."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clip_lightning.models import CLIP, CLIPConfig

TINY_VIT = CLIPConfig(
    embed_dim=32,
    image_resolution=32,
    vision_layers=2,
    vision_width=64,
    vision_patch_size=8,
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=2,
)
TINY_RN = CLIPConfig(
    embed_dim=32,
    image_resolution=64,
    vision_layers=(1, 1, 1, 1),
    vision_width=8,
    vision_patch_size=None,
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=2,
)


def random_state_dict(config: CLIPConfig, seed: int = 0, fp16_exact: bool = True) -> dict[str, torch.Tensor]:
    """Random weights at ``config``'s shapes; BatchNorm statistics are randomized too.

    ``fp16_exact`` rounds through fp16, as OpenAI's checkpoints are, so the oracle (which casts
    to fp16 when it builds) and ours see identical values.
    """
    torch.manual_seed(seed)
    model = CLIP(config)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buf.uniform_(0.5, 1.5)
    for name, param in model.named_parameters():
        if name.endswith("bn3.weight"):  # CLIP's init zeroes these; keep the residual branch alive
            param.data.uniform_(0.5, 1.5)
    sd = model.state_dict()
    if fp16_exact:
        sd = {k: v.half().float() if v.is_floating_point() else v for k, v in sd.items()}
    return sd


def oracle_model(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """OpenAI's own model code (test-only dependency) built from ``state_dict``, fp32."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import clip as openai_clip
    return openai_clip.model.build_model(dict(state_dict)).float().eval()


def save_torchscript(state_dict: dict[str, torch.Tensor], path: Path, half: bool = False) -> None:
    """An OpenAI-style TorchScript archive: the original model traced, with its metadata buffers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import clip as openai_clip
    model = openai_clip.model.build_model(dict(state_dict)).eval()  # fp16 like OpenAI's archives
    if not half:
        model = model.float()
    res = model.visual.input_resolution
    for key, value in (("input_resolution", res), ("context_length", 77), ("vocab_size", 49408)):
        if hasattr(model, key):
            delattr(model, key)
        model.register_buffer(key, torch.tensor(value))
    image = torch.randn(2, 3, res, res, dtype=model.dtype)
    text = openai_clip.tokenize(["a cat", "a dog"])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(
            model, {"forward": (image, text), "encode_image": (image,), "encode_text": (text,)}
        )
    traced.save(str(path))


def make_image_folder(root: Path, classes: list[str], per_split: dict[str, int], seed: int = 0) -> Path:
    """root/<split>/<class>/<i>.png with random images (different modes and sizes)."""
    rng = np.random.default_rng(seed)
    for split, n in per_split.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = rng.integers(8, 40, size=2)
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                pixels[..., c % 3] = 255  # a class-dependent colour, so probes can learn
                image = Image.fromarray(pixels)
                (image.convert("L") if i % 3 == 0 else image).save(folder / f"{i}.png")
    return root


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """An idx file as LeCun's: magic 0x0800 + ndim, big-endian dimensions, unsigned bytes."""
    import gzip  # only the MNIST tests need it

    data = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes() + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


# Tokenizer corpus: every input class that OpenAI's tokenizer treats specially.
PIECES = [
    "a photo of a",
    "cat",
    "Dog",
    "AIRPLANE",
    "naïve",
    "café",
    "Crème brûlée",
    "Ångström",
    "São Paulo",
    "東京",
    "北京大学",
    "こんにちは",
    "한국어",
    "Ελληνικά",
    "русский текст",
    "עברית",
    "العربية",
    "हिन्दी",
    "🐱",
    "🚀🚀",
    "👩‍👩‍👧",
    "🇫🇷",
    "&amp;",
    "&lt;b&gt;bold&lt;/b&gt;",
    "&#39;quoted&#39;",
    "&amp;amp;",
    "&nbsp;",
    "&quot;",
    "  ",
    "\t",
    "\n\n",
    "\r\n",
    "\u00a0",
    "\u2003",
    "\u200b",
    "0",
    "42",
    "3.14159",
    "1,000,000",
    "2026-11-22",
    "it's",
    "we'll",
    "they've",
    "I'M",
    "don't",
    "you'd",
    "O'Neil",
    "e-mail",
    "C++",
    "#hashtag",
    "@user",
    "http://example.com/a?b=c",
    "snake_case",
    "CamelCaseWord",
    "x²",
    "½",
    "№",
    "™",
    "©",
    "—",
    "…",
    "<|startoftext|>",
    "<|endoftext|>",
    "\\",
    "{}",
    "[x]",
    "(a)",
    "!!!",
    "???",
    "mojibake Ã©",
    "ﬁ ligature",
    "ＦＵＬＬＷＩＤＴＨ",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Zürich",
    "Øresund",
    "ß",
    "İstanbul",
]


def random_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` varied strings from ``PIECES``: scripts, emoji, HTML entities, odd whitespace, overlong ones."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        k = rng.choice([1, 2, 3, 5, 8, 13]) if i % 50 else rng.randint(40, 90)  # some overlong ones
        sep = rng.choice([" ", "", "  ", "\t", " \n "])
        texts.append(sep.join(rng.choice(PIECES) for _ in range(k)))
    return texts


def write_bad_image(path: Path, kind: str) -> Path:
    """An unreadable image file: ``truncated`` (half a PNG), ``empty`` (0 bytes) or ``text`` (a text file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":
        pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, format="PNG")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not an image\n")
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return path


def write_wds(root: Path, split: str, samples: list[dict[str, object]], shard_sizes: list[int]) -> Path:
    """``root/split/{0..}.tar`` in CLIP_benchmark's layout, written by ``webdataset.TarWriter``: shard
    ``k`` holds the next ``shard_sizes[k]`` of ``samples`` (dicts with ``__key__`` and one entry per
    extension), and ``nshards.txt`` says how many shards there are."""
    import webdataset  # only the WebDataset tests need it

    if sum(shard_sizes) != len(samples):
        raise ValueError(f"shard sizes {shard_sizes} do not add up to {len(samples)} samples")
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for shard, size in enumerate(shard_sizes):
        with webdataset.TarWriter(str(folder / f"{shard}.tar")) as sink:
            for sample in samples[start : start + size]:
                sink.write(sample)
        start += size
    (folder / "nshards.txt").write_text(f"{len(shard_sizes)}\n")
    return root


def wds_from_image_folder(
    folder: Path,
    root: Path,
    shard_sizes: dict[str, list[int]],
    templates: tuple[str, ...] = ("a photo of a {c}.",),
) -> Path:
    """The image folder at ``folder`` (``folder/<split>/<class>/<image>``) as a CLIP_benchmark WebDataset
    folder at ``root``: the same images (their file bytes), in the folder's order, ``.cls`` labels,
    ``classnames.txt`` (the class folder names) and ``zeroshot_classification_templates.txt``."""
    from clip_lightning.datasets import ImageFiles
    from clip_lightning.datasets.folders import imagefolder

    classes: list[str] | None = None
    for split, sizes in shard_sizes.items():
        data = imagefolder(str(folder), split, False)
        assert isinstance(data, ImageFiles)
        classes = data.classes
        samples: list[dict[str, object]] = [
            {"__key__": f"s{i:07d}", "png": Path(path).read_bytes(), "cls": label}
            for i, (path, label) in enumerate(zip(data.files, data.targets, strict=True))
        ]
        write_wds(root, split, samples, sizes)
    assert classes is not None
    (root / "classnames.txt").write_text("\n".join(classes) + "\n")
    (root / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
    return root
