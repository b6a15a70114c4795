"""The options of every trainer and export: one dataclass each, one field per command-line option.

    LoopConfig ─┬─ HyperpriorTrainConfig   codec train [hyperprior]   codec.train.hyperprior
                ├─ M2TTrainConfig          codec train m2t            codec.train.m2t
                └─ VideoTrainConfig        codec train video          codec.train.video
    OverfitStartTrainConfig                codec train overfit-start  codec.train.overfit_start
    ExportConfig ─ HyperpriorExportConfig  codec train export; m2t-export and video-export take ExportConfig

Each field's help text is its line under `Attributes:` (a subclass's line replaces its base's); the
CLI (cli/train) builds its options from these classes, so this module imports neither torch nor
typer. Keyword-only, so a subclass may put required fields (no default) first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from codec.errors import UsageError
from codec.settings import weights_dir

MAX_THREADS = 1024
"""Upper bound of --threads, as for encode and decode (cli/options.py): far above any machine's cores,
far below where torch's thread pools fail (an OpenMP abort at about 20,000, a crash at 100,000)."""


def check_threads(threads: int) -> None:
    """UsageError unless 0 (torch's default) <= threads <= MAX_THREADS."""
    if not 0 <= threads <= MAX_THREADS:
        raise UsageError(f"--threads must be within 0..{MAX_THREADS} (0: torch's default), got {threads}")


@dataclass(kw_only=True)
class LoopConfig:
    """The options every trainer takes (each trainer's config adds its own and may change these
    defaults). Keyword-only, so subclasses may put required fields first.

    Attributes:
        run_dir: Folder of the run: checkpoint.pt, log.csv and caches (created if missing).
        batch: Training samples per step.
        lr: Peak learning rate.
        warmup_steps: Steps of linear learning-rate warm-up.
        decay_fraction: Final fraction of the run over which the learning rate decays (cosine, to 2%).
        max_steps: Stop after this many steps (whichever of the two limits comes first).
        max_minutes: Stop after this many minutes of training (carried over resumes).
        clip: Gradient-norm clipping threshold.
        bf16: bfloat16 autocast for the training steps.
        threads: CPU threads for torch, 0..1024 (0: torch's default).
        val_every: Validate (and log the validation columns) every this many steps.
        ckpt_minutes: Write the checkpoint every this many minutes (and at the end).
        seed: Seed of the run's random draws.
        device: Torch device to train on (cpu, cuda, ...).
    """

    run_dir: str
    batch: int = 16
    lr: float = 5e-4
    warmup_steps: int = 200
    decay_fraction: float = 0.3
    max_steps: int = 100_000
    max_minutes: float = 60.0
    clip: float = 1.0
    bf16: bool = False
    threads: int = 0
    val_every: int = 250
    ckpt_minutes: float = 3.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_threads(self.threads)


@dataclass(kw_only=True)
class HyperpriorTrainConfig(LoopConfig):
    """A hyperprior training run (`codec train --data DIR --run-dir DIR ...`).

    Attributes:
        data: Folder of training photos (5% held back for validation by name hash).
        config: Model preset (tiny, small, base, ...; small-relu etc. for the ReLU variant).
        lmbda: Rate-distortion trade-off of a single-rate model (unused with --levels).
        crop: Training crop size in pixels.
        lambda_boost: Lambda multiplier over the first boost-fraction of training.
        boost_fraction: Fraction of the run with the boosted lambda.
        shard_dir: Also save the weights as safetensors shards here at each checkpoint (size-capped transfers).
        levels: Variable rate: comma-separated lambdas, one gain unit each (lmbda is then unused).
        init: Warm start from a shipped model id or a .safetensors path (when there is no checkpoint).
        gain_lr: Variable rate: learning rate of the gain units (0: lr).
        train_only: Comma-separated parameter-name prefixes to train, the others frozen (e.g. log_gain).
        downscale: Random downscaling: crops of up to crop x this, area-resized to crop.
        compile: torch.compile the model for the training steps.
    """

    data: str
    config: str = "base"
    lmbda: float = 0.0067
    batch: int = 8
    crop: int = 256
    lr: float = 4e-4
    warmup_steps: int = 300
    lambda_boost: float = 10.0
    boost_fraction: float = 0.15
    val_every: int = 500
    shard_dir: str = ""
    levels: str = ""
    init: str = ""
    gain_lr: float = 0.0
    train_only: str = ""
    downscale: float = 1.0
    compile: bool = False


@dataclass(kw_only=True)
class M2TTrainConfig(LoopConfig):
    """An M2T training run (`codec train m2t --ae ID --data DIR --run-dir DIR ...`).

    Attributes:
        ae: Variable-rate autoencoder (model id) whose latents the transformer codes; frozen.
        data: Folder of training photos (5% held back for validation by name hash).
        config: Transformer preset (tiny, tiny-side, small, small-side, ...).
        objective: m2t (two streams, every step in one pass) or mt (one stream, random masks).
        patch: Side of the token windows, in latent pixels.
        steps: Decoding steps S of the schedule (validation; training too without --steps-train).
        steps_train: Comma-separated S values drawn per batch (e.g. 4,8,12: one model for every S).
    """

    ae: str
    data: str
    config: str = "small"
    objective: str = "m2t"
    patch: int = 16
    steps: int = 8
    steps_train: str = ""


