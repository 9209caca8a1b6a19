"""Watch the gradient vanish or explode, from the same BPTT kernels that train the models.

For a batch of a task and L = the loss at the last step:
  * ||dL/dh_k|| for every step k, averaged over the batch, reported by time lag T-1-k. It is the
    total gradient the reverse sweep already computes (``RNN.hidden_grads``); with
    ``bptt_truncate=K`` it is cut to zero beyond lag K.
  * the per-step Jacobian of the top layer's state, ||d s_t / d s_{t-1}||_2 (s = h, or (h, c)
    for the LSTM), built row by row by seeding the kernels' one-step reverse window with unit
    vectors (a batch of copies, one per row): the spectral norm, mean and spread over steps.
  * each recurrent gate block's largest singular value and spectral radius.
  * the fraction of saturated units (tanh or sigmoid derivative below 0.01) and, for ReLU, of
    dead units (zero at every step of every sequence).

How to read it: dL/dh_k = dL/dh_{T-1} J_{T-1} ... J_{k+1}, so its norm shrinks by at most the
per-step factor ||J_t|| <= ||W_hh|| * max|f'| (1 for tanh, 1/4 for sigmoid) at every lag. Unless
gates (the LSTM's c_t = f c_{t-1} + ...) or initialization (identity for ReLU) keep that factor
near 1, the norm falls geometrically: the far past receives no learning signal.
"""
import numpy as np

from . import fileio

SATURATION = 0.01  # derivative threshold for a "saturated" unit


def last_step_only(task, x, target):
    """Targets restricted to the last step's loss (per-step tasks keep only their last step)."""
    if task.output == "all":
        target = target.copy()
        target[:-1] = -1  # ignored by the cross-entropy
    return target


def grad_norm_by_lag(model, task, x, target, lengths=None, bptt_truncate=None):
    """Mean over the batch of ||dL/dh_k|| for the top layer, indexed by lag (0 = last step)."""
    model.loss_and_grad(x, last_step_only(task, x, target), task.loss, task.output, lengths,
                        bptt_truncate=bptt_truncate)
    dh = model.hidden_grads()[-1].astype(np.float64)  # (T, B, H)
    return norms(dh).mean(axis=1)[::-1].copy()


def norms(v):
    """||v|| over the last axis of (..., H) as m ||v / m|| with m = max |v_i|: the squares of a
    vanishing gradient (1e-162 and below) would underflow to 0 long before it does."""
    m = np.abs(v).max(axis=-1, keepdims=True)
    return m[..., 0] * np.sqrt(np.sum(np.square(v / np.where(m > 0, m, 1.0)), axis=-1))


def step_jacobians(model, x_one):
    """Jacobians of the top layer's state s_t w.r.t. s_{t-1} for one sequence: (T, S, S),
    S = H (2H for LSTM, state ordered h then c). See RNN.step_jacobians."""
    return model.step_jacobians(x_one)


def saturation(model):
    """Fractions of saturated units per nonlinearity (and dead ReLU units), from the model's
    last forward pass, over every layer, step and sequence."""
    H, cell, out = model.hidden_size, model.cell, {}
    tapes = model.tape_arrays()
    if not cell.gate_tape:  # one activation, and it is the state itself
        act = np.stack([t.h[1:] for t in tapes])  # (L, T, B, H)
        if cell.activations[0] in ("relu", "modrelu"):  # both are exactly 0 where they cut the path
            out["zero_activations"] = float(np.mean(act == 0))
            out["dead_units"] = float(np.mean(np.all(act == 0, axis=(1, 2))))
        else:
            out[cell.activations[0]] = float(np.mean(1 - act * act < SATURATION))
        return out
    for k, (kind, gate) in enumerate(zip(cell.activations, cell.layout.split(","))):
        g = np.concatenate([t.gates[..., k * H:(k + 1) * H].ravel() for t in tapes])
        deriv = g * (1 - g) if kind == "sigmoid" else 1 - g * g
        out[gate] = float(np.mean(deriv < SATURATION))
    if cell.has_cell_state:
        tc = np.tanh(np.concatenate([t.c[1:].ravel() for t in tapes]))
        out["tanh(c)"] = float(np.mean(1 - tc * tc < SATURATION))
    return out


