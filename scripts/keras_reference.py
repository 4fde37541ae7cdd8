"""Make the Keras fixtures in tests/data/keras/: models saved by Keras itself (.h5 and .keras) and their outputs.

CI reads these files with h5py only (reflrp.from_keras needs no TensorFlow); the outputs Keras computed when the
files were made are stored next to them.  Run once per Keras flavour, each in its own venv:

    # Keras 2 (TensorFlow 2.14): writes keras2-<model>.h5 and keras2-<model>.keras
    python3 -m venv /tmp/tf && /tmp/tf/bin/pip install "tensorflow-cpu<2.15" "numpy<2" h5py
    /tmp/tf/bin/python scripts/keras_reference.py
    # Keras 3 (JAX backend): writes keras3-<model>.keras and keras3-<model>.h5
    python3 -m venv /tmp/k3 && /tmp/k3/bin/pip install keras jax jaxlib h5py
    KERAS_BACKEND=jax /tmp/k3/bin/python scripts/keras_reference.py
    KERAS_BACKEND=jax /tmp/k3/bin/python scripts/keras_reference.py --models volume signal   # just these

The volume and signal models (3-D and 1-D layers) are made by Keras 3 only.

The seed U-Net is the one of iNNvestigate issue #118: bias-free valid 3x3 convolutions with optional
BatchNormalization, max pooling, a Conv2DTranspose with relu built in, a cropped skip connection, concatenation and
a 1x1 logit convolution (sigmoid at the end).
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
try:  # Keras 2 lives inside TensorFlow
    import tensorflow as tf

    keras = tf.keras
    FLAVOUR = "keras2"
except ImportError:
    import keras

    FLAVOUR = "keras3"

layers = keras.layers
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "keras"


def seed_unet(batchnorm):
    """The U-Net of iNNvestigate issue #118 (28x28x1 in, 12x12x1 out)."""
    x = keras.Input((28, 28, 1), name="image")

    def block(h, filters, name):
        h = layers.Conv2D(filters, 3, padding="valid", use_bias=False, name=name)(h)
        if batchnorm:
            h = layers.BatchNormalization(name=f"bn_{name}")(h)
        return layers.Activation("relu", name=f"relu_{name}")(h)

    h = block(x, 4, "conv1")
    skip = block(h, 4, "conv2")
    h = layers.MaxPooling2D(2, name="pool")(skip)
    h = block(h, 8, "conv3")
    h = block(h, 8, "conv4")
    h = layers.Conv2DTranspose(4, 2, strides=2, activation="relu", name="up")(h)
    cropped = layers.Cropping2D(4, name="crop")(skip)
    h = layers.Concatenate(name="concat")([h, cropped])
    h = block(h, 4, "conv5")
    h = block(h, 4, "conv6")
    out = layers.Conv2D(1, 1, activation="sigmoid", name="logits")(h)
    return keras.Model(x, out, name="seed_unet")


def constructs():
    """One model through every other supported layer (functional API, 16x16x3 in)."""
    x = keras.Input((16, 16, 3), name="image")
    h = layers.ZeroPadding2D(((1, 0), (2, 1)), name="pad")(x)
    h = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="strided_same")(h)
    a = layers.Conv2D(6, 3, padding="same", name="same")(h)
    a = layers.LeakyReLU(name="leaky")(a)
    b = layers.Conv2D(6, 1, name="one_by_one")(h)
    b = layers.ReLU(name="relu_layer")(b)
    h = layers.Add(name="add")([a, b])
    h = layers.AveragePooling2D(2, name="avg")(h)
    h = layers.UpSampling2D(2, name="up_nearest")(h)
    h = layers.UpSampling2D(2, interpolation="bilinear", name="up_bilinear")(h)
    h = layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="convt_same")(h)
    h = layers.MaxPooling2D(2, strides=2, name="max")(h)
    g = layers.GlobalAveragePooling2D(name="gap")(h)
    f = layers.Flatten(name="flatten")(h)
    f = layers.Dense(8, activation="tanh", name="dense1")(f)
    f = layers.Dropout(0.3, name="dropout")(f)
    h = layers.Concatenate(name="features")([f, g])
    h = layers.Reshape((3, 4), name="reshape")(h)
    h = layers.Conv1D(5, 2, name="conv1d", activation="relu")(h)
    h = layers.Flatten(name="flatten2")(h)
    out = layers.Dense(3, activation="softmax", name="classes")(h)
    return keras.Model(x, out, name="constructs")