@dataclass(kw_only=True)
class VideoTrainConfig(LoopConfig):
    """A VCT training run (`codec train video --run-dir DIR ...`).

    Attributes:
        ae: Image model (model id) whose latents the transformer codes; frozen.
        data: Data folder holding video/ (clips) and train/ (photos) (empty: $CODEC_DATA, else ../shared/data).
        config: Transformer preset (tiny, small, ...).
        crop: Crop size of the three-frame sequences in pixels (a multiple of 64).
        video_samples: Training sequences cut from the clips.
        photo_samples: Training sequences of synthetic motion made from the photos.
        val_samples: Validation sequences per source (clips, photos).
        eval_frames: First frames of each clip kept for evaluation (never trained on; they validate).
        min_log_step: Smallest log2 quantisation step drawn per sequence.
        max_log_step: Largest log2 quantisation step drawn per sequence.
        init: Shipped VCT model id whose transformer starts the run (its new parts start fresh).
        state: Channels of the recurrent state (RLVC's recurrent probability model; 0: the two-frame context only).
        length: Frames per training sequence: 3 draws three-frame sequences (clips and synthetic motion); more draws runs of consecutive frames from cached clip latents (codec.train.clip_latents; the recurrent state needs them).
        windows: Crop windows per clip for the runs (length > 3).
        clip_frames: Frames per clip at most for the runs, after the evaluation window (length > 3).
    """

    ae: str = "hyperprior-mse-l0067"
    data: str = ""
    config: str = "small"
    crop: int = 192
    video_samples: int = 2400
    photo_samples: int = 1600
    val_samples: int = 48
    eval_frames: int = 32
    min_log_step: float = -1.0
    max_log_step: float = 2.0
    warmup_steps: int = 150
    max_steps: int = 1_000_000
    val_every: int = 200
    init: str = ""
    state: int = 0
    length: int = 3
    windows: int = 2
    clip_frames: int = 160


@dataclass(kw_only=True)
class OverfitStartTrainConfig:
    """Starting networks of the overfitted encoder, learned by Reptile across training photos
    (`codec train overfit-start --run-dir DIR ...`; codec.train.overfit_start).

    Attributes:
        run_dir: Folder of the run: checkpoint.pt after every photo (created if missing).
        size: Decoder size the start is for (small, medium, large).
        data: Folder of training photos (empty: the train/ folder of $CODEC_DATA; 5% held back by name hash).
        images: Photos to visit, one random crop and one fit each.
        crop: Side of the square crops.
        steps: Fit iterations per photo.
        step_size: Reptile step: the share of the way the start moves to each photo's fitted networks.
        qualities: Comma-separated qualities (0..100), taken in turn.
        max_minutes: Stop after this many minutes (carried over resumes).
        threads: CPU threads for torch, 0..1024 (0: torch's default).
        seed: Seed of the photo order, crops and fits.
    """

    run_dir: str
    size: str = "small"
    data: str = ""
    images: int = 24
    crop: int = 256
    steps: int = 600
    step_size: float = 0.5
    qualities: str = "40,60,80"
    max_minutes: float = 60.0
    threads: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_threads(self.threads)

    def data_folder(self) -> Path:
        from codec.settings import data_dir

        return Path(self.data) if self.data else data_dir() / "train"

    def quality_list(self) -> list[float]:
        try:
            values = [float(v) for v in self.qualities.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--qualities must be comma-separated numbers, got {self.qualities!r}") from None
        if not values or not all(0.0 <= v <= 100.0 for v in values):
            raise UsageError(f"--qualities must hold qualities within 0..100, got {self.qualities!r}")
        return values


@dataclass(kw_only=True)
class ExportConfig:
    """The options of every family's export.

    Attributes:
        checkpoint: The run's checkpoint (RUN/checkpoint.pt).
        model_id: Stable model id to write (weights/<model_id>.safetensors and the manifest key).
        training: JSON object of facts about the run for the manifest entry.
        weights_dir: Folder of the weights and manifest.json (empty: $CODEC_WEIGHTS, else the repository's weights/).
        default: Make it the default model (of its kind: video models are the default video model).
        force: Replace an existing id.
    """

    checkpoint: str
    model_id: str
    training: str = "{}"
    weights_dir: str = ""
    default: bool = False
    force: bool = False

    def facts(self) -> dict:
        """`training` parsed: a JSON object."""
        try:
            facts = json.loads(self.training)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--training is not JSON: {exc}") from None
        if not isinstance(facts, dict):
            raise UsageError("--training must be a JSON object")
        return facts

    def folder(self) -> Path:
        return Path(self.weights_dir) if self.weights_dir else weights_dir()


@dataclass(kw_only=True)
class HyperpriorExportConfig(ExportConfig):
    """Export of a hyperprior run, from its checkpoint or from weight shards (`--shard-dir`).

    Attributes:
        checkpoint: The run's checkpoint (RUN/checkpoint.pt); or give --shards.
        shards: Folder of <prefix>_<i>.safetensors shards (instead of --checkpoint).
        prefix: File-name prefix of the shards, e.g. lambda0.0067.
        config: Model preset of the shards (a checkpoint names its own).
        lmbda: Trained lambda of a single-rate model in the shards.
        data: Training photos whose held-back crops decide 'better' (empty: the train/ folder of $CODEC_DATA).
        val_crop: Size of those crops.
        force: Replace an existing id even if the new model is not better.
    """

    checkpoint: str = ""
    shards: str = ""
    prefix: str = ""
    config: str = "base"
    lmbda: float = 0.0
    data: str = ""
    val_crop: int = 256
