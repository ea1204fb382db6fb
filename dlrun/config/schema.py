"""The config schema: one dataclass per config-group option.

Every default is defined here, once, with a one-line comment. Each YAML file in
`conf/<group>/` starts from its dataclass (`- /schema/<group>/<name>@_here_` in its
defaults list), so Hydra type-checks values while composing, and `__post_init__`
range checks run once, right after composition (`OmegaConf.to_object`).
Nothing downstream re-validates. This module must not import TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from dlrun.errors import check, one_of

ACTIVATIONS = ("relu", "elu", "selu", "gelu", "tanh", "sigmoid", "swish", "silu",
               "leaky_relu", "softplus", "linear", "mish")
INITIALIZERS = ("auto", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                "lecun_uniform", "lecun_normal", "random_normal", "random_uniform",
                "orthogonal", "zeros", "ones")
TASKS = ("auto", "binary", "multiclass", "regression")


def _positive(value: Any, key: str) -> None:
    check(value is not None and value > 0, key, value, "must be > 0")


def _fuse(value: Any, what: str) -> None:
    """search.fuse / study.fuse: a positive integer or 'auto'."""
    check(value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1), "fuse", value,
          f"must be a positive integer (1: one {what[:-1]} at a time) or 'auto'")


def _in(value: Any, choices: tuple, key: str) -> None:
    check(value in choices, key, value, one_of(value, choices))


def _fraction(value: float, key: str, low_open: bool = True) -> None:
    ok = (0.0 < value < 1.0) if low_open else (0.0 <= value < 1.0)
    check(ok, key, value, "must be in (0, 1)" if low_open else "must be in [0, 1)")


# --------------------------------------------------------------------- data
DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes", "mnist", "fashion_mnist", "cifar10",
            "loans", "cart_abandonment", "reviews", "csv", "images")
TEXT_SETS = ("reviews", "csv")        # sets that can hold a column of free text (data.text)
IMAGE_SETS = ("digits", "mnist", "fashion_mnist", "cifar10")  # columns are pixels: a blank one keeps its place
KERAS_IMAGE_SETS = ("mnist", "fashion_mnist", "cifar10")  # read from keras.datasets' cache (downloaded once)
COLOR_MODES = ("auto", "grayscale", "rgb")
IMAGE_CACHE = ("auto", "memory", "none")
HIGH_CARDINALITY = ("drop", "error", "ordinal", "hash")
RESAMPLING = ("none", "oversample", "undersample")


@dataclass
class DataConfig:
    name: str = "digits"               # see DATASETS (loans, cart_abandonment: generated)
    path: Optional[str] = None         # csv: a .csv or .parquet file
    target: Optional[str] = None       # csv: the target column
    features: Optional[List[str]] = None  # csv: feature columns (null: all but the target)
    categorical: str = "onehot"        # text feature columns: onehot | ordinal | error
    max_categories: int = 50           # a text column with more distinct values is high-cardinality
    high_cardinality: str = "drop"     # such columns (and ID-like ones): drop | error | ordinal | hash
    hash_buckets: int = 32             # high_cardinality=hash: one-hot columns per hashed text column
    drop_constant: Optional[bool] = None  # drop single-valued columns (null: yes, except pixels of image sets)
    target_scaling: str = "standard"   # regression: train on the standardised target (standard | none)
    resample: str = "none"             # classification, training split only: none | oversample | undersample
    missing: str = "impute"            # impute (median/most frequent) | drop (rows) | error
    task: str = "auto"                 # auto (inferred) | binary | multiclass | regression
    test_size: float = 0.2             # fraction of all rows held out for the final test
    val_size: float = 0.1              # fraction of all rows used for validation
    split_seed: int = 0                # seed of the train/validation/test split
    scaling: str = "standard"          # standard | minmax | none (fitted on train only)
    max_rows: Optional[int] = None     # keep a random subset of rows (debug runs)
    train_rows: Optional[int] = None   # keep only this many training rows; validation and test stay whole
    image_shape: Optional[List[int]] = None  # reshape features to this for CNNs, e.g. [8, 8, 1]
    image_size: Optional[List[int]] = None  # images: [height, width] every image is resized to (null: the most common size)
    color_mode: str = "auto"           # images: auto (grayscale when every image is) | grayscale | rgb
    on_bad_image: str = "skip"         # images: a corrupt or unreadable image is skipped (and counted) | error
    cache: str = "auto"                # images: keep decoded images in memory after epoch 1: auto (up to 1 GiB) | memory | none
    text: Optional[str] = None         # a column of free text, read as a sequence of tokens (model=attention | rnn | pooled_embedding)
    max_tokens: int = 20000            # text: vocabulary size, padding and out-of-vocabulary ids included (fitted on the training split)
    sequence_length: Optional[int] = None  # text: tokens kept per row, longer texts cut (null: the 95th percentile of training lengths)

    def __post_init__(self) -> None:
        _in(self.name, DATASETS, "name")
        _in(self.color_mode, COLOR_MODES, "color_mode")
        _in(self.on_bad_image, ("skip", "error"), "on_bad_image")
        _in(self.cache, IMAGE_CACHE, "cache")
        if self.image_size is not None:
            check(len(self.image_size) == 2 and all(isinstance(d, int) and d > 0 for d in self.image_size),
                  "image_size", list(self.image_size), "must be [height, width] in pixels, e.g. [64, 64]")
        if self.name == "images":
            check(bool(self.path), "path", self.path, "data=images needs data.path=DIR (a folder with one "
                  "subfolder of images per class)")
            check(self.scaling == "minmax", "scaling", self.scaling, "data=images scales pixels to [0, 1] "
                  "(minmax); standard and none apply to tables")
            check(self.image_shape is None, "image_shape", self.image_shape, "data=images reads each image's shape "
                  "from the files; set data.image_size=[height, width] (and data.color_mode) instead")
        if self.text is not None:
            check(bool(str(self.text).strip()), "text", self.text, "must name a column of free text (or be null)")
            check(self.name in TEXT_SETS, "text", self.text, f"data={self.name} has no text column; data.text "
                  "names a column of data=csv (or data=reviews)")
            check(self.image_shape is None, "image_shape", self.image_shape, "reshapes pixel columns; a run "
                  "with data.text reads its text as tokens (set data.image_shape=null)")
        check(isinstance(self.max_tokens, int) and self.max_tokens >= 3, "max_tokens", self.max_tokens,
              "must be >= 3 (the padding id, the out-of-vocabulary id and at least one word)")
        if self.sequence_length is not None:
            check(isinstance(self.sequence_length, int) and self.sequence_length >= 1, "sequence_length",
                  self.sequence_length, "must be >= 1 (tokens per text) or null (the 95th percentile of lengths)")
        _in(self.categorical, ("onehot", "ordinal", "error"), "categorical")
        _in(self.missing, ("impute", "drop", "error"), "missing")
        check(self.max_categories >= 2, "max_categories", self.max_categories, "must be >= 2")
        _in(self.high_cardinality, HIGH_CARDINALITY, "high_cardinality")
        check(self.hash_buckets >= 2, "hash_buckets", self.hash_buckets, "must be >= 2")
        _in(self.target_scaling, ("standard", "none"), "target_scaling")
        _in(self.resample, RESAMPLING, "resample")
        _in(self.task, TASKS, "task")
        _in(self.scaling, ("standard", "minmax", "none"), "scaling")
        _fraction(self.test_size, "test_size")
        _fraction(self.val_size, "val_size")
        check(self.test_size + self.val_size < 1.0, "val_size", self.val_size,
              f"val_size + test_size must leave rows to train on (test_size={self.test_size})")
        check(self.split_seed >= 0, "split_seed", self.split_seed, "must be >= 0")
        if self.max_rows is not None:
            check(self.max_rows >= 10, "max_rows", self.max_rows, "must be >= 10 or null")
        if self.train_rows is not None:
            check(self.train_rows >= 2, "train_rows", self.train_rows, "must be >= 2 or null")
        if self.name == "csv":
            check(bool(self.path), "path", self.path, "data=csv needs data.path=FILE (.csv or .parquet)")
            check(bool(self.target), "target", self.target, "data=csv needs data.target=COLUMN")
        if self.image_shape is not None:
            check(len(self.image_shape) in (2, 3) and all(d > 0 for d in self.image_shape),
                  "image_shape", self.image_shape, "must be [height, width] or [height, width, channels]")


# -------------------------------------------------------------------- model
@dataclass
class MLPConfig:
    name: str = "mlp"
    units: List[int] = field(default_factory=lambda: [256])  # width of each hidden Dense layer
    activation: str = "relu"           # hidden-layer activation
    initializer: str = "auto"          # kernel initializer of every Dense layer (auto: by task, see models/)

    def __post_init__(self) -> None:
        check(len(self.units) > 0 and all(u > 0 for u in self.units), "units", list(self.units),
              "must be a non-empty list of positive layer widths, e.g. [128, 64]")
        _in(self.activation, ACTIVATIONS, "activation")
        _in(self.initializer, INITIALIZERS, "initializer")


@dataclass
class CNNConfig:
    name: str = "cnn"
    filters: List[int] = field(default_factory=lambda: [32, 64])  # one conv block per entry
    kernel_size: int = 3               # square convolution kernel
    pool_size: int = 2                 # max-pooling after each block (1: no pooling)
    padding: str = "same"              # same | valid
    units: List[int] = field(default_factory=lambda: [64])  # dense head after flattening
    activation: str = "relu"
    initializer: str = "auto"          # auto: he_uniform for classes, glorot_uniform for regression

    def __post_init__(self) -> None:
        check(len(self.filters) > 0 and all(f > 0 for f in self.filters), "filters", list(self.filters),
              "must be a non-empty list of positive filter counts")
        _positive(self.kernel_size, "kernel_size")
        _positive(self.pool_size, "pool_size")
        _in(self.padding, ("same", "valid"), "padding")
        check(all(u > 0 for u in self.units), "units", list(self.units), "must be positive layer widths")
        _in(self.activation, ACTIVATIONS, "activation")
        _in(self.initializer, INITIALIZERS, "initializer")


@dataclass
class ResidualMLPConfig:
    name: str = "residual_mlp"
    units: List[int] = field(default_factory=lambda: [128, 128, 128, 128])  # one residual block per entry
    block_layers: int = 2              # Dense layers inside each block (the skip goes around them)
    activation: str = "relu"
    initializer: str = "auto"          # auto: he_uniform for classes, glorot_uniform for regression

    def __post_init__(self) -> None:
        check(len(self.units) > 0 and all(u > 0 for u in self.units), "units", list(self.units),
              "must be a non-empty list of positive block widths, e.g. [128, 128, 128]")
        check(self.block_layers >= 1, "block_layers", self.block_layers, "must be >= 1")
        _in(self.activation, ACTIVATIONS, "activation")
        _in(self.initializer, INITIALIZERS, "initializer")


@dataclass
class FineTuneConfig:
    layers: int = 0                    # second phase: unfreeze the backbone's top N layers (0: no second phase)
    epochs: int = 10                   # epochs of the second phase (after trainer.epochs of the first)
    learning_rate: float = 1.0e-5      # its learning rate: low, so large steps do not undo what the backbone learned

    def __post_init__(self) -> None:
        check(isinstance(self.layers, int) and self.layers >= 0, "fine_tune.layers", self.layers,
              "must be >= 0 (0: no second phase)")
        check(self.epochs >= 1, "fine_tune.epochs", self.epochs, "must be >= 1")
        _positive(self.learning_rate, "fine_tune.learning_rate")


@dataclass
class TransferConfig:
    name: str = "transfer"
    backbone: str = "mobilenet_v3_small"  # a keras.applications model (dlrun/models/backbones.py lists them)
    weights: str = "imagenet"          # imagenet (downloaded once) | none (random) | PATH to a backbone weights file
    freeze: bool = True                # feature extraction: the backbone stays fixed, only the head trains
    input_size: Optional[List[int]] = None  # [height, width] images are resized to inside the model (null: as they come)
    pooling: str = "avg"               # how the backbone's last feature map becomes a vector: avg | max
    units: List[int] = field(default_factory=list)  # Dense layers of the head before the output (none by default)
    dropout: float = 0.2               # dropout before the output layer (0: none)
    activation: str = "relu"           # activation of the head's Dense layers
    initializer: str = "auto"          # auto: he_uniform for classes, glorot_uniform for regression
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)

    def __post_init__(self) -> None:
        from dlrun.models.backbones import BACKBONES

        _in(self.backbone, tuple(BACKBONES), "backbone")
        check(bool(str(self.weights).strip()), "weights", self.weights, "imagenet, none or a PATH to a weights file")
        if self.input_size is not None:
            check(len(self.input_size) == 2 and all(isinstance(d, int) and d > 0 for d in self.input_size),
                  "input_size", list(self.input_size), "must be [height, width] in pixels, e.g. [96, 96]")
        _in(self.pooling, ("avg", "max"), "pooling")
        check(all(u > 0 for u in self.units), "units", list(self.units), "must be positive layer widths")
        check(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        _in(self.activation, ACTIVATIONS, "activation")
        _in(self.initializer, INITIALIZERS, "initializer")
        if self.fine_tune.layers:
            check(self.freeze, "fine_tune.layers", self.fine_tune.layers,
                  "a second phase unfreezes the top of a frozen backbone: set model.freeze=true "
                  "(model.freeze=false trains the whole backbone from the start)")
            total = BACKBONES[self.backbone].layers
            check(self.fine_tune.layers <= total, "fine_tune.layers", self.fine_tune.layers,
                  f"{self.backbone} has {total} layers")


IMAGE_MODELS = ("cnn", "transfer")  # models of images: the data must be images (image_shape, or data=images)


# ---------------------------------------------------------- sequence models
SEQUENCE_MODELS = ("attention", "rnn", "pooled_embedding")  # read data.text's tokens, or an image row by row (or patch by patch)
SEQUENCE_POOLING = ("mean", "max")
RNN_CELLS = ("lstm", "gru")


def _patch_size(value: Optional[List[int]]) -> None:
    if value is not None:
        check(len(value) == 2 and all(isinstance(d, int) and d > 0 for d in value), "patch_size", list(value),
              "must be [height, width] in pixels, e.g. [4, 4], or null (one token per image row)")


def _head(cfg: Any) -> None:
    check(all(u > 0 for u in cfg.units), "units", list(cfg.units), "must be positive layer widths")
    _in(cfg.activation, ACTIVATIONS, "activation")
    _in(cfg.initializer, INITIALIZERS, "initializer")
    check(0.0 <= cfg.dropout < 1.0, "dropout", cfg.dropout, "must be in [0, 1)")
    _patch_size(cfg.patch_size)


@dataclass
class AttentionConfig:
    """A small Transformer encoder (Keras's text classification with Transformer example)."""
    name: str = "attention"
    dim: int = 96                      # width of every token's vector (embedding and each block)
    heads: int = 4                     # attention heads per block; each head attends in dim/heads dimensions
    layers: int = 2                    # encoder blocks: self-attention, then feed-forward, each with a residual and layer norm
    ff_units: int = 128                # hidden width of each block's feed-forward part
    dropout: float = 0.1               # dropout of the attention weights and after each part of a block
    positions: bool = True             # add a learned position embedding (false: the model sees an unordered set of tokens)
    pooling: str = "mean"              # how the tokens become one vector: mean | max (padding left out)
    patch_size: Optional[List[int]] = None  # images: [height, width] of each token's patch (null: one token per image row)
    units: List[int] = field(default_factory=list)  # Dense layers of the head before the output (none by default)
    activation: str = "gelu"           # feed-forward and head activation
    initializer: str = "auto"          # auto: he_uniform for classes, glorot_uniform for regression

    def __post_init__(self) -> None:
        _positive(self.dim, "dim")
        _positive(self.heads, "heads")
        check(self.dim % self.heads == 0, "heads", self.heads, f"must divide model.dim={self.dim} (each head gets "
              f"dim/heads dimensions); e.g. heads={nearest_divisor(self.dim, self.heads)}")
        check(self.layers >= 1, "layers", self.layers, "must be >= 1")
        _positive(self.ff_units, "ff_units")
        _in(self.pooling, SEQUENCE_POOLING, "pooling")
        _head(self)


def nearest_divisor(n: int, k: int) -> int:
    """The divisor of n closest to k (the smaller on a tie)."""
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - k), d))