def recurrent_spectrum(model):
    """Largest singular value and spectral radius of each recurrent gate block, per layer (a
    diagonal recurrence: both are max |u|)."""
    H, rows = model.hidden_size, []
    gates, params = model.cell.layout.split(","), model.numpy_params()
    for k in range(model.num_layers):
        w = params[f"weight_hh_l{k}"].astype(np.float64)
        for gate, (sigma, rho) in zip(gates, model.cell.recurrence.blocks(w, H)):
            rows.append(dict(layer=k, gate=gate, sigma_max=sigma, spectral_radius=rho))
    return rows


def _stats(v):
    return dict(mean=float(v.mean()), std=float(v.std()), min=float(v.min()), median=float(np.median(v)),
                max=float(v.max()), samples=int(v.size))


def profile(model, task, batch_size=32, seed=0, bptt_truncate=None, jacobian_samples=4, device=None):
    """Everything above for one model on a batch of the task (seeded), from the kernels of
    ``device`` (None: the model's; the spectra come from the host).

    The profile runs in float64 on a copy of the weights, whatever the model's dtype: a tanh
    RNN's gradient falls below float32's 1e-45 within a few hundred steps, and an underflowed
    0 would read as "no path at all". A ratio that is still exactly 0 gets its cause
    (``zero_cause``): truncation, units that are exactly zero (ReLU), or float64 underflow.
    """
    rng = np.random.default_rng([seed, 7])
    x, target, lengths = task.batch(rng, batch_size)
    m = model.copy(device=device or model.device, dtype="float64")
    norms = grad_norm_by_lag(m, task, x, target, lengths, bptt_truncate)
    sat = saturation(m)  # from the same forward pass
    J = np.concatenate([m.step_jacobians(x[:, b:b + 1]) for b in range(min(jacobian_samples, batch_size))])
    jn = np.linalg.norm(J, ord=2, axis=(1, 2))
    jr = np.abs(np.linalg.eigvals(J)).max(axis=1)  # spectral radius of each step's Jacobian
    T = len(norms)
    # geometric mean decay per step over the lags that carry a gradient
    pos = np.nonzero(norms > 0)[0]
    decay = float(np.exp(np.log(norms[pos[-1]] / norms[0]) / pos[-1])) if len(pos) > 1 and norms[0] > 0 else None
    ratio = float(norms[-1] / norms[0]) if norms[0] > 0 else None
    cause = None
    if ratio == 0:
        if bptt_truncate is not None and bptt_truncate < T - 1:
            cause = f"truncated: no gradient beyond lag {bptt_truncate} by construction"
        elif sat.get("zero_activations", 0) > 0:
            cause = f"no path: every path back crosses a unit at exactly 0 ({sat['zero_activations']:.0%} of activations)"
        else:
            cause = "underflow: below float64's range (1e-308)"
    return dict(
        cell=model.cell.name, seq_len=T, batch_size=batch_size, bptt_truncate=bptt_truncate, device=m.device,
        dtype="float64", grad_norm_by_lag=[float(v) for v in norms],
        ratio_last_to_first=ratio, zero_cause=cause, decay_per_step=decay,
        jacobian_norm=_stats(jn), jacobian_radius=_stats(jr),
        recurrent=recurrent_spectrum(model),
        saturated=sat,
    )


def run_profiles(cfg, run_dir, task=None, batch_size=32):
    """A training run's profiles: {"init": its model at initialization (the weights its seed
    gives), "trained": from RUN_DIR/checkpoint.npz, None where there is none}. task: the run's
    task when the caller already has it (else built from cfg)."""
    from pathlib import Path

    from .train.loop import build, load_model

    built, fresh = build(cfg)
    task = task or built
    out = dict(init=profile(fresh, task, batch_size, cfg.seed, cfg.bptt_truncate), trained=None)
    ck = Path(run_dir) / "checkpoint.npz"
    if ck.exists():
        trained, _ = load_model(ck)
        out["trained"] = profile(trained, task, batch_size, cfg.seed, cfg.bptt_truncate)
    return out


