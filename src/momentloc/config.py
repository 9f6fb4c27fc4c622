"""YAML -> validated config objects, layered: base file(s), experiment, ``--set key=value``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from momentloc.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextConfig(_Strict):
    """How sentences become word vectors."""

    kind: str = "glove"  # a registered text encoder (momentloc.data.text): glove, minilm, hash
    # glove: a shipped-style pickle (w2id/id2vec) or a standard glove.*.txt;
    # minilm: a local model folder, else the installed MiniLM package; hash: deterministic random vectors.
    path: Optional[str] = None
    dim: int = Field(default=300, ge=1, le=65536)
    max_words: int = Field(default=32, ge=1, le=4096)
    lowercase: bool = True
    # Words missing from the vocabulary: "zero" vector or a shared "unk" vector.
    oov: Literal["zero", "unk"] = "zero"

    @field_validator("kind")
    @classmethod
    def _known_encoder(cls, kind: str) -> str:
        from momentloc.registry import text_encoder_names

        known = text_encoder_names()
        if kind not in known:
            raise ValueError(f"unknown text encoder {kind!r}; known: {', '.join(known)}")
        return kind


class DataConfig(_Strict):
    """Which annotations, features and text encoder feed the model."""

    dataset: str
    annotations: Optional[str] = None  # folder; default $MOMENTLOC_DATA/<dataset>
    features: Optional[str] = None  # feature store: folder of .npy, .npz or .hdf5
    feature_dim: int = Field(ge=1, le=1 << 20)
    num_clips: Optional[int] = Field(default=None, ge=1, le=1 << 20)  # resample every video to this T; None keeps its length
    max_clips: Optional[int] = Field(default=None, ge=1, le=1 << 20)  # variable-length cap (mean-pool longer videos down)
    train_split: str = "train"
    val_split: Optional[str] = "val"  # None: carve val_fraction out of train (seeded)
    test_split: str = "test"
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    # Point labels for point-supervised models: the shipped glance files, or
    # a seeded draw inside each window.
    glance: Literal["shipped", "generated"] = "generated"
    text: TextConfig = Field(default_factory=TextConfig)
    # Video-centric batches: each batch item is a video with up to this many of
    # its queries (SnAG); 1 = query-centric.
    queries_per_video: int = Field(default=1, ge=1)
    normalize_features: bool = False  # L2-normalise each clip feature
    # Training only: crop each batch's videos to a random fraction in [lo, hi] of their clips, keeping
    # more than crop_keep of every labelled window (SnAG's long-video training). Variable length only.
    crop_ratio: Optional[tuple[float, float]] = None
    crop_keep: float = Field(default=0.5, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _crop_fits(self) -> "DataConfig":
        if self.crop_ratio is not None:
            lo, hi = self.crop_ratio
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"crop_ratio must be [lo, hi] with 0 < lo <= hi <= 1, got {list(self.crop_ratio)}")
            if self.num_clips is not None:
                raise ValueError("crop_ratio needs num_clips: null (a crop of a video resampled to a fixed length "
                                 "would no longer have that length)")
        return self
    skip_bad_rows: bool = False
    # Simulated features over the real annotations (the simulated Charades-STA): the knobs of
    # momentloc.data.simulate.SimSpec. The store is made on first use, in `features` when given,
    # else in artifacts/charades_sim/<knobs>/; `feature_dim` must equal the knobs' dim.
    simulate: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _simulation_fits(self) -> "DataConfig":
        if self.simulate is None and _is_simulated(self.dataset):
            self.simulate = {"dim": self.feature_dim}  # the simulated set with SimSpec's default knobs
        if self.simulate is not None:
            from momentloc.data.simulate import spec_from

            spec = spec_from(self.simulate)
            if spec.dim != self.feature_dim:
                raise ValueError(f"simulate.dim ({spec.dim}) must equal feature_dim ({self.feature_dim})")
        return self


def _is_simulated(dataset: str) -> bool:
    """Whether ``dataset`` names a set whose features are simulated (``momentloc data simulate``)."""
    from momentloc.data.formats import generated_dataset

    return generated_dataset(dataset, "simulate") is not None


class ModelSection(_Strict):
    """The model to build by registry name and its hyper-parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class ObjectiveSection(_Strict):
    """A plug-in objective by registry name, its weight and parameters."""

    name: str
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    params: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(_Strict):
    """Optimiser and learning-rate schedule."""

    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(default=1e-3, ge=0, allow_inf_nan=False)  # 0: a frozen-weights control
    weight_decay: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    # warmup_cosine / warmup_constant: a linear warm-up over warmup_epochs, then a cosine decay / a constant rate.
    scheduler: Literal["none", "cosine", "step", "warmup_cosine", "warmup_constant", "plateau"] = "none"
    patience: int = Field(default=2, ge=0)  # plateau: epochs without improvement of the monitored metric before lr *= gamma
    warmup_epochs: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    # "step": the warm-up / cosine factor is updated after every optimiser step (SnAG's release), not per epoch.
    schedule_interval: Literal["epoch", "step"] = "epoch"
    step_size: int = Field(default=10, ge=1)
    gamma: float = Field(default=0.1, gt=0, allow_inf_nan=False)
    grad_clip: Optional[float] = Field(default=None, gt=0, allow_inf_nan=False)
    # No weight decay on biases, 1-D parameters (norm weights, scales) and parameters whose
    # name contains one of no_decay_names.
    no_decay: bool = False
    no_decay_names: list[str] = Field(default_factory=list)
    # Parameter-name prefix (as the trainer names them, e.g. "model.text_net") -> factor on lr;
    # the longest matching prefix wins. A prefix that matches no parameter is an error.
    lr_multipliers: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """The training loop (Lightning Trainer settings)."""

    epochs: int = Field(default=10, ge=1, le=1_000_000)
    batch_size: int = Field(default=32, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    num_workers: int = Field(default=0, ge=0, le=256)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # numpy's and Lightning's seed range
    accelerator: str = "auto"
    devices: Union[int, str] = 1
    num_nodes: int = Field(default=1, ge=1)
    strategy: str = "auto"
    precision: str = "32-true"  # e.g. "bf16-mixed" on GPUs that support it
    # fp32 matrix products on a GPU: "high" lets them run on TF32 tensor cores, as cuDNN's convolutions do by
    # default; "highest" keeps them in IEEE fp32 (several times slower on an H100/H200). No effect on a CPU.
    matmul_precision: Literal["highest", "high"] = "high"
    out_dir: str = "runs"
    log_every_n_steps: int = Field(default=10, ge=1)
    check_val_every_n_epoch: int = Field(default=1, ge=1)
    monitor: Optional[str] = None  # the older name of eval.monitor (e.g. val/R1@0.5), still honoured
    max_steps: int = Field(default=-1, ge=-1)  # -1: no step limit (epochs end the run)
    limit_train_batches: Optional[float] = Field(default=None, gt=0, allow_inf_nan=False)
    progress: bool = True
    deterministic: bool = True
    # Exponential moving average of the trainable weights, updated after every optimiser step
    # (avg = decay * avg + (1 - decay) * weight); validation, best-checkpoint selection and
    # evaluating a checkpoint use it. None: off.
    ema_decay: Optional[float] = Field(default=None, gt=0, lt=1)


class EvalConfig(_Strict):
    """How validation and ``momentloc eval`` score; a key left out takes the dataset's protocol (docs/metrics.md)."""

    ks: Optional[list[Annotated[int, Field(ge=1, le=1000)]]] = Field(default=None, min_length=1)  # R@n, Rank@n
    iou_thresholds: Optional[list[Annotated[float, Field(gt=0, le=1)]]] = Field(default=None, min_length=1)
    # The validation metric that selects the checkpoint, e.g. R1@0.7, Rank@5, mAP (default: the dataset's headline:
    # DiDeMo Rank@1, QVHighlights mAP, else R1@0.5).
    monitor: Optional[str] = None


class ExperimentConfig(_Strict):
    """A whole experiment: data, model, objectives, optimiser, loop."""

    # The run's folder name under train.out_dir: a name, not a path (no '/', no leading '.').
    name: str = Field(default="experiment", pattern=r"^[A-Za-z0-9_][A-Za-z0-9._+=@-]{0,199}$")
    data: DataConfig
    model: ModelSection
    objectives: list[ObjectiveSection] = Field(default_factory=list)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``over`` into a copy of ``base`` (dicts merge, the rest replaces)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        elif isinstance(value, dict) and isinstance(out.get(key), list) and value and all(
                str(k).isdigit() and int(k) < len(out[key]) for k in value):
            # a list item by index, as in --set objectives.0.params.support=non_gt
            items = list(out[key])
            for k, v in value.items():
                old = items[int(k)]
                items[int(k)] = deep_merge(old, v) if isinstance(v, dict) and isinstance(old, dict) else v
            out[key] = items
        else:
            out[key] = value
    return out


MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; anything past 1 MB is not one
MAX_BASE_DEPTH = 32


def expand_env(value: Any) -> Any:
    """``$VAR`` / ``${VAR}`` expanded in every string value (never in keys, never across the YAML text, so a variable
    cannot add keys or lines); unset variables stay as written."""
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    if isinstance(value, str) and "$" in value:
        return os.path.expandvars(value)
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder; expected a YAML config file")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes; a config file is at most {MAX_CONFIG_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file: byte 0x{err.object[err.start]:02x} "
                          f"at offset {err.start}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or type(err).__name__})") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: not a text YAML file (it holds NUL bytes)")
    try:
        data = yaml.safe_load(text) or {}
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        raise ConfigError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return expand_env(data)