@dataclass
class RNNConfig:
    """Recurrent layers (no attention): each token is read in order."""
    name: str = "rnn"
    cell: str = "lstm"                 # lstm | gru
    dim: int = 64                      # width of every token's vector (text: embedding; images: each row or patch projected)
    units: List[int] = field(default_factory=lambda: [64])  # one recurrent layer per entry; the last one's final state feeds the output
    bidirectional: bool = False        # read each sequence in both directions
    dropout: float = 0.0               # dropout of each recurrent layer's inputs
    patch_size: Optional[List[int]] = None  # images: [height, width] of each token's patch (null: one token per image row)
    activation: str = "tanh"           # recurrent activation (the cell's own)
    initializer: str = "auto"          # of the token projection and the output (the cells keep Keras's own)

    def __post_init__(self) -> None:
        _in(self.cell, RNN_CELLS, "cell")
        _positive(self.dim, "dim")
        check(len(self.units) > 0, "units", list(self.units), "must be a non-empty list of recurrent layer widths, e.g. [64]")
        _head(self)


@dataclass
class PooledEmbeddingConfig:
    """Token vectors pooled into one (no attention, no order), then a dense head: the baseline."""
    name: str = "pooled_embedding"
    dim: int = 64                      # width of every token's vector
    pooling: str = "mean"              # mean | max over the tokens (padding left out)
    positions: bool = False            # add a learned position embedding before pooling
    units: List[int] = field(default_factory=lambda: [64])  # Dense layers of the head after pooling
    dropout: float = 0.0               # dropout after pooling
    patch_size: Optional[List[int]] = None  # images: [height, width] of each token's patch (null: one token per image row)
    activation: str = "relu"           # head activation
    initializer: str = "auto"          # auto: he_uniform for classes, glorot_uniform for regression

    def __post_init__(self) -> None:
        _positive(self.dim, "dim")
        _in(self.pooling, SEQUENCE_POOLING, "pooling")
        _head(self)


