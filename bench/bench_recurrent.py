"""Benchmark: Algorithm 2 batched over sequences and alphas vs a per-sequence, per-alpha loop.

Run: ``.venv/bin/python bench/bench_recurrent.py``. Both versions compute the same interventional
expectations (checked); the batched one rolls every (alpha, sequence) pair forward together and
runs all Hessian-vector products of Eq. 4 in one batch, the loop rolls one sequence at a time and
evaluates Eq. 4 one alpha at a time, as a direct transcription of the pseudocode of App. A.4.2 does.

Fair comparison: both sides use the same float64 copy of the model in eval mode, made once before
any timing (the library makes its copy inside every call, so the batched side is given the
prepared copy while it is timed; the loop side never copies). Both sides are warmed up, then
timed ``repeats`` times, alternating, and the medians are compared, by wall clock and by the CPU
time of this process (the latter is less sensitive to other load on the machine). Only times and
ratios are printed; nothing is asserted about them.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch

import causalbook_lib as cb

R = cb.recurrent


@contextmanager
def prepared_copy(model, m64):
    """Inside the block the library's float64 copy of ``model`` is ``m64`` (no deep copy per call)."""
    original = R._float64_copy
    R._float64_copy = lambda mdl: m64 if mdl is model else original(mdl)
    try:
        yield
    finally:
        R._float64_copy = original


def per_sequence_algorithm2(m64, data, *, t_hat, feature, alphas, t, target=0):
    """Algorithm 2 with Python loops over alphas and sequences (the reference for the benchmark).

    ``m64`` is a float64 eval-mode copy of the model, made by the caller outside the timed region.
    Each sequence is rolled out alone with the same feedback rule as :func:`rollout_with_feedback`.
    """
    n, _, k = data.shape
    L = t + 1

    def f_prime(w):
        return m64(w.reshape(w.shape[0], L, k))[0][:, -1, target]

    out = []
    for a in alphas.tolist():
        windows = []
        with torch.no_grad():
            for j in range(n):
                x = data[j:j + 1, : t_hat + 1].double().clone()
                x[0, t_hat, feature] = a
                y, state = m64(x)
                steps = [x]
                for _ in range(t - t_hat):
                    nxt = y[:, -1:]
                    steps.append(nxt)
                    y, state = m64(nxt, state)
                windows.append(torch.cat(steps, dim=1)[0])
        flat = torch.stack(windows).reshape(n, L * k)
        mean = flat.mean(0)
        cov = (flat - mean).T @ (flat - mean) / n
        out.append(cb.interventions.taylor_expectation(f_prime, mean[None], cov[None])[0])
    return torch.stack(out)


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - w, time.process_time() - c


def main(n: int = 200, n_alphas: int = 9, repeats: int = 5) -> float:
    g = cb.utils.seed_everything(0)
    data = 0.5 * torch.randn(n, 16, 2, generator=g)
    torch.manual_seed(0)
    model = R.RecurrentRegressor(2, 6, 2, cell="gru")
    alphas = torch.linspace(-1, 1, n_alphas, dtype=torch.float64)
    kwargs = dict(t_hat=10, feature=0, alphas=alphas, t=14)
    m64 = R.float64_copy(model)                      # the one copy, outside every timed region

    def batched():
        with prepared_copy(model, m64):
            return R.interventional_expectation_rnn(model, data, **kwargs).taylor

    def looped():
        return per_sequence_algorithm2(m64, data, **kwargs)

    batched()                                        # warm-up: torch loads its forward-AD rules once
    looped()
    times = {"batched": ([], []), "loop": ([], [])}
    for _ in range(repeats):                         # alternate, so that load changes hit both sides
        for name, fn in (("batched", batched), ("loop", looped)):
            value, wall, cpu = _timed(fn)
            times[name][0].append(wall)
            times[name][1].append(cpu)
            if name == "batched":
                vb = value
            else:
                vl = value
    torch.testing.assert_close(vb, vl, atol=1e-9, rtol=1e-9)
    wb, cpu_b = (statistics.median(v) for v in times["batched"])
    wl, cl = (statistics.median(v) for v in times["loop"])
    _, copy_wall, _ = _timed(lambda: R.float64_copy(model))
    print(f"Algorithm 2, {n} sequences x {n_alphas} alphas, window 15 steps x 2 channels; the same float64 "
          f"eval-mode model on both sides, median of {repeats} after a warm-up")
    print(f"batched: {wb:.3f} s wall ({cpu_b:.3f} s CPU)   per-sequence loop: {wl:.3f} s wall ({cl:.3f} s CPU)")
    print(f"ratio loop / batched: {wl / wb:.1f}x wall, {cl / cpu_b:.1f}x CPU (same values)")
    print(f"(one float64 model copy takes {copy_wall * 1e3:.2f} ms; a loop that called rollout_with_feedback once per "
          f"sequence would pay it {n * n_alphas} times)")
    return wl / wb


if __name__ == "__main__":
    main()
