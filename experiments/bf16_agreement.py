"""How far bf16 autocast moves accuracy, for ours and for OpenAI's original, on the same weights.

    python experiments/bf16_agreement.py [--data ../shared/data/cifar10-subset] [--C 0.316]
        [--seeds 0 1 2 3 4] [--models ours original]

Random ViT-B/32 weights (seed 0 is `clip-lightning --model.pretrained false`'s), a real CIFAR
image folder, or `--data ../shared/data/mnist-test`: the whole MNIST test set (its original
gzip files), split at random (seed 0) into 5,000 probe-train and 5,000 test images: five
times the CIFAR-10 subset's 1,017 test images, so less sampling noise in each delta. For each
seed, model (ours, the original) and precision (fp32, bf16 autocast): zero-shot top-1 with its
own text tower and the dataset's CLIP prompts, and a logistic-regression probe (fixed C) on
projected train features, scored on test. Prints accuracies, the bf16 - fp32 deltas and how
many test predictions bf16 changes: the noise floor of a "within 0.5 points" check on random
weights. With several seeds it also prints each delta's mean, standard
deviation and largest magnitude over the seeds: a systematic bf16 shift shows in the mean,
the random flips of one set of weights in the spread. Writes nothing.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import ImageFolder

from clip_lightning.datasets import MNISTFiles
from clip_lightning.datasets.prompts import dataset_prompts
from clip_lightning.models import CLIP, MODEL_CONFIGS, image_transform
from clip_lightning.ops import accelerate
from clip_lightning.probe.protocol import fit_logistic
from clip_lightning.tasks.classifier import build_zero_shot_classifier

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from clip.model import build_model as openai_build_model


def images(folder: Path) -> tuple[torch.Tensor, np.ndarray]:
    dataset = ImageFolder(str(folder), transform=image_transform(224))
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return x, np.array(dataset.targets)


def mnist_images(folder: Path) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray]:
    """MNIST's 10,000 test digits from the original idx files, split 5,000 / 5,000 at random."""
    digits = MNISTFiles(str(folder), "test")
    labels = np.asarray(digits.targets, dtype=np.int64)
    # The first 5,000 digits are cleaner than the last 5,000 (LeCun's notes): mix before splitting.
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[: len(order) // 2], order[len(order) // 2 :]
    transform = image_transform(224)  # mode "L": the transform's RGB step is exercised too

    def stack(index: np.ndarray) -> torch.Tensor:
        return torch.stack([transform(digits[i][0]) for i in index])

    return stack(train), labels[train], stack(test), labels[test]


def encode(model: torch.nn.Module, x: torch.Tensor, bf16: bool, batch: int = 64) -> torch.Tensor:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return torch.cat([model.encode_image(x[i : i + batch]).float() for i in range(0, len(x), batch)])


def run_seed(
    seed: int,
    models: list[str],
    data: tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray],
    prompts: tuple[list[str], list[str]],
    C: float,
) -> dict[tuple[str, str], tuple[float, int]]:
    """``(model, task) -> (bf16 - fp32 accuracy in points, predictions changed)`` for one seed."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    ours = accelerate(CLIP(MODEL_CONFIGS["ViT-B/32"]).eval()).requires_grad_(False)
    built: dict[str, torch.nn.Module] = {"ours": ours}
    if "original" in models:
        state = {k: v.clone() for k, v in ours.state_dict().items()}
        built["original"] = openai_build_model({**state, "input_resolution": torch.tensor(224),
            "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408)}).float().eval()  # fmt: skip
    preds: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for label in models:
        model = built[label]
        for precision in ("fp32", "bf16"):
            bf16 = precision == "bf16"
            test = encode(model, x_test, bf16)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # same recipe for both models
                weights = build_zero_shot_classifier(model, *prompts)
            zero_shot = ((test / test.norm(dim=-1, keepdim=True)) @ weights).argmax(dim=1).numpy()
            probe = fit_logistic(encode(model, x_train, bf16).numpy(), y_train, C).predict(test.numpy())
            preds[label, precision] = zero_shot, probe
            print(f"seed {seed} {label:8s} {precision}: zero-shot {100 * (zero_shot == y_test).mean():.2f}%, "
                  f"probe {100 * (probe == y_test).mean():.2f}%", flush=True)  # fmt: skip
    result = {}
    for label in models:
        for i, task in enumerate(("zero-shot", "probe")):
            fp32, bf16 = preds[label, "fp32"][i], preds[label, "bf16"][i]
            delta = 100 * float((bf16 == y_test).mean() - (fp32 == y_test).mean())
            changed = int((bf16 != fp32).sum())
            result[label, task] = delta, changed
            print(f"seed {seed} {label:8s} {task:9s}: bf16 - fp32 {delta:+.2f} points, "
                  f"{changed} of {len(y_test)} test predictions changed", flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/cifar10-subset"
    )
    parser.add_argument("--C", type=float, default=0.316)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="random weight seeds")
    parser.add_argument("--models", nargs="+", choices=["ours", "original"], default=["ours", "original"])
    args = parser.parse_args()
    mnist = (args.data / "t10k-images-idx3-ubyte.gz").is_file()
    if not mnist and not ((args.data / "train").is_dir() and (args.data / "test").is_dir()):
        raise SystemExit(
            f"--data {args.data}: needs train/ and test/ image folders, or MNIST's "
            "t10k-*-ubyte.gz files (see ../shared/data/README.md)"
        )
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"--seeds {args.seeds}: a seed is repeated; give each once")
    models = list(dict.fromkeys(args.models))
    if mnist:
        prompts = dataset_prompts("mnist")
        x_train, y_train, x_test, y_test = mnist_images(args.data)
    else:
        prompts = dataset_prompts("cifar100" if "cifar100" in args.data.name else "cifar10")
        x_train, y_train = images(args.data / "train")
        x_test, y_test = images(args.data / "test")
    print(f"{args.data.name}: {len(y_train)} train, {len(y_test)} test images; probe C={args.C}")
    results = [
        run_seed(seed, models, (x_train, y_train, x_test, y_test), prompts, args.C) for seed in args.seeds
    ]
    if len(results) < 2:
        return
    print(f"over seeds {args.seeds}:")
    for key in results[0]:
        deltas = np.array([r[key][0] for r in results])
        changed = np.array([r[key][1] for r in results])
        print(f"{key[0]:8s} {key[1]:9s}: bf16 - fp32 mean {deltas.mean():+.2f}, sd {deltas.std(ddof=1):.2f}, "
              f"largest |delta| {np.abs(deltas).max():.2f} points; predictions changed {changed.mean():.1f} "
              f"on average")  # fmt: skip


if __name__ == "__main__":
    main()
