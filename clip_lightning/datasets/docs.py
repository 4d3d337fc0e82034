"""docs/datasets.md, generated from the registry."""

from __future__ import annotations

from .prompts import dataset_prompts, known_prompt_datasets
from .registry import DATASETS, DatasetInfo
from .suite import SUITE

__all__ = ["FAKES_IN_TEMP", "GENERATE_COMMAND", "datasets_markdown"]

GENERATE_COMMAND = "python -m clip_lightning.datasets > docs/datasets.md"


_NOTES = [
    "## Image folders and image files",
    "",
    "**One class list for every split.** `imagefolder` and `imagenet` label every split with the "
    "train folder's class folders (sorted; the union of the splits' class folders when there is no "
    "train folder). A val or test folder may hold fewer classes than train: its images are labelled "
    "by class name, never by position. A val or test class folder that train lacks is an error naming "
    "the classes on each side; so is a class folder without images.",
    "",
    "**Unreadable images.** When a split is built (before any work), the header of every image file "
    "is read: an empty file, a text file named `.png` or an unknown format stops the run with one line "
    "naming the file and the split (exit code 2). A truncated file is only found by decoding it: during "
    "the run, with the same one line, or up front with `--data.verify true`, which decodes every image of "
    "the splits the run reads and lists every unreadable one; "
    "`python -m clip_lightning.datasets.verify DATASET --root DIR` does that for every official split "
    "without a model or a run (exit code 1 when some file does not decode). `--data.skip_bad_images true` decodes every "
    "image up front too, leaves the unreadable ones out (the same on every process), warns, and lists them "
    "(`CLIPDataModule.skipped_images`: split and path). Decoding everything costs about one read of the "
    "data; the header check about 50 µs per file. Files are picked by extension: torchvision's list "
    "(`.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp`) and `.gif`.",
    "",
    "**Image modes.** Image files are read as 8-bit RGB by the data pipeline "
    "(`clip_lightning.datasets.read_rgb`), not by the model's `preprocess`. An animated GIF gives its "
    "first frame. 16-bit greys (Pillow's `I;16` modes, and `I` holding 0..65535, as 16-bit PNG and TIFF "
    "open) are scaled 0..65535 to 0..255, and float greys (`F`) 0..1 to 0..255; an `I` or `F` image "
    "with values outside that range is scaled from its own minimum and maximum. Every other mode is "
    'Pillow\'s `convert("RGB")`, as before. The drop-in `preprocess` of `clip_lightning.load` stays '
    "OpenAI's, bit for bit: like OpenAI's, it clips a 16-bit or float image to 0..255 (16-bit values "
    "above 255 turn white, floats in 0..1 black); convert such images with `read_rgb` or `to_rgb` first.",
]


def _row(info: DatasetInfo) -> str:
    if info.splits_found is not None:
        splits = "the folders present among " + ", ".join(info.splits)
    else:
        splits = ", ".join(info.splits) or "none (test: 20% held out)"
    if info.prompts is not None and info.prompts in known_prompt_datasets():
        classes = str(len(dataset_prompts(info.prompts)[0]))
    else:
        classes = "from the data"
    download = "yes" if info.download else "no"
    source = f"<{info.source}>" if "://" in info.source else f"`{info.source}`"
    cells = [
        f"`{info.name}`",
        splits,
        classes,
        info.main_metric,
        download,
        info.description,
        source,
        _tested(info.name),
    ]
    return "| " + " | ".join(cells) + " |"


# How each dataset is tested (tests/datasets/test_suite.py unless said otherwise). The fake copies
# of datasets with hundreds of classes are written to a temporary folder by the tests, not committed.
FAKES_IN_TEMP = ("imagenet", "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r", "country211")
_TESTED = {
    "digits": "CLI runs on the bundled data (tests/test_cli.py)",
    "wds": "CLI on WebDataset folders the tests write (tests/datasets/test_wds.py)",
}


def _tested(name: str) -> str:
    if name in _TESTED:
        return _TESTED[name]
    where = "a temporary folder" if name in FAKES_IN_TEMP else f"`tests/data/{name}/`"
    return f"CLI run on a fake copy in its real layout, in {where} (tests/data/make_fake_datasets.py)"


def _suite_rows() -> list[str]:
    rows = []
    for entry in SUITE:
        dataset = f"`{entry.dataset}`" if entry.dataset else "`wds`"
        prompts = f"`{entry.prompts}`" if entry.prompts else "from the data"
        cells = [
            entry.title,
            dataset,
            prompts,
            entry.paper_metric or "—",
            entry.datacomp_metric or "—",
            entry.note,
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def datasets_markdown() -> str:
    """The table of every registered dataset, as committed in docs/datasets.md."""
    lines = [
        "# Datasets",
        "",
        f"<!-- Generated from clip_lightning/datasets/catalog.py; do not edit. Regenerate: {GENERATE_COMMAND} -->",
        "",
        "`--data.dataset` takes one of these names. Missing official splits are carved out, seeded "
        "(`--data.split_seed`): val as `--data.val_fraction` of the official train split, and for a "
        "dataset without any split, test as 20% of the whole set.",
        "",
        "Class names and templates are OpenAI's (`data/prompts.md` of openai/CLIP; for ImageNet and its "
        "shifts, the ImageNet notebook's 1,000 names and 80 templates), shipped in `prompts.json`. Where "
        "torchvision can download a dataset, `--data.download true` fetches it; otherwise a missing file is "
        "one message with the manual steps and the layout expected under `--data.root`. Metric keys: "
        "`acc1` accuracy, `mean_per_class_recall`, `mean_average_precision` (11-point, over full scores), "
        "`roc_auc`.",
        "",
        "| name | official splits | classes | main metric | download | description | source | tested |",
        "|---|---|---|---|---|---|---|---|",
        *(_row(info) for info in DATASETS.values()),
        "",
        "## The suites",
        "",
        "The CLIP paper's 27 datasets (Table 9), ImageNet's shifts and DataComp's extra classification sets, "
        "with the metric each reports. Those without a registry entry have no torchvision class: they come "
        "through CLIP_benchmark's WebDataset folders (`--data.dataset wds`), whose folder holds its class "
        "names and templates; OpenAI's lists for them are in `prompts.json` under the key shown.",
        "",
        "| dataset | `--data.dataset` | prompts | CLIP paper metric | DataComp main metric | note |",
        "|---|---|---|---|---|---|",
        *_suite_rows(),
        "",
        *_NOTES,
    ]
    return "\n".join(lines) + "\n"