# ------------------------------------------------------------- augmentation
FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")


@dataclass
class AugmentationConfig:
    """Random changes to training images (Keras preprocessing layers at the model's
    input, active in training only: validation, test and predictions see the images as they are)."""
    name: str = "none"                 # none | standard | strong (each a file in conf/augmentation/)
    flip: str = "none"                 # none | horizontal | vertical | horizontal_and_vertical
    rotation: float = 0.0              # up to +- this fraction of a full turn (0.05: 18 degrees)
    zoom: float = 0.0                  # zoom in or out by up to this fraction of the size
    translation: float = 0.0           # shift by up to this fraction of the height and width
    contrast: float = 0.0              # scale contrast by a factor in [1 - c, 1 + c]
    noise: float = 0.0                 # Gaussian noise of this standard deviation (pixels in [0, 1])
    examples: int = 8                  # training images shown in augmentation_examples.png (0: no picture)

    def __post_init__(self) -> None:
        _in(self.flip, FLIPS, "flip")
        check(0.0 <= self.rotation <= 0.5, "rotation", self.rotation, "must be in [0, 0.5] (a fraction of a full turn)")
        check(0.0 <= self.zoom < 1.0, "zoom", self.zoom, "must be in [0, 1)")
        check(0.0 <= self.translation <= 0.5, "translation", self.translation, "must be in [0, 0.5]")
        check(0.0 <= self.contrast <= 1.0, "contrast", self.contrast, "must be in [0, 1]")
        check(0.0 <= self.noise <= 1.0, "noise", self.noise, "must be in [0, 1] (pixels are in [0, 1])")
        check(self.examples >= 0, "examples", self.examples, "must be >= 0")

    @property
    def active(self) -> bool:
        """Whether any random change is set."""
        return self.flip != "none" or any((self.rotation, self.zoom, self.translation, self.contrast, self.noise))


