"""Speed of clip_lightning against OpenAI's original code, same process, same weights and inputs.

    python experiments/benchmark.py [--images 256] [--imagenet-classes 100] [--out runs/benchmark]

(a) zero-shot classifier: CIFAR-100 x 18 templates and ImageNet x 80 (a class subsample):
    ours (length-sorted batches run to their last EOT) vs the notebook's per-class loop;
(b) image features end to end on ../shared/data/cifar10-subset (decode, preprocess, encode)
    in fp32 and under bf16 autocast, ours vs the original model and transform;
(c) tokenizer throughput on 10,000 varied strings; (d) loading a ViT-B/32-shaped checkpoint;
(e) the data path: the DataModule's loader alone (0, 1, 2, 4 workers) against the model alone
    and a whole Lightning `test` run, to show whether loading is the bottleneck;
(f) ResNet-50 channels-last against contiguous, fp32 and bf16;
(h) ours with and without packed oneDNN linears (`clip_lightning.ops.packed`), model alone;
(g) as the `clip-lightning` command runs: freed memory kept in the heap (`keep_freed_memory`,
    process-wide, so this section runs last), then (b) again for ours and the original, the
    model alone and a whole Lightning run;
(i) on `--device` (a GPU: `--parts i --device cuda`), ViT-B/32 as `load` returns it there (fp16
    weights on a GPU): the original README's loop (PIL in the main process) with the original
    and with ours, our DataModule loader feeding the model, and where the time goes: the loader
    alone, the model alone on device tensors, a whole Lightning `test` (16-mixed on a GPU).
Random weights (no network here). Prints ratios, writes benchmark.json and benchmark.png.
`--parts` picks sections (default abcdefgh; (i) only when asked).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from PIL import Image

import clip_lightning as cl
from clip_lightning import CLIPDataModule, CLIPEvaluator
from clip_lightning.datasets.prompts import dataset_prompts
from clip_lightning.models import CLIP, MODEL_CONFIGS, build_model, image_transform
from clip_lightning.ops import accelerate, keep_freed_memory, packed_linears

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip as openai_clip
    from clip.clip import _transform as openai_transform

ROOT = Path(__file__).resolve().parents[1]

# Tokenizer inputs of each kind OpenAI's tokenizer treats specially: scripts, emoji, HTML entities,
# odd whitespace, contractions, special tokens (the tests keep a larger corpus of their own).
_PIECES = [
    "a photo of a", "cat", "AIRPLANE", "naïve café", "Crème brûlée", "東京", "こんにちは", "한국어",
    "Ελληνικά", "русский текст", "العربية", "हिन्दी", "🐱", "👩‍👩‍👧", "🇫🇷", "&amp;", "&lt;b&gt;bold&lt;/b&gt;",
    "&#39;quoted&#39;", "&nbsp;", "\t", "\r\n", "\u00a0", "\u200b", "3.14159", "2026-11-22", "it's", "we'll",
    "I'M", "O'Neil", "C++", "#hashtag", "http://example.com/a?b=c", "snake_case", "x²", "½", "ﬁ ligature",
    "ＦＵＬＬＷＩＤＴＨ", "<|endoftext|>", "mojibake Ã©", "İstanbul",
]  # fmt: skip


def varied_texts(n: int, seed: int) -> list[str]:
    """``n`` strings joined from ``_PIECES`` with varied separators; every 50th is overlong."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        k = rng.choice([1, 2, 3, 5, 8, 13]) if i % 50 else rng.randint(40, 90)
        sep = rng.choice([" ", "", "  ", "\t", " \n "])
        texts.append(sep.join(rng.choice(_PIECES) for _ in range(k)))
    return texts


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


def bench_images(
    ours: CLIP, ref: torch.nn.Module, files: list[Path], batch: int, repeat: int = 2, section: str = "b"
) -> list[dict]:
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
        t_ours = t_ref = float("inf")
        for _ in range(repeat):  # alternated, best of each, so drift in machine speed hits both
            t, f_ours = timed(lambda b=bf16: run(ours, ours_tf, b))
            t_ours = min(t_ours, t)
            t, f_ref = timed(lambda b=bf16: run(ref, ref_tf, b))
            t_ref = min(t_ref, t)
        rows.append({"precision": precision, "images": len(files), "ours_img_s": len(files) / t_ours,
                     "original_img_s": len(files) / t_ref, "speedup": t_ref / t_ours,
                     "max_rel_diff": float((f_ours - f_ref).abs().max() / f_ref.abs().max())})  # type: ignore[operator]  # fmt: skip
        print(
            f"({section}) images {precision}: ours {len(files) / t_ours:.1f} img/s, original {len(files) / t_ref:.1f} img/s"
        )
    fp32_original = rows[0]["original_img_s"]
    rows[1]["speedup_vs_fp32_original"] = rows[1]["ours_img_s"] / fp32_original
    print(f"({section}) ours bf16 vs original fp32: x{rows[1]['speedup_vs_fp32_original']:.2f}")
    return rows


