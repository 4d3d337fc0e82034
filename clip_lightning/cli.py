"""The ``clip-lightning`` command: LightningCLI over a task and a DataModule.

The task is any :class:`~clip_lightning.tasks.base.FrozenBackboneTask` and the data any
LightningDataModule (``class_path`` in a config, or ``--model RetrievalEvaluator``); without one they
are CLIPEvaluator and CLIPDataModule, so ``model: {name: ...}`` and ``--data.dataset`` work as they are.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from .datamodule import CLIPDataModule
from .errors import UserError
from .ops.allocator import keep_freed_memory
from .probe.callback import LinearProbe  # noqa: F401  (importable by short name in configs)
from .reporting import RunLogger, check_writable
from .tasks.base import FrozenBackboneTask
from .tasks.zeroshot import CLIPEvaluator

__all__ = ["TRAINER_DEFAULTS", "CLIPLightningCLI", "main", "user_error"]

# The trainer block every config shares; a config (or the command line) sets only what differs,
# e.g. ``trainer.precision`` or ``trainer.logger.init_args.name``.
TRAINER_DEFAULTS: dict[str, Any] = {
    "accelerator": "auto",
    "devices": 1,
    "logger": {
        "class_path": "clip_lightning.reporting.RunLogger",  # TensorBoard; concurrent runs get their own folder
        "init_args": {"save_dir": "runs", "name": "clip_lightning"},
    },
}


class CLIPLightningCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The data transform is the model's own preprocess, so their resolutions always agree.
        parser.link_arguments("model.preprocess", "data.init_args.transform", apply_on="instantiate")
        parser.set_defaults(
            {
                "model": {"class_path": f"{CLIPEvaluator.__module__}.CLIPEvaluator"},
                "data": {"class_path": f"{CLIPDataModule.__module__}.CLIPDataModule"},
            }
        )

    def _prepare_subcommand_parser(
        self, klass: type, subcommand: str, **kwargs: Any
    ) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "test":
            # The evaluator prints its own summary. Lightning's table would repeat every metric once
            # per dataloader (the probe's train and val features are test loaders too), as if it had
            # been measured on each; `--verbose true` brings it back.
            parser.set_defaults(verbose=False)
        return parser

    def before_instantiate_classes(self) -> None:
        """A plain TensorBoardLogger becomes a RunLogger with the same arguments, and says so."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        loggers = config.trainer.logger
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            if _names_plain_tensorboard(getattr(logger, "class_path", None)):
                # It picks version_N by listing the folder: two runs started together share one and
                # the second's results.json, figures and config.yaml overwrite the first's.
                logger.class_path = f"{RunLogger.__module__}.{RunLogger.__name__}"
                if getattr(rank_zero_only, "rank", 0) == 0:
                    print(
                        "clip-lightning: note: using clip_lightning.reporting.RunLogger (TensorBoard, the "
                        "same arguments) for TensorBoardLogger: it claims its version folder atomically, "
                        "so runs started together in one folder cannot share one",
                        file=sys.stderr,
                    )

    def _check_output(self) -> None:
        """Unwritable log folders fail here, before any work (and before Lightning writes config.yaml)."""
        for logger in self.trainer.loggers:
            save_dir = getattr(logger, "save_dir", None)
            if isinstance(save_dir, str) and "://" not in save_dir:
                check_writable(save_dir, "the run's logs and results", "--trainer.logger.init_args.save_dir")
        if not self.trainer.loggers:
            check_writable(self.trainer.default_root_dir, "the run's results", "--trainer.default_root_dir")

    def before_test(self) -> None:
        self._check_output()

    def before_validate(self) -> None:
        self._check_output()

    def before_predict(self) -> None:
        self._check_output()


def main(args: Any = None) -> None:
    """Entry point of ``clip-lightning`` and ``python -m clip_lightning``."""
    keep_freed_memory()  # this process is ours: no page faults on every batch's activations
    argv = list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else []
    if argv[:1] == ["suite"]:  # models x datasets: its own parser (the Trainer's options among them)
        from .suite.cli import main as suite_main

        try:
            suite_main(argv[1:])
        except UserError as err:
            print(f"clip-lightning suite: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    try:
        CLIPLightningCLI(
            FrozenBackboneTask,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            trainer_defaults=TRAINER_DEFAULTS,
            args=args,
        )
    except Exception as err:
        # jsonargparse wraps what a subclass's __init__ raised (``--data.dataset cifar11``) in a
        # ValueError listing the Union's subtypes; the user's mistake is the UserError inside.
        cause = user_error(err)
        if cause is None:
            raise
        print(f"clip-lightning: error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None


def _names_plain_tensorboard(class_path: Any) -> bool:
    """Whether ``class_path`` is Lightning's own TensorBoardLogger (not a subclass of it)."""
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None) is TensorBoardLogger
    except ImportError:
        return False


def user_error(err: BaseException) -> UserError | None:
    """The UserError ``err`` is or was raised from, if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


if __name__ == "__main__":
    main()
