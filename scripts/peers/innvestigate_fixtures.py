"""Write tests/data/peers/innvestigate/: iNNvestigate 2.1.2's LRP relevance on a CNN and two U-Nets, final and per
layer, in float64.

iNNvestigate needs TensorFlow 2.14 and numpy < 2 (Python <= 3.11); run this in its own venv (``nox -s peers``
does)::

    python3.11 -m venv /tmp/inn-venv
    /tmp/inn-venv/bin/pip install innvestigate==2.1.2 "tensorflow-cpu<2.15" "numpy<2" h5py
    /tmp/inn-venv/bin/python scripts/peers/innvestigate_fixtures.py [OUT_DIR] [--float32]

tests/test_peers_innvestigate.py imports the .h5 files with reflrp.from_keras, explains them with
``profile="innvestigate"`` and compares.

For every model NAME this writes
    OUTDIR/NAME.h5    Keras-2 HDF5 model (architecture + weights)
    OUTDIR/NAME.npz   input, forward activations, and for every analyzer the final relevance
                      map and the per-layer relevance tensors

npz keys (all arrays; strings are 0-d unicode arrays):
    x                         the fixed input, shape (1, H, W, C) / (1, D)   (channels_last)
    neuron_index              int, the flattened output index used (neuron_selection_mode="index")
    y                         model output for x (flattened, shape (1, n_out))
    seed                      y[0, neuron_index] = value the reverse pass starts with
    analyzers                 1-d str array of analyzer keys (in order)
    analyzer_desc__<key>      how the analyzer was created (registry name + kwargs)
    R__<key>                  final relevance w.r.t. the model input, same shape as x
    Rl__<key>__<layer>        relevance at the OUTPUT of layer <layer> (= relevance entering that
                              layer's reverse mapping); for the input layer it equals R__<key>.
                              Tensors consumed by several layers hold the sum over consumers.
                              Special: Rl__<key>__NeuronSelection = the seed tensor, shape (1,)
    versions                  json string with library versions and settings
    notes                     json string with model-specific notes

Conventions worth knowing (see spec.md):
  * image_data_format is channels_last (Keras default); kernels are HWIO.
  * iNNvestigate 2.1.2 cannot analyze a model whose output has rank > 2 (its _prepare_model
    calls Flatten() on a list and crashes), so the U-Nets end with an explicit Flatten layer;
    the output index is the flattened (row, col, channel) index.
  * All analyzers are built with disable_model_checks=True (the CNN uses a keras ReLU layer,
    which otherwise makes 2.1.2 raise NotImplementedError from a *warning*-type model check).
  * Per-layer tensors are captured by wrapping analyzer._reverse_model, because the library's
    own `reverse_keep_tensors=True` -> `analyzer._reversed_tensors` path crashes in
    neuron_selection_mode="index" (duplicate node-id keys, sort fails).
"""
from __future__ import annotations

import json
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import innvestigate  # noqa: E402
import innvestigate.analyzer.relevance_based.relevance_rule as rrule  # noqa: E402
import innvestigate.backend.graph as igraph  # noqa: E402
from innvestigate.analyzer.relevance_based.relevance_analyzer import LRP  # noqa: E402

K = tf.keras.backend
L = tf.keras.layers