def bench_tokenizer() -> dict:
    texts = varied_texts(10_000, seed=1)
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


def _img_per_s(fn: Callable[[], object], images: int, repeat: int = 3) -> float:
    fn()  # warm-up (first-touch allocations, oneDNN kernel selection)
    return images / timed(fn, repeat)[0]


def _datamodule(data: Path, batch: int, workers: int) -> CLIPDataModule:
    dm = CLIPDataModule("imagefolder", root=str(data), batch_size=batch, num_workers=workers,
                        transform=image_transform(224))  # fmt: skip
    dm.setup("test")
    return dm


class _Throughput(L.Callback):
    """Images/s from the second batch's start to the last batch's end (workers already up)."""

    def on_test_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):  # type: ignore[no-untyped-def]
        if batch_idx == 1:
            self.start, self.seen = time.perf_counter(), 0

    def on_test_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):  # type: ignore[no-untyped-def]
        if batch_idx >= 1:
            if module.device.type == "cuda":  # the batch's kernels are queued, not necessarily done
                torch.cuda.synchronize(module.device)
            self.seen += len(batch[0])
            self.rate = self.seen / (time.perf_counter() - self.start)


def bench_model_alone(batch: int, section: str) -> dict:
    """ViT-B/32 ``encode_image`` on random input tensors: img/s and page faults per batch."""
    torch.manual_seed(0)
    model = accelerate(CLIP(MODEL_CONFIGS["ViT-B/32"]).eval()).requires_grad_(False)
    x = torch.randn(batch, 3, 224, 224)
    result = {}
    for precision in ("fp32", "bf16"):

        def encode(bf16: bool = precision == "bf16") -> None:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model.encode_image(x)

        encode()  # first use: packs the weights (one-time page faults, not counted)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        rate = _img_per_s(encode, batch)  # 4 batches: a warm-up and best of 3
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 4
        result[f"model_{precision}_img_s"] = rate
        result[f"model_{precision}_page_faults_per_batch"] = faults
        print(f"({section}) model alone (ViT-B/32, random input), {precision}: {rate:.1f} img/s, "
              f"{faults:,.0f} page faults per batch of {batch}")  # fmt: skip
    return result