def usable_profile(p, cell, batch_size):
    """Whether p (from a results file: untrusted) is a profile of this cell and batch size with
    every field the report reads, so that it can be used instead of computing it again."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    try:
        norms = p["grad_norm_by_lag"]
        return (p["cell"] == cell and p["batch_size"] == batch_size and p["seq_len"] == len(norms) > 0
                and all(map(number, norms))
                and all(p[k] is None or number(p[k]) for k in ("ratio_last_to_first", "decay_per_step"))
                and all(number(p[k]["mean"]) for k in ("jacobian_norm", "jacobian_radius"))
                and len(p["recurrent"]) > 0 and all(number(r["sigma_max"]) for r in p["recurrent"]))
    except (KeyError, TypeError, IndexError):
        return False


OUTPUTS = ("gradients.json", "gradients.png")  # what write_profiles writes in OUT


def write_profiles(out, task, profiles):
    """OUT/gradients.json ({task, seq_len, init, trained[, untrained]}) and OUT/gradients.png
    from profiles {"init": [...], "trained": [...]} and optionally "untrained": [{cell,
    status, message}] for cells whose training diverged; returns the sequence length T."""
    T = profiles["init"][0]["seq_len"]
    json_name, png_name = OUTPUTS
    plot_profiles(profiles, f"{out}/{png_name}", f"{task.name}, T = {T}: gradient of the last step's loss, by lag")
    fileio.atomic_write_json(f"{out}/{json_name}", dict(task=task.name, seq_len=T, **profiles))
    return T


def plot_profiles(profiles, path, title):
    """Log-scale ||dL/dh|| (relative to lag 0) vs lag, one colour per cell; solid at init,
    dashed after training. Zeros (cut by truncation) are left out of the line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import COLORS

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for phase, style in (("init", "-"), ("trained", "--")):
        for p in profiles.get(phase, []):
            n = np.asarray(p["grad_norm_by_lag"])
            rel = np.where(n > 0, n / n[0], np.nan) if n[0] > 0 else np.full_like(n, np.nan)
            ax.plot(np.arange(len(n)), rel, style, color=COLORS.get(p["cell"]),
                    label=f"{p['cell']} ({phase})")
    for u in profiles.get("untrained", []):  # no curve to draw: the legend says why
        ax.plot([], [], ":", color=COLORS.get(u["cell"]), label=f"{u['cell']} ({u['message']})")
    ax.set_yscale("log")
    ax.set_xlabel("time lag T-1-k (steps back from the loss)")
    ax.set_ylabel("||dL/dh_k|| / ||dL/dh_{T-1}||")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fileio.save_figure(fig, path)
    plt.close(fig)


# Printed under the table and the report: why ||J|| near 1 does not contradict a vanishing gradient.
JACOBIAN_NOTE = ("per-step = the measured factor, (||dL/dh_0|| / ||dL/dh_{T-1}||)^(1/(T-1)). ||J|| (the spectral "
                 "norm of ds_t/ds_{t-1}) only bounds it from above: a dense W_hh's J is far from normal, so a step "
                 "can keep ||J|| near 1 while the product of many J shrinks; rho(J), the spectral radius, tracks the "
                 "decay more closely (IndRNN's J is diagonal, so there the two agree). Profiles run in float64, so a vanishing gradient shows its size down to 1e-308.")


def _ratio(p):
    r = p["ratio_last_to_first"]
    if r is None:
        return "-"
    if r == 0:
        return "0 (" + p["zero_cause"].split(":")[0] + ")"
    return f"{r:.1e}"


def table(profiles):
    """Rows of text for the terminal."""
    head = (f"{'cell':5s} {'phase':7s} {'|dL/dh| lag0':>12s} {'last/first':>14s} {'per-step':>8s} "
            f"{'rho(J) mean':>11s} {'|J| mean±std':>14s} {'σmax(Whh)':>9s} {'ρ(Whh)':>7s}  saturated / dead")
    lines = [head, "-" * len(head)]
    for phase in ("init", "trained"):
        for p in profiles.get(phase, []):
            rec = p["recurrent"]
            smax = max(r["sigma_max"] for r in rec)
            rho = max(r["spectral_radius"] for r in rec)
            j = p["jacobian_norm"]
            decay = p["decay_per_step"]
            sat = ", ".join(f"{k} {v:.0%}" for k, v in p["saturated"].items())
            lines.append(f"{p['cell']:5s} {phase:7s} {p['grad_norm_by_lag'][0]:12.3e} {_ratio(p):>14s} "
                         f"{'-' if decay is None else f'{decay:.3f}':>8s} {p['jacobian_radius']['mean']:11.3f} "
                         f"{j['mean']:7.3f}±{j['std']:<6.3f} {smax:9.3f} {rho:7.3f}  {sat}")
    for u in profiles.get("untrained", []):
        lines.append(f"{u['cell']:5s} {'trained':7s} {u['message']}: no trained profile (initialization above)")
    return lines + ["", JACOBIAN_NOTE]
