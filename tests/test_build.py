"""Every optimizer, schedule, loss and regularizer is really applied to the built model."""
from __future__ import annotations

import pytest

from dlrun.data import build_data
from dlrun.training import compile_model, setup_runtime
from tests.helpers import make_run

keras = pytest.importorskip("keras")


def built(*overrides: str, data: str = "iris"):
    run = make_run(f"data={data}", *overrides)
    setup_runtime(run.trainer)
    meta = build_data(run.data, image=run.model.name == "cnn").meta
    return run, compile_model(run, meta, steps_per_epoch=10)


def layers_of(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


OPTIMIZERS = [
    ("sgd", "SGD", {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
    ("momentum", "SGD", {"momentum": 0.9, "nesterov": False}),
    ("nesterov", "SGD", {"momentum": 0.9, "nesterov": True}),
    ("adagrad", "Adagrad", {"initial_accumulator_value": 0.1}),
    ("adadelta", "Adadelta", {"learning_rate": 1.0, "rho": 0.95}),
    ("rmsprop", "RMSprop", {"rho": 0.9, "centered": False}),
    ("adam", "Adam", {"beta_1": 0.9, "beta_2": 0.999, "amsgrad": False}),
    ("adamw", "AdamW", {"weight_decay": 0.004}),
    ("nadam", "Nadam", {"beta_1": 0.9}),
]


@pytest.mark.parametrize("name,cls,expected", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_class_and_arguments(name, cls, expected) -> None:
    _, model = built(f"optimizer={name}")
    opt = model.optimizer
    assert type(opt).__name__ == cls
    config = opt.get_config()
    for key, value in expected.items():
        assert config[key] == pytest.approx(value), key


def test_optimizer_overrides_and_clipping_pass_through() -> None:
    _, model = built("optimizer=momentum", "optimizer.learning_rate=0.05", "optimizer.momentum=0.5",
                     "optimizer.clipnorm=1.5")
    config = model.optimizer.get_config()
    assert (config["learning_rate"], config["momentum"], config["clipnorm"]) == pytest.approx((0.05, 0.5, 1.5))
    _, model = built("optimizer=adam", "optimizer.clipvalue=0.25")
    assert model.optimizer.get_config()["clipvalue"] == pytest.approx(0.25)


def test_kernel_penalty_on_every_dense_layer() -> None:
    for option, cls, attrs in (("l1", keras.regularizers.L1, {"l1": 1e-4}),
                               ("l2", keras.regularizers.L2, {"l2": 1e-4}),
                               ("l1l2", keras.regularizers.L1L2, {"l1": 1e-5, "l2": 1e-4})):
        _, model = built(f"regularization={option}", "model.units=[16,8]")
        dense = layers_of(model, keras.layers.Dense)
        assert len(dense) == 3  # two hidden layers and the output
        for layer in dense:
            assert isinstance(layer.kernel_regularizer, cls), (option, layer.name)
            for attr, value in attrs.items():
                assert float(getattr(layer.kernel_regularizer, attr)) == pytest.approx(value)
        assert len(model.losses) == 3  # the penalties enter the loss


def test_no_regularization_adds_nothing() -> None:
    _, model = built("regularization=none", "model.units=[16,8]")
    assert all(layer.kernel_regularizer is None for layer in layers_of(model, keras.layers.Dense))
    for cls in (keras.layers.Dropout, keras.layers.BatchNormalization, keras.layers.GaussianNoise):
        assert not layers_of(model, cls)


def test_dropout_after_each_hidden_layer() -> None:
    _, model = built("regularization=dropout", "regularization.dropout.rate=0.35",
                     "regularization.dropout.input_rate=0.1", "model.units=[16,8]")
    rates = [layer.rate for layer in layers_of(model, keras.layers.Dropout)]
    assert rates == pytest.approx([0.1, 0.35, 0.35])


@pytest.mark.parametrize("position", ["before", "after"])
def test_batchnorm_before_or_after_activation(position: str) -> None:
    _, model = built("regularization=batchnorm", f"regularization.batchnorm.position={position}",
                     "model.units=[16,8]")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchNormalization") == 2
    first_bn, first_act = kinds.index("BatchNormalization"), kinds.index("Activation")
    assert (first_bn < first_act) == (position == "before")
    dense = layers_of(model, keras.layers.Dense)
    assert dense[0].use_bias is (position == "after")  # BN right after Dense makes the bias redundant


@pytest.mark.parametrize("position,count", [("input", 1), ("hidden", 2), ("both", 3)])
def test_gaussian_noise(position: str, count: int) -> None:
    _, model = built("regularization=noise", f"regularization.noise.position={position}",
                     "regularization.noise.stddev=0.2", "model.units=[16,8]")
    noise = layers_of(model, keras.layers.GaussianNoise)
    assert len(noise) == count and all(layer.stddev == pytest.approx(0.2) for layer in noise)


def test_early_stopping_callback_has_the_configured_settings() -> None:
    from dlrun.regularization import callbacks

    run = make_run("regularization=early_stopping", "regularization.early_stopping.patience=3",
                   "regularization.early_stopping.monitor=val_accuracy")
    (es,) = callbacks(run.regularization)
    assert isinstance(es, keras.callbacks.EarlyStopping)
    assert (es.patience, es.monitor, es.restore_best_weights) == (3, "val_accuracy", True)
    assert callbacks(make_run("regularization=l2").regularization) == []


def lr_at(model, step: int) -> float:
    lr = model.optimizer._learning_rate
    return float(lr(step)) if callable(lr) else float(lr)


def test_schedules_change_the_learning_rate_as_configured() -> None:
    _, model = built("optimizer=sgd", "optimizer.learning_rate=0.1", "schedule=constant")
    assert lr_at(model, 0) == lr_at(model, 1000) == pytest.approx(0.1)
    _, model = built("optimizer=sgd", "optimizer.learning_rate=0.1", "schedule=exponential",
                     "schedule.decay_rate=0.5", "schedule.decay_epochs=2")
    assert lr_at(model, 20) == pytest.approx(0.05)  # 2 epochs x 10 steps
    _, model = built("optimizer=sgd", "optimizer.learning_rate=0.1", "schedule=step",
                     "schedule.boundaries=[1,3]", "schedule.factor=0.1")
    assert [lr_at(model, s) for s in (5, 15, 35)] == pytest.approx([0.1, 0.01, 0.001])
    _, model = built("optimizer=sgd", "optimizer.learning_rate=0.1", "schedule=cosine", "schedule.alpha=0.1",
                     "trainer.epochs=4")
    assert lr_at(model, 0) == pytest.approx(0.1) and lr_at(model, 40) == pytest.approx(0.01)


def test_plateau_schedule_is_a_callback() -> None:
    from dlrun.optim import schedule_callbacks

    run = make_run("schedule=plateau", "schedule.factor=0.2", "schedule.patience=2")
    (cb,) = schedule_callbacks(run)
    assert isinstance(cb, keras.callbacks.ReduceLROnPlateau)
    assert (cb.factor, cb.patience) == (pytest.approx(0.2), 2)


@pytest.mark.parametrize("loss,data,cls", [
    ("auto", "iris", "SparseCategoricalCrossentropy"), ("auto", "breast_cancer", "BinaryCrossentropy"),
    ("auto", "diabetes", "MeanSquaredError"), ("categorical_crossentropy", "iris", "CategoricalCrossentropy"),
    ("hinge", "breast_cancer", "Hinge"), ("mae", "diabetes", "MeanAbsoluteError"),
    ("msle", "diabetes", "MeanSquaredLogarithmicError"), ("log_cosh", "diabetes", "LogCosh"),
    ("huber", "diabetes", "Huber"), ("quantile", "diabetes", "QuantileLoss"),
])
def test_losses_by_name(loss: str, data: str, cls: str) -> None:
    _, model = built(f"loss={loss}", data=data)
    scaled = data == "diabetes" and loss != "msle"  # regression losses act on the standardised target
    assert type(model.loss).__name__ == ("StandardizedLoss" if scaled else cls)
    assert type(getattr(model.loss, "inner", model.loss)).__name__ == cls


def test_quantile_and_huber_parameters() -> None:
    import numpy as np

    _, model = built("loss=quantile", "loss.quantile=0.9", "data.target_scaling=none", data="diabetes")
    y_true, y_pred = np.array([[1.0], [1.0]]), np.array([[0.0], [2.0]])
    # under-prediction by 1 costs 0.9, over-prediction by 1 costs 0.1
    assert float(model.loss(y_true, y_pred)) == pytest.approx(0.5)
    _, model = built("loss=huber", "loss.delta=2.5", "data.target_scaling=none", data="diabetes")
    # an error of 2 is still in the quadratic zone with delta 2.5 (it would cost 1.5 with delta 1)
    assert float(model.loss(np.array([[0.0]]), np.array([[2.0]]))) == pytest.approx(2.0)


ALLOW_TESTS = "allowed_imports=[dlrun,keras,tests]"  # tests/losses.py holds the custom loss


def test_custom_loss_by_dotted_path() -> None:
    from tests.losses import mine

    _, model = built("loss=custom", "loss.function=tests.losses.mine", ALLOW_TESTS, "data.target_scaling=none",
                     data="diabetes")
    assert model.loss is mine


def test_custom_loss_that_does_not_exist_is_a_config_error() -> None:
    from dlrun.errors import ConfigError

    with pytest.raises(ConfigError, match=r"loss.function='tests.losses.nothing'.*no function 'nothing'"):
        built("loss=custom", "loss.function=tests.losses.nothing", ALLOW_TESTS, data="diabetes")


def test_custom_loss_from_a_module_not_allowed_is_refused_at_validation() -> None:
    from dlrun.errors import ConfigError

    with pytest.raises(ConfigError, match=r"loss.function='tests.losses.mine': imports from 'tests', which "
                       r"allowed_imports does not list \(dlrun, keras\); if you trust it, add "
                       r"allowed_imports=\[dlrun,keras,tests\]"):
        make_run("loss=custom", "loss.function=tests.losses.mine", "data=diabetes")
    keras_loss = make_run("loss=custom", "loss.function=keras.losses.mean_squared_error", "data=diabetes")
    assert keras_loss.allowed_imports == ["dlrun", "keras"]  # keras is allowed by default
    with pytest.raises(ConfigError, match=r"imports from 'kerasx'"):  # a prefix matches whole module names
        make_run("loss=custom", "loss.function=kerasx.losses.f", "data=diabetes")


def test_built_loss_checks_the_allow_list_too() -> None:
    """An API user who builds a RunConfig without validating it gets the same refusal."""
    import dataclasses

    from dlrun.errors import ConfigError
    from dlrun.losses import build_loss

    run = make_run("loss=custom", "loss.function=tests.losses.mine", ALLOW_TESTS, "data=diabetes")
    meta = build_data(run.data).meta
    with pytest.raises(ConfigError, match="allowed_imports does not list"):
        build_loss(dataclasses.replace(run, allowed_imports=["dlrun", "keras"]), meta)


def test_output_layer_fits_the_task() -> None:
    for data, units, activation in (("iris", 3, "softmax"), ("breast_cancer", 1, "sigmoid"),
                                    ("diabetes", 1, "linear")):
        _, model = built(data=data)
        out = model.get_layer("output")
        assert (out.units, out.activation.__name__) == (units, activation)


def test_cnn_builds_conv_blocks_on_image_data() -> None:
    _, model = built("model=cnn", "model.filters=[4,8]", "model.units=[16]", data="digits")
    assert model.input_shape == (None, 8, 8, 1)
    assert [layer.filters for layer in layers_of(model, keras.layers.Conv2D)] == [4, 8]
    assert len(layers_of(model, keras.layers.MaxPooling2D)) == 2
    assert model.get_layer("output").units == 10


def test_mlp_units_and_initializer() -> None:
    _, model = built("model.units=[7,5]", "model.activation=tanh", "model.initializer=glorot_normal")
    dense = layers_of(model, keras.layers.Dense)
    assert [layer.units for layer in dense] == [7, 5, 3]
    assert type(dense[0].kernel_initializer).__name__ == "GlorotNormal"
    acts = [layer.activation.__name__ for layer in layers_of(model, keras.layers.Activation)]
    assert acts == ["tanh", "tanh"]


def test_auto_initializer_is_he_for_classes_and_glorot_for_regression() -> None:
    for data, cls in (("iris", "HeUniform"), ("breast_cancer", "HeUniform"), ("diabetes", "GlorotUniform")):
        _, model = built(data=data)
        assert type(model.get_layer("dense_1").kernel_initializer).__name__ == cls
    _, model = built("model.initializer=he_normal", data="diabetes")  # an explicit choice is kept
    assert type(model.get_layer("dense_1").kernel_initializer).__name__ == "HeNormal"
