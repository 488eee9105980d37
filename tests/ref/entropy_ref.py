#!/usr/bin/env python3
"""entropy_ref.py - an independent numpy re-implementation of the INT8 calibrators.

Written from ../../../shared/spec/int8-calibration.md (the steps of NVIDIA pytorch-quantization's
HistogramCalibrator and _compute_amax_entropy), NOT from engine/calibrate.c, so that the golden
values in tests/test_calibrate.c are checked by two implementations that only share the spec.
Needs numpy only (no scipy: the KL divergence is spelled out with scipy.stats.entropy's rules).

Usage:
  entropy_ref.py golden
      print the golden table of tests/test_calibrate.c (C source) for the fixed cases below
  entropy_ref.py hist FILE [--percentile P]
      FILE: text, the bin count then that many integer counts; prints
      "entropy_bin I" and "percentile_bin J" (amax = I * width, J * width)
  entropy_ref.py collect [--max-bins N] [--percentile P] OBS...
      OBS: raw little-endian float32 files, one per observation (frame), in order; prints the
      final histogram ("bins", "width", "zeros", "checksum") and every method's amax
      ("entropy", "percentile", "minmax") as float32 bit patterns in hex

The rules (they are the spec's; the two marked * are this engine's own, for cases the spec
leaves open, and engine/calibrate.c documents the same):
  histogram  2048 bins over [0, max|x| of the first observation]; bin = floor(|x| / width),
             clamped to the last bin. A later observation with a larger max keeps the width and
             grows the bin count to ceil(max / width), old counts staying in the prefix.
             * While every value seen is exactly 0 there is no width yet: those zeros are held
               and go to bin 0 when the first non-zero observation fixes the width.
             * Memory is bounded: while the bin count would exceed max_bins (32768), neighbouring
               bins are merged in pairs (the width doubles).
  entropy    bins = hist; bins[0] = bins[1]; for i = 128 .. len(bins): P = bins[:i] with the
             mass of bins[i:] added to P[i-1]; Q = bins[:i] averaged over 128 groups
             (j -> j*128 // i) across each group's non-zero bins, 0 on empty bins;
             KL(P||Q) as scipy.stats.entropy computes it (NaN when Q sums to 0, +inf when some
             P > 0 meets Q = 0). The chosen i is the last one of the minimum, and, as numpy's
             argmin does, a NaN counts as the minimum. amax = i * width.
             Minimum ties are taken within an absolute 1e-12 (TIE), so that rounding noise
             between two mathematically equal divergences cannot flip the choice.
  percentile amax = edge[searchsorted(cumsum(hist / total), p / 100)], the lower edge of the
             bin where the cumulative fraction reaches p (pytorch-quantization).
  minmax     amax = the largest |x|.
  * A tensor that was exactly 0 everywhere has no histogram: every method gives amax = 0.
"""
import math
import sys

import numpy as np

NUM_BINS = 2048
MAX_BINS = 32768
GROUPS = 128  # 2^(8-1): the magnitudes a signed int8 can hold (0..127) plus the zero bin's group
START_BIN = 128
TIE = 1e-12


# ---- the histogram of |x| -------------------------------------------------------------------