def sequential():
    """The Sequential API, with BatchNormalization after a Dense layer."""
    return keras.Sequential([
        keras.Input((6, 6, 2)),
        layers.Conv2D(3, 3, name="conv"),
        layers.BatchNormalization(name="bn"),
        layers.Activation("relu", name="act"),
        layers.Flatten(name="flat"),
        layers.Dense(4, name="dense"),
        layers.BatchNormalization(name="bn_dense"),
        layers.Dense(2, name="logits"),
    ], name="sequential")


def volume():
    """3-D layers (8x8x8x1 in): Conv3D (stride 1 and an asymmetric strided SAME), BatchNormalization, max and
    average pooling, nearest upsampling, zero padding, global average pooling."""
    x = keras.Input((8, 8, 8, 1), name="volume")
    h = layers.Conv3D(4, 3, padding="same", activation="relu", name="conv1")(x)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.MaxPooling3D(2, name="max")(h)
    h = layers.Conv3D(4, 3, strides=2, padding="same", name="strided_same")(h)
    h = layers.UpSampling3D(2, name="up")(h)
    h = layers.ZeroPadding3D(((1, 0), (0, 1), (1, 1)), name="pad")(h)
    h = layers.AveragePooling3D(2, name="avg")(h)
    h = layers.GlobalAveragePooling3D(name="gap")(h)
    out = layers.Dense(3, name="logits")(h)
    return keras.Model(x, out, name="volume")


def signal():
    """1-D layers (32 samples x 2 channels in): Conv1D, max and average pooling, zero padding, upsampling, global
    average pooling."""
    x = keras.Input((32, 2), name="signal")
    h = layers.Conv1D(4, 5, padding="same", activation="relu", name="conv")(x)
    h = layers.MaxPooling1D(2, name="max")(h)
    h = layers.ZeroPadding1D((1, 2), name="pad")(h)
    h = layers.AveragePooling1D(3, strides=2, name="avg")(h)
    h = layers.UpSampling1D(2, name="up")(h)
    h = layers.GlobalAveragePooling1D(name="gap")(h)
    out = layers.Dense(3, name="logits")(h)
    return keras.Model(x, out, name="signal")


def randomize(model, rng):
    """Weights with every BatchNormalization statistic away from its default, so it matters."""
    for layer in model.layers:
        values = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()]
        if isinstance(layer, layers.BatchNormalization):
            values[-1] = rng.uniform(0.5, 2.0, values[-1].shape).astype(np.float32)  # moving variance > 0
        layer.set_weights(values)


#: Keras 3 only (the Keras 2 files were made before these models existed; their layers are read the same way)
KERAS3_ONLY = ("volume", "signal")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261128)
    expected = {}
    chosen = sys.argv[sys.argv.index("--models") + 1:] if "--models" in sys.argv else None
    models = (("seed_unet", lambda: seed_unet(False)), ("seed_unet_bn", lambda: seed_unet(True)),
              ("constructs", constructs), ("sequential", sequential), ("volume", volume), ("signal", signal))
    for name, make in models:
        if FLAVOUR == "keras2" and name in KERAS3_ONLY:
            continue
        model = make()
        randomize(model, rng)
        x = rng.uniform(0, 1, size=(2, *model.input_shape[1:])).astype(np.float32)
        y = np.asarray(model.predict(x, verbose=0))
        if chosen is not None and name not in chosen:  # drawn all the same: the chosen ones get their usual weights
            continue
        for suffix in (".h5", ".keras"):
            path = OUT / f"{FLAVOUR}-{name}{suffix}"
            model.save(path)
            expected[f"{path.name}/x"] = x
            expected[f"{path.name}/y"] = y
    if chosen is not None:  # the other models' files and outputs are kept
        kept = np.load(OUT / f"{FLAVOUR}-expected.npz")
        expected = {**{k: kept[k] for k in kept.files}, **expected}
    np.savez(OUT / f"{FLAVOUR}-expected.npz", **expected)
    version = getattr(keras, "__version__", None) or tf.__version__
    (OUT / f"{FLAVOUR}-version.json").write_text(json.dumps({"keras": version}))
    print(f"wrote {sorted(p.name for p in OUT.glob(FLAVOUR + '*'))}")


if __name__ == "__main__":
    main()