# ---------------------------------------------------------------- optimizer
@dataclass
class OptimizerBase:
    name: str = "sgd"
    learning_rate: float = 0.01        # step size (the schedule starts from it)
    clipnorm: Optional[float] = None   # clip each gradient to this L2 norm
    clipvalue: Optional[float] = None  # clip each gradient element to +-this

    def __post_init__(self) -> None:
        _positive(self.learning_rate, "learning_rate")
        for key in ("clipnorm", "clipvalue"):
            value = getattr(self, key)
            if value is not None:
                _positive(value, key)


@dataclass
class SGDConfig(OptimizerBase):
    pass


@dataclass
class MomentumConfig(OptimizerBase):
    name: str = "momentum"
    momentum: float = 0.9              # fraction of the previous update kept

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.momentum < 1.0, "momentum", self.momentum, "must be in [0, 1)")


@dataclass
class NesterovConfig(MomentumConfig):
    name: str = "nesterov"


@dataclass
class AdagradConfig(OptimizerBase):
    name: str = "adagrad"
    initial_accumulator_value: float = 0.1  # starting sum of squared gradients
    epsilon: float = 1e-7

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.initial_accumulator_value >= 0, "initial_accumulator_value",
              self.initial_accumulator_value, "must be >= 0")
        _positive(self.epsilon, "epsilon")


@dataclass
class AdadeltaConfig(OptimizerBase):
    name: str = "adadelta"
    learning_rate: float = 1.0         # Adadelta's step is already scaled; 1.0 as in the paper
    rho: float = 0.95                  # decay of the running averages
    epsilon: float = 1e-7

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction(self.rho, "rho")
        _positive(self.epsilon, "epsilon")


@dataclass
class RMSpropConfig(OptimizerBase):
    name: str = "rmsprop"
    learning_rate: float = 0.001
    rho: float = 0.9                   # decay of the squared-gradient average
    momentum: float = 0.0
    epsilon: float = 1e-7
    centered: bool = False             # normalise by the gradient variance estimate

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction(self.rho, "rho")
        check(0.0 <= self.momentum < 1.0, "momentum", self.momentum, "must be in [0, 1)")
        _positive(self.epsilon, "epsilon")


@dataclass
class AdamConfig(OptimizerBase):
    name: str = "adam"
    learning_rate: float = 0.001
    beta_1: float = 0.9                # decay of the first-moment estimate
    beta_2: float = 0.999              # decay of the second-moment estimate
    epsilon: float = 1e-7
    amsgrad: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.beta_1 < 1.0, "beta_1", self.beta_1, "must be in [0, 1)")
        check(0.0 <= self.beta_2 < 1.0, "beta_2", self.beta_2, "must be in [0, 1)")
        _positive(self.epsilon, "epsilon")


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = 0.004        # decoupled weight decay

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")


@dataclass
class NadamConfig(OptimizerBase):
    name: str = "nadam"
    learning_rate: float = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.beta_1 < 1.0, "beta_1", self.beta_1, "must be in [0, 1)")
        check(0.0 <= self.beta_2 < 1.0, "beta_2", self.beta_2, "must be in [0, 1)")
        _positive(self.epsilon, "epsilon")


# ----------------------------------------------------------------- schedule
@dataclass
class ConstantSchedule:
    name: str = "constant"


@dataclass
class ExponentialSchedule:
    name: str = "exponential"
    decay_rate: float = 0.9            # multiply the learning rate by this ...
    decay_epochs: float = 1.0          # ... every this many epochs
    staircase: bool = False            # decay in steps rather than smoothly

    def __post_init__(self) -> None:
        check(0.0 < self.decay_rate <= 1.0, "decay_rate", self.decay_rate, "must be in (0, 1]")
        _positive(self.decay_epochs, "decay_epochs")


@dataclass
class CosineSchedule:
    name: str = "cosine"
    decay_epochs: Optional[float] = None  # length of the cosine (null: the whole run)
    alpha: float = 0.0                 # final learning rate as a fraction of the initial one
    warmup_epochs: float = 0.0         # linear warm-up from 0 before the decay

    def __post_init__(self) -> None:
        if self.decay_epochs is not None:
            _positive(self.decay_epochs, "decay_epochs")
        check(0.0 <= self.alpha <= 1.0, "alpha", self.alpha, "must be in [0, 1]")
        check(self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs, "must be >= 0")


@dataclass
class StepSchedule:
    name: str = "step"
    boundaries: List[int] = field(default_factory=lambda: [20, 40])  # epochs where the rate drops
    factor: float = 0.1                # multiply the rate by this at each boundary

    def __post_init__(self) -> None:
        b = list(self.boundaries)
        check(len(b) > 0 and all(x > 0 for x in b) and b == sorted(set(b)), "boundaries", b,
              "must be a non-empty, increasing list of positive epochs")
        check(0.0 < self.factor < 1.0, "factor", self.factor, "must be in (0, 1)")


