"""Benchmark of ``cb.infoflow.information_flow`` against its physical floor and a Python loop.

Setting (chapter 13 sizes, O'Shaughnessy et al. App. E): N_alpha = 100, N_beta = 25, a VAE-style
MLP decoder 8 latents (K = 2 causal, L = 6 noncausal) -> 64 pixels (8x8 digits), and a small MLP
classifier 64 -> 3 classes with dropout, quickly trained (a few seconds) on the 8x8 digits 1/4/9:
the classifier on labels, the decoder by regressing images on their whitened 8-D PCA scores, so
that latents drawn from N(0, I) decode to digit-like images and the flow is far from zero.

Three contenders, timed interleaved, median of repeated runs:

* floor: one batched forward pass of all N_alpha * N_beta pre-drawn latents through decoder and
  classifier (no sampling, no estimate), under ``torch.no_grad`` with the classifier in eval mode;
* ours: ``cb.infoflow.information_flow`` (draws the latents, runs that one pass, validates the
  probabilities, accumulates the estimate in float64);
* loop: Algorithm 2 as the authors' public code runs it (``causaleffect.joint_uncond``): a Python
  loop over the N_alpha values of alpha with an inner Python loop filling a NumPy array of N_beta
  latents, then one decoder/classifier call per alpha (written afresh here, same structure).

Targets (issue 5): ours <= 1.5 x floor; ours >= 5 x faster than the loop; the estimates of ours
and of the loop agree within Monte Carlo error (their spread over seeds is printed).

Run: ``.venv/bin/python bench/bench_infoflow.py [--repeats 50] [--threads 2]``
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

import causalbook_lib as cb

K, L, PIXELS, CLASSES = 2, 6, 64, 3
N_ALPHA, N_BETA = 100, 25


def build_models(seed: int = 0, steps: int = 300):
    """A decoder 8 -> 64 and a classifier 64 -> 3 (probabilities), trained briefly on digits 1/4/9."""
    torch.manual_seed(seed)
    data = cb.datasets.load_digits_split(classes=[1, 4, 9], seed=seed)
    x, y = data.x_train, data.y_train
    decoder = nn.Sequential(nn.Linear(K + L, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                            nn.Linear(128, PIXELS), nn.Sigmoid())
    body = nn.Sequential(nn.Linear(PIXELS, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, CLASSES))
    # whitened PCA scores as stand-in latent codes (a deterministic "encoder")
    xc = x - x.mean(0)
    _, s, vt = torch.linalg.svd(xc, full_matrices=False)
    codes = xc @ vt[: K + L].T / (s[: K + L] / (len(x) - 1) ** 0.5)
    opt = torch.optim.Adam(list(decoder.parameters()) + list(body.parameters()), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(decoder(codes), x) + nn.functional.cross_entropy(body(x), y)
        loss.backward()
        opt.step()
    classifier = nn.Sequential(body, nn.Softmax(dim=1))
    with torch.no_grad():
        acc = (classifier.eval()(data.x_test).argmax(1) == data.y_test).float().mean().item()
    print(f"quick models: classifier test accuracy {acc:.3f}, decoder MSE {nn.functional.mse_loss(decoder(codes), x).item():.4f}")
    for p_ in list(decoder.parameters()) + list(classifier.parameters()):
        p_.requires_grad_(False)
    return decoder.eval(), classifier.eval()


def floor(decoder, classifier, z):
    with torch.no_grad():
        return classifier(decoder(z))


def loop_estimate(decoder, classifier, rng: np.random.Generator):
    """Algorithm 2 in the authors' pattern: Python loops over alpha and beta filling a NumPy array,
    one decoder/classifier call per alpha (on its N_beta latents), float32 sums with log(p + 1e-8)."""
    eps = 1e-8
    info, q_y = 0.0, torch.zeros(CLASSES)
    with torch.no_grad():
        for _ in range(N_ALPHA):
            alpha = rng.standard_normal(K)
            zs = np.zeros((N_BETA, K + L))
            for j in range(N_BETA):
                zs[j, :K] = alpha
                zs[j, K:] = rng.standard_normal(L)
            p_y_alpha = classifier(decoder(torch.from_numpy(zs).float())).sum(0) / N_BETA
            info = info + (p_y_alpha * torch.log(p_y_alpha + eps)).sum() / N_ALPHA
            q_y = q_y + p_y_alpha / N_ALPHA
    return float(info - (q_y * torch.log(q_y + eps)).sum())


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    decoder, classifier = build_models()
    z = torch.randn(N_ALPHA * N_BETA, K + L, generator=torch.Generator().manual_seed(0))
    times = {"floor": [], "ours": [], "loop": []}
    est = {"ours": [], "loop": []}
    for _ in range(5):  # warm-up
        floor(decoder, classifier, z)
        cb.infoflow.information_flow(decoder, classifier, K, L, N_ALPHA, N_BETA, generator=torch.Generator())
        loop_estimate(decoder, classifier, np.random.default_rng(0))
    for r in range(args.repeats):
        t, _ = timed(lambda: floor(decoder, classifier, z))
        times["floor"].append(t)
        g = torch.Generator().manual_seed(1000 + r)
        t, v = timed(lambda: cb.infoflow.information_flow(decoder, classifier, K, L, N_ALPHA, N_BETA, generator=g))
        times["ours"].append(t)
        est["ours"].append(v)
        rng = np.random.default_rng(1000 + r)
        t, v = timed(lambda: loop_estimate(decoder, classifier, rng))
        times["loop"].append(t)
        est["loop"].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"information flow, N_alpha={N_ALPHA}, N_beta={N_BETA}, decoder {K + L}->128->128->{PIXELS}, "
          f"classifier {PIXELS}->64->{CLASSES}; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{args.repeats} repeats (median)")
    for k in ("floor", "ours", "loop"):
        print(f"  {k:5s}: {1e3 * med[k]:8.3f} ms")
    print(f"  ours / floor = {med['ours'] / med['floor']:.2f}   (target <= 1.5)")
    print(f"  loop / ours  = {med['loop'] / med['ours']:.1f}   (target >= 5)")
    o, l_ = np.array(est["ours"]), np.array(est["loop"])
    print(f"  estimate ours: {o.mean():.5f} +- {o.std(ddof=1):.5f} (sd over seeds); "
          f"loop: {l_.mean():.5f} +- {l_.std(ddof=1):.5f}")
    se = np.sqrt(o.var(ddof=1) / len(o) + l_.var(ddof=1) / len(l_))
    print(f"  |mean difference| = {abs(o.mean() - l_.mean()):.5f}, 3 standard errors = {3 * se:.5f}")


if __name__ == "__main__":
    main()