# --------------------------------------------------------------------------- analyzers
class ZIgnoreBiasRule(rrule.ZRule):
    """2.1.2 has no LRPZIgnoreBias analyzer; emulate it with ZRule(bias=False)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, bias=False, **kwargs)


def analyzer_specs():
    """key -> (description, factory(model, **common_kwargs))"""
    ca = innvestigate.create_analyzer
    specs = {}

    def reg(key, desc, fn):
        specs[key] = (desc, fn)

    reg("lrp.z", "create_analyzer('lrp.z')", lambda m, **kw: ca("lrp.z", m, **kw))
    reg("lrp.z_IB", "EMULATED: LRP(rule=ZRule(bias=False), bn_layer_rule=ZRule(bias=False))",
        lambda m, **kw: LRP(m, rule=ZIgnoreBiasRule, bn_layer_rule=ZIgnoreBiasRule, **kw))
    reg("lrp.epsilon", "create_analyzer('lrp.epsilon')  (epsilon=1e-7, bias=True)",
        lambda m, **kw: ca("lrp.epsilon", m, **kw))
    reg("lrp.epsilon_IB", "create_analyzer('lrp.epsilon', bias=False)  (no LRPEpsilonIgnoreBias class in 2.1.2)",
        lambda m, **kw: ca("lrp.epsilon", m, bias=False, **kw))
    reg("lrp.epsilon_0.1", "create_analyzer('lrp.epsilon', epsilon=0.1)",
        lambda m, **kw: ca("lrp.epsilon", m, epsilon=0.1, **kw))
    reg("lrp.w_square", "create_analyzer('lrp.w_square')", lambda m, **kw: ca("lrp.w_square", m, **kw))
    reg("lrp.flat", "create_analyzer('lrp.flat')", lambda m, **kw: ca("lrp.flat", m, **kw))
    for name in ["lrp.alpha_2_beta_1", "lrp.alpha_2_beta_1_IB", "lrp.alpha_1_beta_0",
                 "lrp.alpha_1_beta_0_IB", "lrp.z_plus", "lrp.z_plus_fast",
                 "lrp.sequential_preset_a", "lrp.sequential_preset_b",
                 "lrp.sequential_preset_a_flat", "lrp.sequential_preset_b_flat"]:
        reg(name, f"create_analyzer('{name}')", lambda m, _n=name, **kw: ca(_n, m, **kw))
    reg("lrp.z_ZB01", "create_analyzer('lrp.z', input_layer_rule=(0.0, 1.0))  (Z_B on input layer)",
        lambda m, **kw: ca("lrp.z", m, input_layer_rule=(0.0, 1.0), **kw))
    return specs


# --------------------------------------------------------------------------- models
def _he(rs, shape, fan_in):
    return (rs.randn(*shape) * np.sqrt(2.0 / fan_in)).astype(K.floatx())


def set_fixed_weights(model, seed):
    """Deterministic weights from numpy RandomState(seed), layer by layer in model.layers order."""
    rs = np.random.RandomState(seed)
    for lay in model.layers:
        ws = lay.get_weights()
        if not ws:
            continue
        if isinstance(lay, L.BatchNormalization):
            c = ws[0].shape[0]
            gamma = rs.uniform(0.5, 1.5, c)
            gamma[1 % c] *= -1.0  # one negative scale per BN layer (channel 1)
            beta = rs.randn(c) * 0.2
            mean = rs.randn(c) * 0.3
            var = rs.uniform(0.3, 2.5, c)  # != 1 so the fused-BN var**2 defect is visible
            lay.set_weights([a.astype(K.floatx()) for a in (gamma, beta, mean, var)])
        else:
            new = []
            for w in ws:
                if w.ndim >= 2:
                    fan_in = int(np.prod(w.shape[:-1])) if not isinstance(lay, L.Conv2DTranspose) \
                        else int(np.prod(w.shape[:2]) * w.shape[-1])
                    new.append(_he(rs, w.shape, fan_in))
                else:
                    new.append((rs.randn(*w.shape) * 0.1).astype(K.floatx()))
            lay.set_weights(new)


def build_cnn():
    inp = L.Input((8, 8, 1), name="input")
    h = L.Conv2D(4, 3, padding="same", name="conv1")(inp)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(name="relu1")(h)  # keras ReLU layer -> reversed by plain gradient (mask x>0)
    h = L.MaxPooling2D(2, name="pool1")(h)
    h = L.Conv2D(4, 3, padding="same", activation="relu", use_bias=False, name="conv2_nobias")(h)
    h = L.Flatten(name="flatten")(h)
    h = L.Dropout(0.25, name="dropout")(h)
    out = L.Dense(3, name="logits")(h)
    return tf.keras.Model(inp, out, name="cnn")


def build_unet(with_bn: bool):
    act = lambda name: L.Activation("relu", name=name)  # noqa: E731  (pass-through in LRP)

    def block(h, f, name):
        h = L.Conv2D(f, 3, padding="same", name=f"{name}_conv")(h)
        if with_bn:
            h = L.BatchNormalization(name=f"{name}_bn")(h)
        return act(f"{name}_relu")(h)

    inp = L.Input((16, 16, 1), name="input")
    e1 = block(inp, 2, "enc1")                                   # 16x16x2
    p1 = L.MaxPooling2D(2, name="pool1")(e1)                      # 8x8x2
    e2 = block(p1, 4, "enc2")                                    # 8x8x4
    p2 = L.MaxPooling2D(2, name="pool2")(e2)                      # 4x4x4
    b = block(p2, 4, "bott")                                     # 4x4x4
    u2 = L.Conv2DTranspose(4, 2, strides=2, name="up2_convT")(b)  # 8x8x4
    c2 = L.Concatenate(name="cat2")([u2, e2])                     # 8x8x8
    d2 = L.Conv2D(4, 3, padding="same", activation="relu", name="dec2_conv")(c2)
    u1 = L.UpSampling2D(2, name="up1_upsample")(d2)               # 16x16x4 (nearest)
    c1 = L.Concatenate(name="cat1")([u1, e1])                     # 16x16x6
    d1 = L.Conv2D(2, 3, padding="same", activation="relu", name="dec1_conv")(c1)
    o = L.Conv2D(1, 1, name="out_conv1x1")(d1)                   # 16x16x1, linear
    out = L.Flatten(name="out_flatten")(o)                        # required by iNNvestigate 2.1.2
    return tf.keras.Model(inp, out, name="unet_bn" if with_bn else "unet_nobn")


def build_seed_unet(with_bn: bool):
    """The U-Net of iNNvestigate issue #118 (reflrp.models.small_unet): bias-free valid 3x3 convolutions, optional
    BatchNormalization, max pooling, a transposed convolution, a cropped concatenation skip; 28x28x1 in, 12x12x1
    out (a linear 1x1 convolution here: iNNvestigate seeds with the activated output), then Flatten."""
    inp = L.Input((28, 28, 1), name="input")

    def block(h, filters, name):
        h = L.Conv2D(filters, 3, padding="valid", use_bias=False, name=name)(h)
        if with_bn:
            h = L.BatchNormalization(name=f"bn_{name}")(h)
        return L.Activation("relu", name=f"relu_{name}")(h)

    h = block(inp, 4, "conv1")
    skip = block(h, 4, "conv2")
    h = L.MaxPooling2D(2, name="pool")(skip)
    h = block(h, 8, "conv3")
    h = block(h, 8, "conv4")
    h = L.Conv2DTranspose(4, 2, strides=2, activation="relu", name="up")(h)
    cropped = L.Cropping2D(4, name="crop")(skip)
    h = L.Concatenate(name="concat")([h, cropped])
    h = block(h, 4, "conv5")
    h = block(h, 4, "conv6")
    o = L.Conv2D(1, 1, name="logits")(h)
    out = L.Flatten(name="out_flatten")(o)
    return tf.keras.Model(inp, out, name="seed_unet_bn" if with_bn else "seed_unet")


MODELS = {
    # name: (builder, weight seed, input seed, neuron index (flattened output), notes)
    # (weight seeds were picked so that every ReLU layer has >=30% active units and, for the
    #  U-Nets, the last hidden layer is active at the selected pixel -> non-degenerate maps)
    "cnn": (build_cnn, 100, 12, 1,
            "Conv2D->BN->ReLU layer->MaxPool->Conv2D(relu, no bias)->Flatten->Dropout->Dense(3, linear)."
            " neuron_index = class 1."),
    "unet_bn": (lambda: build_unet(True), 119, 22, 8 * 16 + 5,
                "2-level U-Net with BN, Conv2DTranspose(2,s2) and UpSampling2D(nearest) decoders,"
                " Concatenate skips, 1x1 linear output conv, then Flatten. neuron_index = pixel (8,5)."),
    "unet_nobn": (lambda: build_unet(False), 102, 32, 8 * 16 + 5,
                  "same as unet_bn but without BatchNormalization. neuron_index = pixel (8,5)."),
    "seed_unet": (lambda: build_seed_unet(False), 7, 8, 6 * 12 + 6,
                  "the U-Net of iNNvestigate issue #118 without BatchNormalization. neuron_index = pixel (6,6)."),
    "seed_unet_bn": (lambda: build_seed_unet(True), 26, 10, 6 * 12 + 6,
                     "the U-Net of iNNvestigate issue #118 with BatchNormalization. neuron_index = pixel (6,6)."),
}


# --------------------------------------------------------------------------- capture
def analyze_with_layers(analyzer, x, index):
    """Run analyzer (neuron_selection_mode='index') and return (R_input, {layer_name: R_at_layer_output})."""
    cap = {}
    orig = analyzer._reverse_model

    def patched(*args, **kwargs):
        kwargs["return_all_reversed_tensors"] = True
        ret = orig(*args, **kwargs)
        cap["reversed"] = ret[1]
        return ret

    analyzer._reverse_model = patched
    # keep tensors are requested via reverse_keep_tensors=True; bypass the (buggy) sorter:
    analyzer._handle_debug_output = lambda vals: cap.__setitem__("vals", vals)
    R = analyzer.analyze(x, index)
    _, exec_list, _ = igraph.trace_model_execution(analyzer._prepared_model)
    tensors = {id(t): t for _, Xs, Ys in exec_list for t in list(Xs) + list(Ys)}
    per_layer = {}
    for tid, val in zip(cap["reversed"].keys(), cap["vals"]):
        per_layer[tensors[tid]._keras_history.layer.name] = np.asarray(val)
    return np.asarray(R), per_layer


# --------------------------------------------------------------------------- main
def versions():
    import importlib.metadata as md
    import platform

    v = {p: md.version(p) for p in ["innvestigate", "tensorflow-cpu", "keras", "numpy", "h5py"]
         if _has(md, p)}
    v.update(python=platform.python_version(), floatx=K.floatx(),
             image_data_format=K.image_data_format(), keras_epsilon=float(K.epsilon()),
             innvestigate_module_version_string=getattr(innvestigate, "__version__", "?"))
    return v


def _has(md, p):
    try:
        md.version(p)
        return True
    except md.PackageNotFoundError:
        return False


def make_one(name, outdir):
    builder, wseed, xseed, index, notes = MODELS[name]
    K.clear_session()
    model = builder()
    set_fixed_weights(model, wseed)
    weights = model.get_weights()
    x = np.random.RandomState(xseed).uniform(0.0, 1.0, (1,) + tuple(model.input_shape[1:])).astype(K.floatx())
    model.save(os.path.join(outdir, f"{name}.h5"), save_format="h5")

    out = {"x": x, "neuron_index": np.array(index)}
    y = K.function([model.input], [model.output])([x])[0].reshape(1, -1)
    out["y"] = y
    out["seed"] = np.array(y[0, index])

    keys = []
    for key, (desc, factory) in analyzer_specs().items():
        keys.append(key)
        out[f"analyzer_desc__{key}"] = np.array(desc)
        # fresh graph per analyzer: keeps graph small (much faster) and results independent
        K.clear_session()
        model = builder()
        model.set_weights(weights)
        an = factory(model, neuron_selection_mode="index", reverse_keep_tensors=True, disable_model_checks=True)
        R, per_layer = analyze_with_layers(an, x, index)
        out[f"R__{key}"] = R.astype(K.floatx())
        for lname, val in per_layer.items():
            out[f"Rl__{key}__{lname}"] = val.astype(K.floatx())
        print(f"  {name:10s} {key:32s} sum R_in={R.sum(): .6g}  (seed {float(out['seed']): .6g})")
    out["analyzers"] = np.array(keys)
    out["versions"] = np.array(json.dumps(versions()))
    out["notes"] = np.array(json.dumps({"model": notes, "neuron_selection_mode": "index",
                                        "disable_model_checks": True,
                                        "weight_seed": wseed, "input_seed": xseed}))
    np.savez_compressed(os.path.join(outdir, f"{name}.npz"), **out)


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) > 1:
        print(__doc__)
        return 2
    if "--float32" not in argv:
        K.set_floatx("float64")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outdir = args[0] if args else os.path.join(root, "tests", "data", "peers", "innvestigate")
    os.makedirs(outdir, exist_ok=True)
    for name in MODELS:
        make_one(name, outdir)
    total = 0
    for fn in sorted(os.listdir(outdir)):
        sz = os.path.getsize(os.path.join(outdir, fn))
        total += sz
        print(f"{fn:20s} {sz:9d} bytes")
    print(f"{'TOTAL':20s} {total:9d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