@dataclass
class PlateauSchedule:
    name: str = "plateau"
    monitor: str = "val_loss"          # metric watched for a plateau
    factor: float = 0.5                # multiply the rate by this on a plateau
    patience: int = 5                  # epochs without improvement before reducing
    min_delta: float = 1e-4            # smallest change that counts as improvement
    cooldown: int = 0                  # epochs to wait after a reduction
    min_lr: float = 1e-6               # never go below this rate

    def __post_init__(self) -> None:
        check(0.0 < self.factor < 1.0, "factor", self.factor, "must be in (0, 1)")
        check(self.patience >= 0, "patience", self.patience, "must be >= 0")
        check(self.min_delta >= 0, "min_delta", self.min_delta, "must be >= 0")
        check(self.cooldown >= 0, "cooldown", self.cooldown, "must be >= 0")
        check(self.min_lr >= 0, "min_lr", self.min_lr, "must be >= 0")


# --------------------------------------------------------------------- loss
REGRESSION_LOSSES = ("mse", "mae", "huber", "msle", "log_cosh", "quantile")
BINARY_LOSSES = ("binary_crossentropy", "hinge")
MULTICLASS_LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy")
LOSSES = ("auto", "custom") + REGRESSION_LOSSES + BINARY_LOSSES + MULTICLASS_LOSSES


@dataclass
class LossConfig:
    name: str = "auto"                 # auto: crossentropy for classes, mse for regression

    def __post_init__(self) -> None:
        _in(self.name, LOSSES, "name")


@dataclass
class HuberLoss(LossConfig):
    name: str = "huber"
    delta: float = 1.0                 # quadratic below this error, linear above

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self.delta, "delta")


@dataclass
class QuantileLoss(LossConfig):
    name: str = "quantile"
    quantile: float = 0.5              # 0.5 = median (pinball loss)

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction(self.quantile, "quantile")


@dataclass
class CustomLoss(LossConfig):
    name: str = "custom"
    function: str = "???"              # dotted path: package.module.function(y_true, y_pred)
    task: Optional[str] = None         # the task it fits (null: any)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.function.count(".") >= 1 and " " not in self.function, "function", self.function,
              "must be a dotted path such as mypkg.losses.my_loss")
        if self.task is not None:
            _in(self.task, TASKS[1:], "task")


# ----------------------------------------------------------- regularization
@dataclass
class KernelPenalty:
    l1: float = 0.0                    # L1 strength on every kernel
    l2: float = 0.0                    # L2 strength on every kernel

    def __post_init__(self) -> None:
        check(self.l1 >= 0, "kernel.l1", self.l1, "must be >= 0")
        check(self.l2 >= 0, "kernel.l2", self.l2, "must be >= 0")


@dataclass
class DropoutConfig:
    rate: float = 0.2                  # fraction of units dropped after each hidden layer
    input_rate: float = 0.0            # fraction of inputs dropped

    def __post_init__(self) -> None:
        check(0.0 <= self.rate < 1.0, "dropout.rate", self.rate, "must be in [0, 1)")
        check(0.0 <= self.input_rate < 1.0, "dropout.input_rate", self.input_rate, "must be in [0, 1)")


@dataclass
class BatchNormConfig:
    position: str = "before"           # before | after the activation
    momentum: float = 0.99             # moving-average momentum

    def __post_init__(self) -> None:
        _in(self.position, ("before", "after"), "batchnorm.position")
        _fraction(self.momentum, "batchnorm.momentum")


@dataclass
class NoiseConfig:
    stddev: float = 0.1                # std of the Gaussian noise added while training
    position: str = "input"            # input | hidden | both

    def __post_init__(self) -> None:
        _positive(self.stddev, "noise.stddev")
        _in(self.position, ("input", "hidden", "both"), "noise.position")


@dataclass
class EarlyStoppingConfig:
    monitor: str = "val_loss"          # metric watched
    patience: int = 10                 # epochs without improvement before stopping (as MLPClassifier)
    min_delta: float = 0.0             # smallest change that counts as improvement
    restore_best_weights: bool = True  # end with the best epoch's weights

    def __post_init__(self) -> None:
        check(self.patience >= 0, "early_stopping.patience", self.patience, "must be >= 0")
        check(self.min_delta >= 0, "early_stopping.min_delta", self.min_delta, "must be >= 0")


@dataclass
class RegularizationConfig:
    """Each section that is present is applied; several may be combined."""
    kernel: Optional[KernelPenalty] = None
    dropout: Optional[DropoutConfig] = None
    batchnorm: Optional[BatchNormConfig] = None
    noise: Optional[NoiseConfig] = None
    early_stopping: Optional[EarlyStoppingConfig] = None


# ------------------------------------------------------------------ trainer
METRICS_BY_TASK = {  # trainer.metrics each task compiles (the data's task: checked in preflight)
    "regression": ("mae", "mse", "rmse", "mape", "r2"),
    "binary": ("accuracy", "auc", "pr_auc", "precision", "recall", "f1"),
    "multiclass": ("accuracy", "top3_accuracy"),
}
METRICS = tuple(dict.fromkeys(m for names in METRICS_BY_TASK.values() for m in names))  # every metric dlrun knows


STRATEGIES = ("none", "mirrored", "multi_worker")