class Histogram:
    def __init__(self, max_bins=MAX_BINS):
        self.max_bins = max_bins
        self.counts = None  # int64, len = bins
        self.width = 0.0
        self.zeros = 0  # exact zeros held back while no width is known
        self.max_abs = np.float32(0)
        self.merges = 0

    def observe(self, x):
        a32 = np.abs(np.asarray(x, dtype=np.float32).ravel())
        if a32.size == 0:
            return
        if not np.all(np.isfinite(a32)):
            raise ValueError("non-finite value")
        m = float(a32.max())
        self.max_abs = max(self.max_abs, np.float32(m))
        if m == 0.0 and self.counts is None:
            self.zeros += a32.size
            return
        if self.counts is None:
            self.width = m / NUM_BINS
            self.counts = np.zeros(NUM_BINS, dtype=np.int64)
            self.counts[0] += self.zeros
            self.zeros = 0
        else:
            need = math.ceil(m / self.width)
            while need > self.max_bins:
                self._merge()
                need = math.ceil(m / self.width)
            if need > len(self.counts):
                grown = np.zeros(need, dtype=np.int64)
                grown[:len(self.counts)] = self.counts
                self.counts = grown
        n = len(self.counts)
        idx = np.floor(a32.astype(np.float64) / self.width)
        idx = np.minimum(idx, n - 1).astype(np.int64)
        self.counts += np.bincount(idx, minlength=n)

    def _merge(self):
        c = self.counts
        if len(c) % 2:
            c = np.append(c, 0)
        self.counts = c[0::2] + c[1::2]
        self.width *= 2.0
        self.merges += 1


# ---- amax from a histogram ------------------------------------------------------------------

def kl_divergence(p, q):
    """scipy.stats.entropy(p, q): both normalised to sum 1, sum of p*log(p/q); terms with p = 0
    are 0, p > 0 with q = 0 is +inf, and a q that sums to 0 makes everything NaN."""
    psum, qsum = p.sum(), q.sum()
    if qsum == 0:
        return math.nan
    pn, qn = p / psum, q / qsum
    live = pn > 0
    if np.any(qn[live] == 0):
        return math.inf
    return float(np.sum(pn[live] * np.log(pn[live] / qn[live])))


def entropy_bin(hist):
    """The i of EntropyCalibration2: amax = i * width."""
    bins = np.array(hist, dtype=np.int64)
    n = len(bins)
    if n < START_BIN:
        return n
    bins[0] = bins[1]  # damp the spike of exact zeros
    suffix = np.concatenate([np.cumsum(bins[::-1])[::-1], [0]])  # suffix[i] = sum(bins[i:])
    divergences = []
    for i in range(START_BIN, n + 1):
        head = bins[:i]
        p = head.astype(np.float64)
        p[i - 1] += float(suffix[i])
        group = (np.arange(i) * GROUPS) // i
        nonzero = head > 0
        gsum = np.bincount(group, weights=head.astype(np.float64), minlength=GROUPS)
        gcnt = np.bincount(group, weights=nonzero.astype(np.float64), minlength=GROUPS)
        q = np.where(nonzero, gsum[group] / np.maximum(gcnt[group], 1.0), 0.0)
        divergences.append(kl_divergence(p, q))
    d = np.array(divergences)
    nan = np.flatnonzero(np.isnan(d))
    if nan.size:  # numpy's argmin returns a NaN first: the last NaN of the reversed scan
        return START_BIN + int(nan[-1])
    best = d.min()
    return START_BIN + int(np.flatnonzero(d <= best + TIE)[-1])


def percentile_bin(hist, percentile):
    h = np.array(hist, dtype=np.int64)
    cdf = np.cumsum(h / h.sum())
    return int(np.searchsorted(cdf, percentile / 100.0))


def amaxes(h, percentile):
    """float32 amax of every method for a Histogram."""
    if h.counts is None:
        return {"entropy": np.float32(0), "percentile": np.float32(0), "minmax": np.float32(0)}
    return {
        "entropy": np.float32(entropy_bin(h.counts) * h.width),
        "percentile": np.float32(percentile_bin(h.counts, percentile) * h.width),
        "minmax": np.float32(h.max_abs),
    }


def f32hex(v):
    return "%08x" % int(np.array(v, dtype=np.float32).view(np.uint32))


def checksum(counts):
    """sum over bins of (j + 1) * count[j], mod 2^64: one number that moves with any bin."""
    if counts is None:
        return 0
    j = np.arange(1, len(counts) + 1, dtype=np.uint64)
    return int(np.sum(j * counts.astype(np.uint64), dtype=np.uint64))


