"""``clip-lightning suite``: models x datasets in one command, with a table.

    clip-lightning suite --models ViT-B/32 RN50 --datasets cifar10 imagenet_shifts \\
        --data_root 'data/{dataset_cleaned}' --output suite --trainer.precision 16-mixed
"""

from __future__ import annotations

import os
import sys
from typing import Any, cast

import lightning as L
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from lightning.pytorch.callbacks import Callback

from ..errors import ConfigError
from .collections import COLLECTIONS
from .plan import TASKS, Run, plan_runs
from .runner import Outcome, RunOptions, run_sweep
from .table import write_tables

__all__ = ["build_parser", "main", "sweep"]


def build_parser() -> ArgumentParser:
    """The suite's arguments, every ``--trainer.*`` option among them."""
    parser = ArgumentParser(
        prog="clip-lightning suite",
        description="Zero-shot (and linear-probe) results of every model on every dataset, with a table.",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_argument(
        "--models",
        nargs="+",
        type=str,
        required=True,
        help="model names (clip_lightning.available_models()) or checkpoint paths/folders",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        type=str,
        required=True,
        help=f"registry names, wds/<name> (CLIP_benchmark's WebDataset folders), imagefolder/<name> "
        f"(your root/{{train,val,test}}/<class>/<image> folders), or the "
        f"collections {', '.join(COLLECTIONS)}",
    )
    parser.add_argument(
        "--data_root",
        type=str,
        default="data",
        help="a folder, or a template with {dataset} (as given), {dataset_cleaned} "
        "(CLIP_benchmark's: / as -) or {name} (without wds/)",
    )
    parser.add_argument(
        "--data_roots",
        type=dict[str, str],
        default={},
        help='folders of single datasets, e.g. \'{"mnist": "/data/mnist"}\'',
    )
    parser.add_argument("--output", type=str, default="suite", help="where results and the table go")
    parser.add_argument(
        "--task",
        nargs="+",
        type=str,
        default=["zeroshot_classification"],
        help=f"of {list(TASKS)} (retrieval datasets always run zeroshot_retrieval)",
    )
    parser.add_argument(
        "--pretrained",
        type=bool,
        default=True,
        help="false: the named architectures with random weights (offline demos)",
    )
    parser.add_argument("--download_root", type=str | None, default=None, help="checkpoint cache")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_workers", type=int, default=4)
    parser.add_argument(
        "--probe", type=dict[str, Any], default={}, help="LinearProbe arguments, e.g. '{\"max_iter\": 300}'"
    )
    parser.add_class_arguments(L.Trainer, "trainer", fail_untyped=False, instantiate=True, sub_configs=True)
    parser.set_defaults({"trainer.accelerator": "auto", "trainer.devices": 1, "trainer.logger": None})
    return parser


def _check(cfg: Namespace) -> None:
    unknown = [t for t in cfg.task if t not in TASKS]
    if unknown:
        raise ConfigError(f"--task {' '.join(unknown)}: choose from {list(TASKS)}")
    try:
        cfg.data_root.format(dataset="d", dataset_cleaned="d", name="d")
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(
            f"--data_root {cfg.data_root!r}: its only placeholders are {{dataset}}, {{dataset_cleaned}} "
            f"and {{name}} ({err!r})"
        ) from None


def _trainer_factory(parser: ArgumentParser, cfg: Namespace, output: str) -> Any:
    def make(run: Run, callbacks: list[Callback]) -> L.Trainer:
        run_cfg = cfg.clone()
        trainer = run_cfg.trainer
        if trainer.logger is None:  # each run its own TensorBoard folder under the output
            trainer.logger = Namespace(
                class_path="clip_lightning.reporting.RunLogger",
                init_args=Namespace(save_dir=os.path.join(output, "runs"), name=run.output_name("run")[:-5]),
            )
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
        built: L.Trainer = instantiate(run_cfg).trainer
        cast(Any, built).callbacks.extend(callbacks)  # objects, not config: added after
        return built

    return make


def sweep(args: list[str] | None = None) -> list[Outcome]:
    """Run ``clip-lightning suite`` with ``args``; return each run's outcome."""
    parser = build_parser()
    cfg = parser.parse_args(args)
    _check(cfg)
    runs = plan_runs(cfg.models, cfg.datasets, cfg.data_root, cfg.data_roots, cfg.task, cfg.pretrained)
    os.makedirs(cfg.output, exist_ok=True)
    options = RunOptions(cfg.batch_size, cfg.num_workers, cfg.download_root, cfg.seed, dict(cfg.probe))
    rank_zero = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0
    outcomes = run_sweep(runs, cfg.output, options, _trainer_factory(parser, cfg, cfg.output), rank_zero)
    if rank_zero:
        named = [c for c in cfg.datasets if c in COLLECTIONS]
        paths = write_tables(outcomes, cfg.output, f"{'+'.join(named)} average" if named else "average")
        with open(paths["markdown"], encoding="utf-8") as f:
            print(f.read(), end="")
        failed = sum(o.error is not None for o in outcomes)
        print(f"[suite] {len(outcomes)} runs ({failed} failed) -> {', '.join(paths.values())}", flush=True)
    return outcomes


def main(args: list[str] | None = None) -> None:
    """Entry point of ``clip-lightning suite``: exit status 1 when any run failed."""
    outcomes = sweep(args if args is not None else sys.argv[2:])
    if any(o.error is not None for o in outcomes):
        raise SystemExit(1)