@dataclass
class TrainerConfig:
    epochs: int = 100                  # upper bound; early stopping may end sooner
    batch_size: Any = 32               # rows per step, or "full" for full-batch descent
    seed: int = 0                      # seeds Python, NumPy and Keras
    deterministic: bool = False        # also make TensorFlow ops deterministic (slower)
    metrics: List[str] = field(default_factory=lambda: ["auto"])  # auto: accuracy or mae by task
    verbose: int = 1                   # 0 silent, 1 rich progress, 2 Keras's own log
    steps_per_execution: Any = "auto"  # auto: one epoch per call on small data; or an int
    threads: int = 0                   # TensorFlow CPU threads (0: TensorFlow decides)
    save_model: bool = True            # write model.keras into the run directory
    class_weight: Any = "none"         # classification: none | balanced | {label: weight}
    threshold: Any = 0.5               # binary: probability that counts as positive, or auto (best F1 on validation)
    checkpoint: Any = "auto"           # save the training state after epochs: true (each) | auto (at most every 10 s) | false
    keep_best: bool = False            # end with the weights of the best epoch (early_stopping.monitor, else val_loss)
    strategy: str = "none"             # none | mirrored (local GPUs, or trainer.cpu_devices) | multi_worker (TF_CONFIG)
    cpu_devices: int = 1               # split the CPU into this many logical devices (mirrored training without a GPU)
    mixed_precision: bool = False      # mixed_float16 on a GPU; without one: a warning, and float32

    def __post_init__(self) -> None:
        _positive(self.epochs, "epochs")
        _in(self.strategy, STRATEGIES, "strategy")
        check(isinstance(self.cpu_devices, int) and self.cpu_devices >= 1, "cpu_devices", self.cpu_devices,
              "must be >= 1")
        check(self.checkpoint in (True, False, "auto"), "checkpoint", self.checkpoint, "must be true, false or auto")
        if isinstance(self.batch_size, str):
            check(self.batch_size == "full", "batch_size", self.batch_size,
                  "must be a positive integer or 'full'")
        else:
            check(isinstance(self.batch_size, int) and self.batch_size > 0, "batch_size",
                  self.batch_size, "must be a positive integer or 'full'")
        check(self.seed >= 0, "seed", self.seed, "must be >= 0")
        check(self.verbose in (0, 1, 2), "verbose", self.verbose, "one of 0, 1, 2")
        if isinstance(self.steps_per_execution, str):
            check(self.steps_per_execution == "auto", "steps_per_execution",
                  self.steps_per_execution, "must be 'auto' or a positive integer")
        else:
            _positive(self.steps_per_execution, "steps_per_execution")
        check(self.threads >= 0, "threads", self.threads, "must be >= 0")
        for name in self.metrics:  # a typo answers right after composition; the task: preflight
            _in(name, ("auto", *METRICS), "metrics")
        _check_class_weight(self.class_weight)
        if isinstance(self.threshold, str):
            check(self.threshold == "auto", "threshold", self.threshold, "must be a number in (0, 1) or 'auto'")
        else:
            check(isinstance(self.threshold, (int, float)) and not isinstance(self.threshold, bool)
                  and 0.0 < self.threshold < 1.0, "threshold", self.threshold, "must be a number in (0, 1) or 'auto'")


def _check_class_weight(value: Any) -> None:
    """none | balanced | {label: weight > 0}; the labels are checked against the data later."""
    if isinstance(value, str):
        check(value in ("none", "balanced"), "class_weight", value,
              one_of(value, ("none", "balanced")) + ", or a mapping {label: weight}")
        return
    check(isinstance(value, dict) and len(value) > 0, "class_weight", value,
          "must be none, balanced or a mapping {label: weight}, e.g. {yes: 5, no: 1}")
    for label, weight in value.items():
        check(isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight > 0,
              f"class_weight.{label}", weight, "must be a positive number")


# -------------------------------------------------------------- diagnostics
@dataclass
class DiagnosisRules:
    """Thresholds of the verdict rules (dlrun/diagnostics/rules.py): published values where there are
    ones (AUTOTRAINER, Zhang et al. ICSE 2021), the rest measured on benchmarks/diagnostics_cases/."""
    start_fraction: float = 0.3        # gradient rules judge the epochs from this fraction of the run on (AUTOTRAINER)
    vanishing_ratio: float = 1e-3      # first/last layer gradient-norm ratio below this: vanishing (AUTOTRAINER)
    exploding_ratio: float = 70.0      # first/last layer gradient-norm ratio above this: exploding (AUTOTRAINER)
    exploding_loss: float = 3.0        # the training loss above this many times its value before training: exploding
    dead_fraction: float = 0.7         # a ReLU layer with this fraction of units at 0 for every row: dead (AUTOTRAINER)
    saturated_fraction: float = 0.7    # a sigmoid/tanh layer with this fraction of units pinned at a bound: saturated
    unstable_rises: float = 0.3        # unstable: this fraction of the epochs raise the training loss ...
    unstable_rise: float = 0.05        # ... each by more than this fraction of the loss before training
    unstable_spikes: int = 3           # or: this many epochs at twice the lowest loss so far (and unstable_rise above it)
    min_progress: float = 0.1          # underfitting: the best validation metric closed less of the gap from chance to perfect
    overfit_rise: float = 0.1          # overfitting: validation loss this fraction above its best ...
    overfit_epochs: int = 5            # ... for this many epochs after the best one, while the training loss fell
    min_epochs: int = 3                # fewer epochs: no trend rule (unstable, underfitting, overfitting) is judged
    deep_saturating: int = 5           # dlrun check warns about this many or more sigmoid/tanh hidden layers

    def __post_init__(self) -> None:
        _fraction(self.start_fraction, "rules.start_fraction", low_open=False)
        for key in ("vanishing_ratio", "exploding_ratio", "exploding_loss", "unstable_rise", "overfit_rise"):
            _positive(getattr(self, key), f"rules.{key}")
        for key in ("dead_fraction", "saturated_fraction", "unstable_rises", "min_progress"):
            check(0.0 < getattr(self, key) <= 1.0, f"rules.{key}", getattr(self, key), "must be in (0, 1]")
        check(self.vanishing_ratio < self.exploding_ratio, "rules.vanishing_ratio", self.vanishing_ratio,
              f"must be below rules.exploding_ratio ({self.exploding_ratio})")
        check(self.overfit_epochs >= 1, "rules.overfit_epochs", self.overfit_epochs, "must be >= 1")
        check(self.unstable_spikes >= 1, "rules.unstable_spikes", self.unstable_spikes, "must be >= 1")
        check(self.min_epochs >= 2, "rules.min_epochs", self.min_epochs, "must be >= 2")
        check(self.deep_saturating >= 2, "rules.deep_saturating", self.deep_saturating, "must be >= 2")


