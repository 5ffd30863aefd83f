"""Benchmark of ``cb.infoflow.information_flow`` against its physical floor and a Python loop.

Setting (chapter 13, O'Shaughnessy et al. App. E): N_alpha = 100, N_beta = 25, the 3-vs-8 task
with K = 1 causal and L = 7 noncausal latents; chapter 13's decoder (``cb.explanations.ExplanationVAE``,
an MLP 8 -> 128 -> 128 -> 64 pixels) and classifier (``cb.explanations.DigitCNN``, a small CNN with
dropout), both quickly fitted here (a few seconds) so that the flow is far from zero.

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

K, L, PIXELS, CLASSES = 1, 7, 64, 2
N_ALPHA, N_BETA = 100, 25


def build_models(seed: int = 0, steps: int = 300):
    """Chapter 13's models, quickly fitted on the 8x8 digits 3 and 8 (a few seconds).

    The decoder is ``cb.explanations.ExplanationVAE(K, L).decoder`` (MLP 8 -> 128 -> 128 -> 64,
    sigmoid), fitted by regressing images on their whitened 8-D PCA scores so that latents from
    N(0, I) decode to digit-like images; the classifier is ``cb.explanations.DigitCNN`` trained by
    ``cb.explanations.train_digit_classifier`` (frozen, eval mode).
    """
    torch.manual_seed(seed)
    data = cb.datasets.load_digits_split(classes=[3, 8], generator=seed)
    x, y = data.x_train, data.y_train
    decoder = cb.explanations.ExplanationVAE(K, L).decoder
    xc = x - x.mean(0)
    _, s, vt = torch.linalg.svd(xc, full_matrices=False)
    codes = xc @ vt[: K + L].T / (s[: K + L] / (len(x) - 1) ** 0.5)
    opt = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(decoder(codes), x).backward()
        opt.step()
    classifier = cb.explanations.train_digit_classifier(x, y, CLASSES, steps=steps,
                                                      generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        acc = (classifier(data.x_test).argmax(1) == data.y_test).float().mean().item()
        mse = nn.functional.mse_loss(decoder(codes), x).item()
    print(f"quick models: DigitCNN test accuracy {acc:.3f}, decoder MSE {mse:.4f}")
    for p_ in decoder.parameters():
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
    print(f"information flow, N_alpha={N_ALPHA}, N_beta={N_BETA}, decoder {K + L}->128->128->{PIXELS} (MLP), "
          f"classifier DigitCNN ({CLASSES} classes); torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
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
