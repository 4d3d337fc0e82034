"""Reproduce the CLIP paper's zero-shot and linear-probe rows with clip-lightning.

Runs the CLI once per (model, dataset, task) when the weights and data are at hand, and
prints our top-1 beside the paper's (and writes paper_table.json):

    python experiments/paper_table.py --data-root data --imagenet-root /data/imagenet
    python experiments/paper_table.py --dry-run      # only print the commands

Weights download on first use (or use --download-root with OpenAI's .pt files already there).
CIFAR-10/100 download with --download. Each run's results.json stays under --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# Top-1 (%) from the CLIP paper (Radford et al., 2021), as collected in ../shared/NOTES.md.
PAPER_ZERO_SHOT = {
    ("RN50", "cifar10"): 75.6, ("RN50", "cifar100"): 41.6, ("RN50", "imagenet"): 59.6,
    ("ViT-B/32", "cifar10"): 91.3, ("ViT-B/32", "cifar100"): 65.1, ("ViT-B/32", "imagenet"): 63.2,
    ("ViT-L/14@336px", "cifar10"): 95.7, ("ViT-L/14@336px", "cifar100"): 77.5, ("ViT-L/14@336px", "imagenet"): 76.2,
}  # fmt: skip
PAPER_LINEAR_PROBE = {("RN50", "cifar10"): 88.7, ("RN50", "cifar100"): 70.3, ("ViT-B/32", "cifar10"): None,
                      ("ViT-B/32", "cifar100"): None}  # fmt: skip  # ViT-B/32's rows are not in our notes


def command(model: str, dataset: str, task: str, args: argparse.Namespace, out: Path) -> list[str]:
    root = args.imagenet_root if dataset == "imagenet" else args.data_root
    config = "linear_probe_cifar10.yaml" if task == "linear_probe" else f"zeroshot_{dataset}.yaml"
    cmd = [
        sys.executable, "-m", "clip_lightning", "test", "--config", f"configs/{config}",
        "--model.name", model, "--data.dataset", dataset, "--data.root", str(root),
        "--data.download", str(args.download and dataset != "imagenet").lower(),
        "--trainer.logger.init_args.save_dir", str(out),
        "--trainer.logger.init_args.name", f"{task}_{model.replace('/', '-')}_{dataset}",
        "--trainer.devices", str(args.devices),
    ]  # fmt: skip
    if args.download_root:
        cmd += ["--model.download_root", args.download_root]
    return cmd


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default="data")
    parser.add_argument(
        "--imagenet-root",
        default=None,
        help="folder with train/ and val/; ImageNet rows are skipped without it",
    )
    parser.add_argument("--download", action="store_true", help="download CIFAR-10/100 if missing")
    parser.add_argument("--download-root", default=None, help="checkpoint cache folder")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--out", default="runs/paper_table")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    rows = [(m, d, "zeroshot", p) for (m, d), p in PAPER_ZERO_SHOT.items()]
    rows += [(m, d, "linear_probe", p) for (m, d), p in PAPER_LINEAR_PROBE.items()]
    table = []
    for model, dataset, task, paper in rows:
        if dataset == "imagenet" and not args.imagenet_root:
            continue
        cmd = command(model, dataset, task, args, out)
        if args.dry_run:
            print(" ".join(cmd))
            continue
        proc = subprocess.run(cmd, capture_output=True, text=True)
        ours = None
        if proc.returncode == 0:
            run_dir = sorted((out / f"{task}_{model.replace('/', '-')}_{dataset}").glob("version_*"))[-1]
            metrics = json.loads((run_dir / "results.json").read_text())["metrics"]
            ours = 100 * metrics["lp_acc1" if task == "linear_probe" else "acc1"]
        else:
            print(f"{model} {dataset} {task} failed:\n{proc.stderr[-1500:]}", file=sys.stderr)
        table.append({"model": model, "dataset": dataset, "task": task, "paper": paper, "ours": ours})
    if args.dry_run:
        return
    print(f"{'model':16} {'dataset':10} {'task':13} {'paper':>7} {'ours':>7}")
    for row in table:
        paper = "-" if row["paper"] is None else f"{row['paper']:.1f}"
        ours = "failed" if row["ours"] is None else f"{row['ours']:.1f}"
        print(f"{row['model']:16} {row['dataset']:10} {row['task']:13} {paper:>7} {ours:>7}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "paper_table.json").write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
