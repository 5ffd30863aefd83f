"""Benchmark: Algorithm 2 batched over sequences and alphas vs a per-sequence, per-alpha loop.

Run: ``.venv/bin/python bench/bench_recurrent.py``. Both versions compute the same interventional
expectations (checked); the batched one rolls every (alpha, sequence) pair forward together and
runs all Hessian-vector products of Eq. 4 in one batch, the loop rolls one sequence at a time and
evaluates Eq. 4 one alpha at a time, as a direct transcription of the pseudocode of App. A.4.2 does.
"""
from __future__ import annotations

import time

import torch

import causalbook_lib as cb

R = cb.recurrent


def per_sequence_algorithm2(model, data, *, t_hat, feature, alphas, t, output=0):
    """Algorithm 2 with Python loops over alphas and sequences (the reference for the benchmark)."""
    n, _, k = data.shape
    m = R._float64_copy(model)
    L = t + 1

    def f_prime(w):
        return m(w.reshape(w.shape[0], L, k))[0][:, -1, output]

    out = []
    for a in alphas.tolist():
        windows = torch.stack([R.rollout_with_feedback(model, data[j:j + 1], t_hat=t_hat, feature=feature,
                                                       alphas=[a], t=t)[0][0, 0] for j in range(n)])
        flat = windows.reshape(n, L * k)
        mean = flat.mean(0)
        cov = (flat - mean).T @ (flat - mean) / n
        out.append(R.taylor_expectation(f_prime, mean[None], cov[None])[0])
    return torch.stack(out)


def main(n: int = 200, n_alphas: int = 9, repeats: int = 3) -> float:
    g = cb.utils.seed_everything(0)
    data = 0.5 * torch.randn(n, 16, 2, generator=g)
    torch.manual_seed(0)
    model = R.RecurrentRegressor(2, 6, 2, cell="gru")
    alphas = torch.linspace(-1, 1, n_alphas, dtype=torch.float64)
    kwargs = dict(t_hat=10, feature=0, alphas=alphas, t=14)
    R.interventional_expectation_rnn(model, data[:4], **kwargs)  # warm-up: torch loads its forward-AD rules once
    start = time.perf_counter()
    for _ in range(repeats):
        batched = R.interventional_expectation_rnn(model, data, **kwargs).taylor
    t_batched = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    looped = per_sequence_algorithm2(model, data, **kwargs)
    t_loop = time.perf_counter() - start
    torch.testing.assert_close(batched, looped, atol=1e-9, rtol=1e-9)
    ratio = t_loop / t_batched
    print(f"Algorithm 2, {n} sequences x {n_alphas} alphas, window {15} steps x 2 channels")
    print(f"batched: {t_batched:.3f} s   per-sequence loop: {t_loop:.3f} s   ratio: {ratio:.1f}x (same values)")
    return ratio


if __name__ == "__main__":
    main()