def bench_lightning(
    data: Path, batch: int, n_batches: int | None, out: Path, workers: int, section: str,
    accelerator: str = "cpu", precision: str = "bf16-mixed",
) -> float:  # fmt: skip
    """A whole ``trainer.test`` (no zero-shot head): img/s after the first batch."""
    meter = _Throughput()
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[meter],
                        limit_test_batches=n_batches,
                        default_root_dir=str(out / f"lightning-{section}-{workers}"))  # fmt: skip
    evaluator = CLIPEvaluator("ViT-B/32", pretrained=False, zero_shot=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.test(evaluator, _datamodule(data, batch, workers), verbose=False)
    print(f"({section}) Lightning test {precision}, {workers} workers: {meter.rate:.1f} img/s")
    return float(meter.rate)


def bench_data_path(data: Path, n_batches: int, batch: int, out: Path) -> dict:
    """Loader alone vs model alone vs a whole Lightning test run (bf16-mixed), on real images."""
    result: dict = {
        "images": n_batches * batch,
        "batch": batch,
        "loader_img_s": {},
        "lightning_bf16_img_s": {},
    }
    for workers in (0, 1, 2, 4):
        loader = _datamodule(data, batch, workers).test_dataloader()
        assert not isinstance(loader, list)

        def drain(loader: torch.utils.data.DataLoader = loader) -> None:
            for i, _ in enumerate(loader):
                if i + 1 == n_batches:
                    break

        drain()  # starts the (persistent) workers
        result["loader_img_s"][workers] = n_batches * batch / timed(drain, 2)[0]
        print(f"(e) loader alone, {workers} workers: {result['loader_img_s'][workers]:.0f} img/s")
    result.update(bench_model_alone(batch, "e"))
    for workers in (0, 2):
        result["lightning_bf16_img_s"][workers] = bench_lightning(data, batch, n_batches, out, workers, "e")
    return result


def bench_channels_last(batch: int) -> dict:
    """ResNet-50 (random weights) image encoding, channels-last vs contiguous memory format."""
    torch.manual_seed(0)
    model = accelerate(CLIP(MODEL_CONFIGS["RN50"]).eval()).requires_grad_(False)
    x = torch.randn(batch, 3, 224, 224)
    rows = {}
    for precision in ("fp32", "bf16"):
        rates = {}
        for layout in ("contiguous", "channels_last"):
            model.visual.to(
                memory_format=getattr(
                    torch, "channels_last" if layout == "channels_last" else "contiguous_format"
                )
            )

            def encode(bf16: bool = precision == "bf16") -> None:
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    model.encode_image(x)

            rates[layout] = _img_per_s(encode, batch)
        rows[precision] = {**rates, "speedup": rates["channels_last"] / rates["contiguous"]}
        print(f"(f) RN50 {precision}: contiguous {rates['contiguous']:.1f} img/s, channels-last "
              f"{rates['channels_last']:.1f} img/s, x{rows[precision]['speedup']:.2f}")  # fmt: skip
    return rows


def bench_packed(batch: int) -> dict:
    """Ours with packed oneDNN linears against plain ``F.linear``: ViT-B/32 images and text."""
    torch.manual_seed(0)
    model = accelerate(CLIP(MODEL_CONFIGS["ViT-B/32"]).eval()).requires_grad_(False)
    image = torch.randn(batch, 3, 224, 224)
    text = cl.tokenize([f"a photo of a number {i}, a type of thing." for i in range(4 * batch)])
    result = {}
    for what, precision in (("image", "fp32"), ("image", "bf16"), ("text", "fp32"), ("text", "bf16")):
        rates: dict[bool, float] = {True: 0.0, False: 0.0}
        for _ in range(2):  # alternated, best of 2 x 2
            for packed in (True, False):

                def encode(bf16: bool = precision == "bf16", image_side: bool = what == "image") -> None:
                    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        model.encode_image(image) if image_side else model.encode_text(text)

                with packed_linears(packed):
                    n = batch if what == "image" else len(text)
                    rates[packed] = max(rates[packed], _img_per_s(encode, n, repeat=2))
        result[f"{what}_{precision}"] = {
            "packed": rates[True],
            "plain": rates[False],
            "speedup": rates[True] / rates[False],
        }
        print(f"(h) {what} {precision}: packed linears {rates[True]:.1f}/s, F.linear {rates[False]:.1f}/s, "
              f"x{rates[True] / rates[False]:.2f}")  # fmt: skip
    return result


def _synced(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """``fn`` followed by waiting for the device, so a timing covers the work queued on it."""

    def run() -> object:
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    return run


def bench_accelerator(
    sd: dict[str, torch.Tensor], data: Path, batch: int, workers: int, device: torch.device, out: Path
) -> dict:
    """(i) ViT-B/32 end to end on ``device``, as ``load`` returns it there; where the time goes."""
    path = out / "vit-b-32-random.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, ours_tf = cl.load(str(path), device=device)
        ref, ref_tf = openai_clip.load(str(path), device=device, jit=False)
    path.unlink()
    dm = _datamodule(data, batch, workers)
    files = [Path(f) for f, _ in dm.split("test").samples]  # type: ignore[attr-defined]
    n = len(files)
    result: dict = {"device": str(device), "images": n, "batch": batch, "workers": workers,
                    "weights": str(ours.visual.conv1.weight.dtype)}  # fmt: skip
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)

    def readme_loop(model: torch.nn.Module, transform: Callable) -> None:
        """OpenAI's README: preprocess in the main process, one batch at a time."""
        with torch.no_grad():
            for i in range(0, n, batch):
                images = torch.stack([transform(Image.open(f)) for f in files[i : i + batch]])
                model.encode_image(images.to(device))

    loader = dm.test_dataloader()
    assert not isinstance(loader, list)

    def our_loader() -> None:
        with torch.no_grad():
            for images, _, _ in loader:
                ours.encode_image(images.to(device, non_blocking=True))

    def loader_alone() -> None:
        for _ in loader:
            pass

    x = torch.randn(batch, 3, 224, 224, device=device)

    def model_alone() -> None:
        with torch.no_grad():
            for i in range(0, n, batch):
                ours.encode_image(x[: n - i])  # the loops' batch sizes, last one included

    cases = {
        "original_readme_loop": lambda: readme_loop(ref, ref_tf),
        "ours_readme_loop": lambda: readme_loop(ours, ours_tf),
        "ours_datamodule_loader": our_loader,
        "loader_alone": loader_alone,
        "model_alone": model_alone,
    }
    for label, fn in cases.items():
        result[f"{label}_img_s"] = _img_per_s(_synced(fn, device), n)
        print(f"(i) {label.replace('_', ' ')} on {device}: {result[f'{label}_img_s']:.1f} img/s")
    precision = "16-mixed" if device.type == "cuda" else "32-true"
    result[f"lightning_{precision}_img_s"] = bench_lightning(
        data, batch, None, out, workers, "i", accelerator=device.type, precision=precision
    )
    result["speedup_loader_over_original_loop"] = (
        result["ours_datamodule_loader_img_s"] / result["original_readme_loop_img_s"]
    )
    print(f"(i) ours (DataModule loader, {workers} workers) over the original loop: "
          f"x{result['speedup_loader_over_original_loop']:.2f}")  # fmt: skip
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars: list[tuple[str, float]] = []
    bars += [(r["case"], r["speedup"]) for r in result.get("classifier", [])]
    bars += [(f"images {r['precision']}", r["speedup"]) for r in result.get("images", [])]
    if "images" in result:
        bars.append(("images bf16 vs original fp32", result["images"][1]["speedup_vs_fp32_original"]))
    if "heap_kept" in result:
        kept = result["heap_kept"]["images"]
        bars += [(f"images {r['precision']}, heap kept (both)", r["speedup"]) for r in kept]
        bars.append(("images bf16 vs original fp32, heap kept (both)", kept[1]["speedup_vs_fp32_original"]))
    if "tokenizer" in result:
        bars.append(("tokenizer", result["tokenizer"]["speedup"]))
    if "load" in result:
        bars.append(("checkpoint load", result["load"]["speedup"]))
    if "accelerator" in result:
        acc = result["accelerator"]
        bars.append(
            (f"{acc['device']}: DataModule loader vs README loop", acc["speedup_loader_over_original_loop"])
        )
    # Not against the original: channels-last over contiguous, same (our) model.
    bars += [
        (f"RN50 channels-last / contiguous, {p}", r["speedup"])
        for p, r in result.get("channels_last", {}).items()
    ]
    bars += [(f"packed / F.linear, {k}", r["speedup"]) for k, r in result.get("packed_linears", {}).items()]
    if not bars:
        return
    labels, speedups = zip(*bars, strict=True)
    fig, ax = plt.subplots(figsize=(9, 1 + 0.3 * len(bars)))
    ax.barh(labels, speedups)
    ax.axvline(1.0, color="gray", linestyle="--")
    ax.set_xlabel("speed-up (x): over OpenAI's original code unless the label says otherwise")
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
    parser.add_argument("--parts", default="abcdefgh", help="sections to run, e.g. 'be'")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="of (i)")
    parser.add_argument(
        "--workers", type=int, default=len(os.sched_getaffinity(0)), help="loader workers in (i)"
    )
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
    result: dict = {"device": "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_batches = max(2, args.images // args.batch)  # of the Lightning runs in (e) and (g)
    if "a" in args.parts:
        result["classifier"] = bench_text(ours, ref, args.imagenet_classes)
    if "b" in args.parts:
        result["images"] = bench_images(ours, ref, files, args.batch)
    if "c" in args.parts:
        result["tokenizer"] = bench_tokenizer()
    if "d" in args.parts:
        result["load"] = bench_load(sd, out)
    if "e" in args.parts:
        result["data_path"] = bench_data_path(Path(args.data), n_batches, args.batch, out)
    if "f" in args.parts:
        result["channels_last"] = bench_channels_last(args.batch // 2)
    if "h" in args.parts:
        result["packed_linears"] = bench_packed(args.batch)
    if "i" in args.parts:
        result["accelerator"] = bench_accelerator(
            sd, Path(args.data), args.batch, args.workers, torch.device(args.device), out
        )
    if "g" in args.parts:  # last: the allocator setting cannot be undone in this process
        if not keep_freed_memory():
            raise SystemExit("(g) needs glibc without MALLOC_*_THRESHOLD_ set")
        print("(g) freed memory kept in the heap, as the clip-lightning command does:")
        result["heap_kept"] = {
            "images": bench_images(ours, ref, files, args.batch, section="g"),
            **bench_model_alone(args.batch, "g"),
            "lightning_bf16_img_s": {0: bench_lightning(Path(args.data), args.batch, n_batches, out, 0, "g")},
        }  # fmt: skip
    (out / "benchmark.json").write_text(json.dumps(result, indent=2))
    plot(result, out / "benchmark.png")
    print(f"wrote {out / 'benchmark.json'} and {out / 'benchmark.png'}")


if __name__ == "__main__":
    main()