@dataclass
class DiagnosticsConfig:
    """Training diagnostics: per-epoch gradient and activation statistics, a verdict with
    evidence and suggested overrides, and optional automatic repair."""
    enabled: bool = False              # statistics (gradients.csv/.png) and a verdict for every run and trial
    batch_rows: int = 256              # training rows of the fixed batch the statistics are computed on
    rules: DiagnosisRules = field(default_factory=DiagnosisRules)
    repair: bool = False               # rerun a run whose verdict is a problem with the suggested overrides
    max_repairs: int = 3               # at most this many repair attempts (each an ordinary run)

    def __post_init__(self) -> None:
        check(self.batch_rows >= 8, "batch_rows", self.batch_rows, "must be >= 8")
        check(self.max_repairs >= 1, "max_repairs", self.max_repairs, "must be >= 1")


# ------------------------------------------------------------------- logger
LOGGERS = ("none", "tensorboard")


@dataclass
class LoggerConfig:
    name: str = "none"                 # none | tensorboard (RUN_DIR/tensorboard/)
    histogram_freq: int = 1            # tensorboard: weight and gradient histograms every this many epochs (0: none)

    def __post_init__(self) -> None:
        _in(self.name, LOGGERS, "name")
        check(self.histogram_freq >= 0, "histogram_freq", self.histogram_freq, "must be >= 0 (0: no histograms)")


# ------------------------------------------------------------------ explain
EXPLAIN_METHODS = ("permutation", "shap", "lime",  # tabular: a model of table rows
                   "saliency", "integrated_gradients", "grad_cam", "feature_visualization",  # images (CNN)
                   "attention")  # model=attention: its attention weights against integrated gradients


@dataclass
class ExplainConfig:
    """`dlrun explain RUN_DIR explain.KEY=VALUE`: which explanations, of which test rows."""
    methods: List[str] = field(default_factory=lambda: ["auto"])  # auto: every method that fits the model
    rows: Any = "auto"                 # test rows explained one by one (0 = first test row), or auto
    n_rows: int = 4                    # auto: this many rows (classes: a misclassified one among them)
    repeats: int = 5                   # permutation: shuffles per feature (mean and std over them)
    max_rows: int = 2000               # permutation: at most this many test rows (a random subset)
    shap_rows: int = 200               # SHAP: test rows explained (a random subset; shap_values.csv, the summary)
    background: int = 100              # SHAP: training rows the expectations are taken over
    lime_samples: int = 2000           # LIME: perturbed samples per explained row
    lime_features: int = 8             # LIME: features in each row's explanation
    top: int = 15                      # features shown in plots and the summary
    ig_steps: int = 64                 # integrated gradients: path steps (more are taken until complete within 1%)
    smooth_samples: int = 20           # SmoothGrad: noisy copies averaged per row
    smooth_noise: float = 0.15         # SmoothGrad: noise std as a fraction of each image's value range
    layer: Optional[str] = None        # feature visualization: a layer name (null: each conv layer and the output)
    units: Any = "auto"                # feature visualization: unit (filter) indices, or auto (the first few)
    steps: int = 200                   # feature visualization: gradient-ascent steps
    seed: int = 0                      # seeds shuffles, background rows, LIME samples and SmoothGrad noise
    out: Optional[str] = None          # output folder (null: RUN_DIR/explain)
    check_data: bool = True            # refuse data that differs from the run's (false: explain it as it is now)

    def __post_init__(self) -> None:
        check(isinstance(self.methods, list) and len(self.methods) > 0, "methods", self.methods,
              "a list of methods, e.g. [permutation,shap]")
        for name in self.methods:
            _in(name, ("auto", *EXPLAIN_METHODS), "methods")
        if self.rows != "auto":
            check(isinstance(self.rows, list) and self.rows and all(isinstance(r, int) and r >= 0 for r in self.rows),
                  "rows", self.rows, "auto, or a list of test-row positions >= 0, e.g. [0,5,12]")
        if self.units != "auto":
            check(isinstance(self.units, list) and self.units and all(isinstance(u, int) and u >= 0
                                                                      for u in self.units),
                  "units", self.units, "auto, or a list of unit indices >= 0, e.g. [0,1,2]")
        for key in ("n_rows", "repeats", "max_rows", "shap_rows", "background", "lime_samples", "lime_features", "top",
                    "ig_steps", "smooth_samples", "steps"):
            check(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")
        check(self.background >= 2, "background", self.background, "must be >= 2")
        check(0.0 <= self.smooth_noise <= 1.0, "smooth_noise", self.smooth_noise, "must be in [0, 1]")


# ------------------------------------------------------------------- search
SEARCH_ALGORITHMS = ("random", "grid", "bayesian", "hyperband")


@dataclass
class SearchBase:
    name: str = "random"
    max_trials: Optional[int] = 10     # trials to run (grid: null = the whole grid)
    objective: str = "val_loss"        # any compiled metric, val_ for validation
    direction: str = "auto"            # auto (from the name) | min | max
    seed: int = 0                      # makes the trial sequence repeatable (0 included)
    executions_per_trial: int = 1      # fits per trial, objective averaged (noisy objectives)
    cv_folds: int = 0                  # >1: k-fold CV over train+validation, mean and std
    max_consecutive_failures: int = 3  # stop the search after this many failed trials in a row
    overwrite: bool = False            # true: start afresh instead of resuming in the same folder
    refit: bool = True                 # refit the best config on train+validation, score on test
    workers: int = 0                   # >0: this many worker processes (keras-tuner's distributed mode)
    worker_threads: int = 0            # CPU threads per local worker (0: the cores split between them)
    host: str = "127.0.0.1"            # address the chief oracle listens on (0.0.0.0: other machines too)
    port: int = 0                      # the chief oracle's port (0: a free one)
    fuse: Any = 1                      # trials trained at once as branches of one model; auto: as many as fit

    def __post_init__(self) -> None:
        _fuse(self.fuse, "trials")
        check(self.workers >= 0, "workers", self.workers, "must be >= 0 (0: trials run in this process)")
        check(self.worker_threads >= 0, "worker_threads", self.worker_threads, "must be >= 0 (0: split the cores)")
        check(bool(self.host.strip()), "host", self.host, "must be an address, e.g. 127.0.0.1 or 0.0.0.0")
        check(0 <= self.port <= 65535, "port", self.port, "must be in [0, 65535] (0: a free port)")
        if self.max_trials is not None:
            _positive(self.max_trials, "max_trials")
        _in(self.direction, ("auto", "min", "max"), "direction")
        check(self.seed >= 0, "seed", self.seed, "must be >= 0")
        _positive(self.executions_per_trial, "executions_per_trial")
        check(self.cv_folds == 0 or self.cv_folds >= 2, "cv_folds", self.cv_folds, "must be 0 (off) or >= 2")
        _positive(self.max_consecutive_failures, "max_consecutive_failures")


@dataclass
class RandomSearch(SearchBase):
    name: str = "random"


@dataclass
class GridSearch(SearchBase):
    name: str = "grid"
    max_trials: Optional[int] = None


@dataclass
class BayesianSearch(SearchBase):
    name: str = "bayesian"
    num_initial_points: Optional[int] = None  # random trials before the Gaussian process (null: 3 x dims)
    alpha: float = 1e-4                # noise added to the GP's diagonal
    beta: float = 2.6                  # exploration weight of the upper confidence bound

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_initial_points is not None:
            _positive(self.num_initial_points, "num_initial_points")
        _positive(self.alpha, "alpha")
        check(self.beta >= 0, "beta", self.beta, "must be >= 0")


@dataclass
class HyperbandSearch(SearchBase):
    name: str = "hyperband"
    max_trials: Optional[int] = None   # hyperband sizes itself from max_epochs and factor
    max_epochs: int = 30               # most epochs any one model is trained
    factor: int = 3                    # reduction factor between brackets
    hyperband_iterations: int = 1      # times the whole algorithm is repeated

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.max_epochs >= 2, "max_epochs", self.max_epochs, "must be >= 2")
        check(self.factor >= 2, "factor", self.factor, "must be >= 2")
        _positive(self.hyperband_iterations, "hyperband_iterations")