def load_layers(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML file and the files its ``base:`` list names (relative to it), merged."""
    path = Path(path)
    here = path.resolve()
    if here in _seen:
        chain = " -> ".join(p.name for p in (*_seen, here))
        raise ConfigError(f"{_seen[-1]}: 'base:' forms a cycle ({chain})")
    if len(_seen) >= MAX_BASE_DEPTH:
        raise ConfigError(f"{path}: 'base:' nested more than {MAX_BASE_DEPTH} files deep")
    raw = _read_yaml(path)
    bases = raw.pop("base", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{path}: key 'base': expected a file name or a list of file names")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = deep_merge(merged, load_layers((path.parent / base).resolve(), (*_seen, here)))
    return deep_merge(merged, raw)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a","b","c"], yaml-typed value)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, value = item.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw config dict."""
    out = raw
    for item in overrides:
        keys, value = parse_override(item)
        nested: Any = value
        for key in reversed(keys):
            nested = {key: nested}
        out = deep_merge(out, nested)
    return out


def validate(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    """Validate a raw dict; errors name the key path and what was expected."""
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            msg = f"unknown key {loc!r}"
        else:
            msg = f"key {loc!r}: {first['msg']}"
        more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
        raise ConfigError(f"{source}: {msg}{more}") from None
    _check_names(cfg, source)
    _check_protocol(cfg, source)
    return cfg


def _check_protocol(cfg: ExperimentConfig, source: str) -> None:
    """The ``eval:`` block must fit the dataset's protocol (a monitor it computes), checked before anything runs."""
    from momentloc.metrics.protocol import config_protocol

    try:
        config_protocol(cfg)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _check_names(cfg: ExperimentConfig, source: str) -> None:
    """The model and objectives must be registered names (a typo such as 'spn' is caught here, not in a traceback)."""
    from momentloc.registry import get_model_class, get_objective

    try:
        model = get_model_class(cfg.model.name)
        objectives = [get_objective(obj.name) for obj in cfg.objectives]
    except KeyError as err:
        key = "model.name" if str(err.args[0]).startswith("unknown model") else "objectives"
        raise ConfigError(f"{source}: key {key!r}: {err.args[0]}") from None
    # Parameters too, so a bad one stops the command before anything is created or read.
    if getattr(model, "Config", None) is not None:
        validate_params(model.Config, cfg.model.params, f"{source}: model.params ({cfg.model.name})")
    for i, (obj, section) in enumerate(zip(objectives, cfg.objectives)):
        if getattr(obj, "Config", None) is not None:
            validate_params(obj.Config, section.params, f"{source}: objectives[{i}].params ({section.name})")


def load_config(path: Union[str, Path], overrides: Optional[list[str]] = None) -> ExperimentConfig:
    """Load, layer and validate an experiment config."""
    raw = apply_overrides(load_layers(Path(path)), overrides or [])
    return validate(raw, str(path))


def validate_params(cls: type[BaseModel], params: dict[str, Any], where: str) -> BaseModel:
    """Validate a model/objective ``params`` block against its own config class."""
    bad = _non_finite_or_negative_size(params)
    if bad is not None:
        raise ConfigError(f"{where}: key {bad[0]!r}: {bad[1]}")
    try:
        return cls.model_validate(params)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"{where}: unknown key {loc!r}") from None
        key = f"key {loc!r}: " if loc else ""  # a check of the whole block names no single key
        raise ConfigError(f"{where}: {key}{first['msg']}") from None


# Parameter names that count things (widths, layers, heads, kernels): a negative value cannot build a model.
_SIZE_WORDS = ("hidden", "dim", "layers", "heads", "kernel", "num_", "size", "width", "depth", "levels")


def _non_finite_or_negative_size(params: dict[str, Any], prefix: str = "") -> Optional[tuple[str, str]]:
    """(key, why) for the first model/objective parameter that is NaN / infinite, or a size below 1; else None."""
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found = _non_finite_or_negative_size(value, f"{name}.")
            if found:
                return found
        elif isinstance(value, float) and value != value or isinstance(value, float) and value in (float("inf"), float("-inf")):
            return name, f"expected a finite number, got {value}"
        elif (isinstance(value, int) and not isinstance(value, bool) and value < 0
              and any(word in str(key).lower() for word in _SIZE_WORDS)):
            return name, f"a size or count cannot be negative, got {value}"
    return None