# ---- deterministic cases (tests/test_calibrate.c builds the same ones) ----------------------

class Lcg:
    """64-bit LCG (Knuth's MMIX constants); next() returns the top 31 bits. The C test has the
    same generator, so both sides build bit-identical histograms and observations."""

    def __init__(self, seed):
        self.x = seed & 0xFFFFFFFFFFFFFFFF

    def next(self):
        self.x = (self.x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return self.x >> 33

    def unit(self):
        """a float32 in [0, 1) with 24 random bits"""
        return np.float32((self.next() >> 7) / 16777216.0)


def fixed_hist(kind):
    """The fixed histograms (2048 bins unless said). Integer formulas only."""
    n = 2048
    h = [0] * n
    if kind == "cauchy":  # heavy-tailed, every bin filled
        h = [(10**9 * 1024) // (1024 + j * j) for j in range(n)]
    elif kind == "cauchy_gaps":  # the same with most bins empty past 64
        h = [(10**9 * 1024) // (1024 + j * j) if (j < 64 or j % 4 == 0) else 0 for j in range(n)]
    elif kind == "relu_spike":  # a huge spike of exact zeros in bin 0, smooth decay after it
        h = [50_000_000] + [((n - j) * (n - j)) // 64 for j in range(1, n)]
    elif kind == "outliers":  # bulk near 0, a few far-out values
        h = [max(0, 100000 - 300 * j) for j in range(n)]
        h[1500] = 3
        h[n - 1] = 1
    elif kind == "zero_gap":  # bins 1..399 empty: Q sums to 0 for i <= 400 (the NaN rule)
        h = [10**6] + [0] * 399 + [5 + j % 7 for j in range(400, n)]
    elif kind == "one_outlier":  # zeros and a single max value: NaN everywhere but i = n
        h[0] = 100
        h[n - 1] = 1
    elif kind == "uniform":
        h = [1000] * n
    elif kind == "bimodal":
        h = [max(0, 5000 - abs(j - 200) * 40) + max(0, 800 - abs(j - 1200) * 4) for j in range(n)]
        h[n - 1] += 1
    elif kind == "lcg":  # random counts, a fifth of the bins empty
        g = Lcg(1)
        h = []
        for _ in range(n):
            c = g.next() % 1000
            h.append(0 if g.next() % 5 == 0 else c)
        h[n - 1] = max(h[n - 1], 1)
    elif kind == "extended":  # 5000 bins, as after growing across observations
        n = 5000
        h = [10**8 // (1 + j) if j < 2048 else (1 if j % 97 == 0 else 0) for j in range(n)]
        h[n - 1] = 1
    else:
        raise ValueError(kind)
    return h


HIST_CASES = ["cauchy", "cauchy_gaps", "relu_spike", "outliers", "zero_gap", "one_outlier",
              "uniform", "bimodal", "lcg", "extended"]
PERCENTILES = [99.99, 99.9, 50.0, 100.0]


def observations(kind):
    """The fixed observation sequences (lists of float32 arrays) and their max_bins."""
    g = Lcg({"relu_growing": 7, "outlier_late": 11, "all_zero": 13, "zero_first": 17,
             "capped": 19, "signed": 23}[kind])
    obs, max_bins = [], MAX_BINS

    def relu(count, scale, zero_every):
        out = np.zeros(count, dtype=np.float32)
        for k in range(count):
            u = g.unit()
            out[k] = np.float32(0) if (g.next() % zero_every == 0) else np.float32(u * np.float32(scale))
        return out

    if kind == "relu_growing":  # three frames, the second grows the range 2.5x
        obs = [relu(5000, 1.0, 2), relu(5000, 2.5, 2), relu(5000, 0.7, 2)]
    elif kind == "outlier_late":  # the third frame brings one value 3x past the rest
        obs = [relu(4000, 1.5, 3), relu(4000, 1.5, 3), relu(4000, 1.5, 3)]
        obs[2][17] = np.float32(4.75)
    elif kind == "all_zero":
        obs = [np.zeros(1000, dtype=np.float32), np.zeros(500, dtype=np.float32)]
    elif kind == "zero_first":  # no width until the second frame; its zeros land in bin 0
        obs = [np.zeros(700, dtype=np.float32), relu(3000, 2.0, 4), relu(3000, 3.0, 4)]
    elif kind == "capped":  # growth past a 4096-bin cap: bins merge, the width doubles
        max_bins = 4096
        obs = [relu(3000, 1.0, 2), relu(3000, 5.0, 2), relu(3000, 9.0, 2)]
    elif kind == "signed":  # negative values: |x| is what counts
        a = relu(6000, 3.0, 5)
        for k in range(len(a)):
            if g.next() % 2:
                a[k] = -a[k]
        obs = [a]
    else:
        raise ValueError(kind)
    return obs, max_bins


OBS_CASES = ["relu_growing", "outlier_late", "all_zero", "zero_first", "capped", "signed"]


def golden():
    print("/* generated by tests/ref/entropy_ref.py golden: fixed histograms */")
    print("static const struct {\n    const char *kind;\n    size_t entropy_bin;\n"
          "    size_t percentile_bin[%d]; /* at %s */\n} golden_hist[] = {"
          % (len(PERCENTILES), ", ".join("%g" % p for p in PERCENTILES)))
    for kind in HIST_CASES:
        h = fixed_hist(kind)
        pb = ", ".join(str(percentile_bin(h, p)) for p in PERCENTILES)
        print('    {"%s", %d, {%s}},' % (kind, entropy_bin(h), pb))
    print("};\n")
    print("/* generated by tests/ref/entropy_ref.py golden: observation sequences; amax as float32 bits */")
    print("static const struct {\n    const char *kind;\n    size_t bins;\n    double width;\n"
          "    uint64_t checksum;\n    uint32_t entropy, percentile, minmax;\n} golden_obs[] = {")
    for kind in OBS_CASES:
        obs, max_bins = observations(kind)
        h = Histogram(max_bins)
        for o in obs:
            h.observe(o)
        a = amaxes(h, 99.99)
        nb = 0 if h.counts is None else len(h.counts)
        print('    {"%s", %d, %s, %du, 0x%s, 0x%s, 0x%s},' % (
            kind, nb, float.hex(h.width) if h.width else "0.0", checksum(h.counts),
            f32hex(a["entropy"]), f32hex(a["percentile"]), f32hex(a["minmax"])))
    print("};")


# ---- command line ---------------------------------------------------------------------------

def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    percentile, max_bins, files = 99.99, MAX_BINS, []
    k = 0
    while k < len(rest):
        if rest[k] == "--percentile":
            percentile = float(rest[k + 1])
            k += 2
        elif rest[k] == "--max-bins":
            max_bins = int(rest[k + 1])
            k += 2
        else:
            files.append(rest[k])
            k += 1
    if cmd == "golden":
        golden()
    elif cmd == "hist":
        with open(files[0]) as f:
            nums = [int(t) for t in f.read().split()]
        hist = nums[1:1 + nums[0]]
        print("entropy_bin %d" % entropy_bin(hist))
        print("percentile_bin %d" % percentile_bin(hist, percentile))
    elif cmd == "collect":
        h = Histogram(max_bins)
        for path in files:
            h.observe(np.fromfile(path, dtype="<f4"))
        a = amaxes(h, percentile)
        print("bins %d" % (0 if h.counts is None else len(h.counts)))
        print("width %s" % (float.hex(h.width) if h.width else "0x0p+0"))
        print("zeros %d" % h.zeros)
        print("checksum %d" % checksum(h.counts))
        for m in ("entropy", "percentile", "minmax"):
            print("%s %s" % (m, f32hex(a[m])))
    else:
        print("unknown command %r" % cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