# -------------------------------------------------------------------- study
LR_GRID = [0.0001, 0.00046, 0.0022, 0.01, 0.046, 0.22, 1.0]  # 7 points, evenly spaced in log10 over 1e-4..1
CONTENDER_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"  # a contender's name is a folder name


@dataclass
class StudyConfig:
    """dlrun compare: contenders x seeds, each an ordinary run of the shared config
    with the contender's overrides (dlrun train ignores this section)."""
    contenders: Dict[str, List[str]] = field(default_factory=dict)  # name -> overrides, e.g. sgd: [optimizer=sgd]
    only: Optional[List[str]] = None   # run just these contenders (null: all)
    seeds: int = 3                     # runs per contender: trainer.seed = 0..seeds-1
    metric: str = "auto"               # what ranks contenders: <split>_<metric> (auto: test_ + the first metric)
    target: Optional[float] = None     # a validation value of the metric: epochs and seconds to reach it
    tune_lr: bool = False              # DeepOBS: per contender, the best of lr_grid (one seed) first
    lr_grid: List[float] = field(default_factory=lambda: list(LR_GRID))  # learning rates tune_lr tries
    vary_split: bool = False           # true: data.split_seed follows the seed too (not only init and shuffling)
    resume: bool = True                # false: a fresh study folder even when an earlier one matches
    fuse: Any = 1                      # runs of a seed trained at once as branches of one model; auto: as many as fit

    def __post_init__(self) -> None:
        import re

        for name, overrides in self.contenders.items():
            check(re.fullmatch(CONTENDER_NAME, str(name)) is not None, f"contenders.{name}", name,
                  "a contender's name must be a plain folder name (letters, digits, _ . + -)")
            check(overrides is not None and all(isinstance(o, str) and "=" in o for o in overrides),
                  f"contenders.{name}", overrides, "must be a list of overrides, e.g. [optimizer=sgd]")
        if self.only is not None:
            for name in self.only:
                check(name in self.contenders, "only", name, one_of(name, list(self.contenders)))
        check(self.seeds >= 1, "seeds", self.seeds, "must be >= 1")
        _fuse(self.fuse, "runs")
        check(bool(self.lr_grid) and all(lr > 0 for lr in self.lr_grid), "lr_grid", list(self.lr_grid),
              "must be a non-empty list of learning rates > 0")

    def chosen(self) -> Dict[str, List[str]]:
        """The contenders this study runs (study.only, in the contenders' order)."""
        return {k: list(v) for k, v in self.contenders.items() if self.only is None or k in self.only}


# ------------------------------------------------------------- root config
@dataclass
class RunConfig:
    """The validated config of one run: what the builders receive."""
    name: str
    data: DataConfig
    model: Any
    optimizer: Any
    schedule: Any
    loss: Any
    regularization: RegularizationConfig
    trainer: TrainerConfig
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    allowed_imports: List[str] = field(default_factory=lambda: ["dlrun", "keras"])  # modules configs import from
    optimized_metric: str = "val_loss"  # <split>_<metric> a -m sweep optimizes (the task's return value)


# Registries: group -> option name -> schema. The YAML file of the same name
# in conf/<group>/ starts from it; a name missing here is reported with the valid ones.
SCHEMAS: Dict[str, Dict[str, type]] = {
    "data": {"default": DataConfig},
    "model": {"mlp": MLPConfig, "cnn": CNNConfig, "residual_mlp": ResidualMLPConfig, "transfer": TransferConfig,
              "attention": AttentionConfig, "rnn": RNNConfig, "pooled_embedding": PooledEmbeddingConfig},
    "optimizer": {"sgd": SGDConfig, "momentum": MomentumConfig, "nesterov": NesterovConfig,
                  "adagrad": AdagradConfig, "adadelta": AdadeltaConfig, "rmsprop": RMSpropConfig,
                  "adam": AdamConfig, "adamw": AdamWConfig, "nadam": NadamConfig},
    "schedule": {"constant": ConstantSchedule, "exponential": ExponentialSchedule,
                 "cosine": CosineSchedule, "step": StepSchedule, "plateau": PlateauSchedule},
    "loss": {"default": LossConfig, "huber": HuberLoss, "quantile": QuantileLoss, "custom": CustomLoss},
    "regularization": {"default": RegularizationConfig},
    "trainer": {"default": TrainerConfig},
    "search": {"random": RandomSearch, "grid": GridSearch, "bayesian": BayesianSearch,
               "hyperband": HyperbandSearch},
    "study": {"default": StudyConfig},
    "diagnostics": {"default": DiagnosticsConfig},
    "logger": {"default": LoggerConfig},
    "augmentation": {"default": AugmentationConfig},
}


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore under schema/<group>/<name>."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
