"""Speed of clip_lightning against OpenAI's original code, same process, same weights and inputs.

    python experiments/benchmark.py [--images 256] [--imagenet-classes 100] [--out runs/benchmark]

(a) zero-shot classifier: CIFAR-100 x 18 templates and ImageNet x 80 (a class subsample):
    ours (length-sorted batches run to their last EOT) vs the notebook's per-class loop;
(b) image features end to end on ../shared/data/cifar10-subset (decode, preprocess, encode)
    in fp32 and under bf16 autocast, ours vs the original model and transform;
(c) tokenizer throughput on 10,000 varied strings; (d) loading a ViT-B/32-shaped checkpoint.
Random ViT-B/32 weights (no network here). Prints ratios, writes benchmark.json and benchmark.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

import clip_lightning as cl
from clip_lightning.model import CLIP, MODEL_CONFIGS, build_model
from clip_lightning.prompts import dataset_prompts
from clip_lightning.transform import image_transform

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip as openai_clip
    from clip.clip import _transform as openai_transform

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tokenizer corpus lives in tests/


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def original_classifier(model: torch.nn.Module, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """The notebook's loop: one class at a time, every prompt at full context length."""
    weights = []
    with torch.no_grad():
        for name in classnames:
            emb = model.encode_text(openai_clip.tokenize([t.format(name) for t in templates]))
            emb = emb / emb.norm(dim=-1, keepdim=True)
            emb = emb.mean(dim=0)
            weights.append(emb / emb.norm())
    return torch.stack(weights, dim=1)


def bench_text(ours: CLIP, ref: torch.nn.Module, n_imagenet: int) -> list[dict]:
    rows = []
    imagenet_names, imagenet_templates = dataset_prompts("imagenet")
    cases = [
        ("cifar100 x 18", *dataset_prompts("cifar100")),
        (f"imagenet {n_imagenet} classes x 80", imagenet_names[:n_imagenet], imagenet_templates),
    ]
    for label, names, templates in cases:
        t_ours, w_ours = timed(lambda n=names, t=templates: cl.build_zero_shot_classifier(ours, n, t))
        t_ref, w_ref = timed(lambda n=names, t=templates: original_classifier(ref, n, t))
        diff = float((w_ours - w_ref).abs().max())  # type: ignore[operator]
        rows.append({"case": label, "prompts": len(names) * len(templates), "ours_s": t_ours, "original_s": t_ref,
                     "speedup": t_ref / t_ours, "max_abs_diff": diff})  # fmt: skip
        print(
            f"(a) classifier {label}: ours {t_ours:.2f}s, original {t_ref:.2f}s, x{t_ref / t_ours:.1f}, max diff {diff:.2e}"
        )
    return rows


def bench_images(ours: CLIP, ref: torch.nn.Module, files: list[Path], batch: int) -> list[dict]:
    rows = []
    ours_tf, ref_tf = image_transform(224), openai_transform(224)

    def run(model: torch.nn.Module, transform: Callable, bf16: bool) -> torch.Tensor:
        out = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for i in range(0, len(files), batch):
                images = torch.stack([transform(Image.open(f)) for f in files[i : i + batch]])
                out.append(model.encode_image(images).float())
        return torch.cat(out)

    for precision in ("fp32", "bf16"):
        bf16 = precision == "bf16"
        t_ours, f_ours = timed(lambda b=bf16: run(ours, ours_tf, b))
        t_ref, f_ref = timed(lambda b=bf16: run(ref, ref_tf, b))
        rows.append({"precision": precision, "images": len(files), "ours_img_s": len(files) / t_ours,
                     "original_img_s": len(files) / t_ref, "speedup": t_ref / t_ours,
                     "max_rel_diff": float((f_ours - f_ref).abs().max() / f_ref.abs().max())})  # type: ignore[operator]  # fmt: skip
        print(
            f"(b) images {precision}: ours {len(files) / t_ours:.1f} img/s, original {len(files) / t_ref:.1f} img/s"
        )
    fp32_original = rows[0]["original_img_s"]
    rows[1]["speedup_vs_fp32_original"] = rows[1]["ours_img_s"] / fp32_original
    print(f"(b) ours bf16 vs original fp32: x{rows[1]['speedup_vs_fp32_original']:.2f}")
    return rows


def bench_tokenizer() -> dict:
    from tests.test_tokenizer import _random_texts

    texts = _random_texts(10_000, seed=1)
    cl.tokenize(texts[:10], truncate=True)  # load the vocabulary outside the timing
    openai_clip.tokenize(texts[:10], truncate=True)
    t_ours, _ = timed(lambda: cl.tokenize(texts, truncate=True))
    t_ref, _ = timed(lambda: openai_clip.tokenize(texts, truncate=True))
    print(f"(c) tokenizer: ours {len(texts) / t_ours:.0f} texts/s, original {len(texts) / t_ref:.0f} texts/s")
    return {
        "texts": len(texts),
        "ours_per_s": len(texts) / t_ours,
        "original_per_s": len(texts) / t_ref,
        "speedup": t_ref / t_ours,
    }


def bench_load(sd: dict[str, torch.Tensor], folder: Path) -> dict:
    """Loading a ViT-B/32-shaped checkpoint (fp16 state dict, as OpenAI ships) on CPU."""
    path = folder / "vit-b-32-random.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_ours, _ = timed(lambda: cl.load(str(path), device="cpu"), repeat=3)
        t_ref, _ = timed(lambda: openai_clip.load(str(path), device="cpu"), repeat=3)
    path.unlink()
    print(f"(d) load ViT-B/32 checkpoint: ours {t_ours:.2f}s, original {t_ref:.2f}s")
    return {"ours_s": t_ours, "original_s": t_ref, "speedup": t_ref / t_ours}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = (
        [r["case"] for r in result["classifier"]]
        + [f"images {r['precision']}" for r in result["images"]]
        + ["tokenizer"]
    )
    speedups = (
        [r["speedup"] for r in result["classifier"]]
        + [r["speedup"] for r in result["images"]]
        + [result["tokenizer"]["speedup"]]
    )
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(labels, speedups)
    ax.axvline(1.0, color="gray", linestyle="--")
    ax.set_xlabel("speed-up over OpenAI's original code (x)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--imagenet-classes", type=int, default=100)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-subset"))
    parser.add_argument("--out", default="runs/benchmark")
    args = parser.parse_args()
    torch.manual_seed(0)
    sd = {
        k: v.half().float() if v.is_floating_point() else v
        for k, v in CLIP(MODEL_CONFIGS["ViT-B/32"]).state_dict().items()
    }
    ours = build_model(sd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = openai_clip.model.build_model(dict(sd)).float().eval()
    files = sorted(Path(args.data, "test").glob("*/*.png"))[: args.images]
    result = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "classifier": bench_text(ours, ref, args.imagenet_classes),
        "images": bench_images(ours, ref, files, args.batch),
        "tokenizer": bench_tokenizer(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result["load"] = bench_load(sd, out)
    (out / "benchmark.json").write_text(json.dumps(result, indent=2))
    plot(result, out / "benchmark.png")
    print(f"wrote {out / 'benchmark.json'} and {out / 'benchmark.png'}")


if __name__ == "__main__":
    main()
