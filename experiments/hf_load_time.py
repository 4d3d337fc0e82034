"""Load time of a ViT-B/32 Hugging Face folder: ``clip_lightning.load`` against ``CLIPModel.from_pretrained``.

A random-weight ``transformers.CLIPModel`` at transformers' default (ViT-B/32) shapes is saved once
with ``save_pretrained`` (safetensors); each loader then reads it ``--repeats`` times, alternating,
on CPU, after one untimed warm-up each (imports, page cache). Prints median and min seconds.

    python experiments/hf_load_time.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import transformers

        import clip_lightning as clip

    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        transformers.CLIPModel(transformers.CLIPConfig()).save_pretrained(folder)
        image, text = torch.randn(1, 3, 224, 224), clip.tokenize(["a photo of a cat"])

        def ours_first_batch() -> None:
            model, _ = clip.load(folder, device="cpu")
            with torch.no_grad():
                model(image, text)

        def theirs_first_batch() -> None:
            model = transformers.CLIPModel.from_pretrained(folder).eval()
            with torch.no_grad():
                model(input_ids=text, pixel_values=image)

        # Loaders may map the file and read pages only when a forward touches them: time both.
        loaders = {
            "clip_lightning.load": lambda: clip.load(folder, device="cpu"),
            "CLIPModel.from_pretrained": lambda: transformers.CLIPModel.from_pretrained(folder).eval(),
            "ours + first forward": ours_first_batch,
            "transformers + first forward": theirs_first_batch,
        }
        times: dict[str, list[float]] = {name: [] for name in loaders}
        for loader in loaders.values():
            loader()  # warm-up
        for _ in range(args.repeats):
            for name, loader in loaders.items():
                start = time.perf_counter()
                loader()
                times[name].append(time.perf_counter() - start)
    print(
        f"ViT-B/32 HF folder (safetensors, fp32, 151M params), CPU, {args.threads} threads, {args.repeats} runs:"
    )
    for name, values in times.items():
        print(f"  {name:28} median {statistics.median(values):.3f} s   min {min(values):.3f} s")


if __name__ == "__main__":
    main()
