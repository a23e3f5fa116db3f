"""The Grad-CAM study of issue 12: why the demo's Table S2 signs differ from the paper's.

Subcommands (PYTHONPATH=<worktree>, OMP_NUM_THREADS=1):

    python benchmarks/gradcam_study.py derive OLD NEW [--set SECTION.KEY=VALUE ...]
            [--train N | --split A,B,C] [--keep quench,indicators,dataset,train]
        A new campaign NEW with OLD's campaign.toml plus the overrides and a store holding a
        copy of OLD's results of the kept stages (root attributes re-hashed for the new spec).
        Unlike `glassdist init NEW --from OLD` (which reuses whole stages by reference), it
        copies a SUBSET of OLD's replicas: the study's training-set sizes on one quench.
        --train N keeps only the first N training replicas (validation and test replicas
        unchanged, same order), so that every size is tested on the same configurations;
        --split A,B,C takes the first A+B+C replicas of OLD (all quenched) as A train, B
        validation and C test replicas (a campaign made of the part of a larger quench that is done).
        Then: glassdist run NEW --np 1 --stages dataset,train,gradcam.

    python benchmarks/gradcam_study.py table DIR [DIR ...]
        Per campaign, from its store: Table II (test accuracy per class) and Table S2 (glass
        and liquid, Pearson and Spearman at the analysis's Fig. 6 length (analyze attribute xi), mean and std over
        the correctly classified test configurations), plus the diagnostics of the study:
        - C(Γ⁰, Υ): Γ⁰ = M⁻¹ of a UNIFORM map (the inverse map's own bias);
        - C(Γᴸ, Υ): Γᴸ_i = Σ_g W_ig L_g / Σ_g W_ig, the Grad-CAM map read at the particle
          (kernel-weighted mean: M⁻¹ without the 1/ρ share);
        - contrast of L: std/mean over the grid and the fraction of zero pixels (ReLU).

    python benchmarks/gradcam_study.py check DIR [--configs K]
        Independent route on K test configurations: captum's LayerGradCam on the trained
        model, an independent M (dense loop over grid points at (k + 1/2) h, x index k, y index
        l) compared with the stored images, an independent M⁻¹ compared with the stored Γ,
        and Σ_i Γ_i = Σ_kl L_kl over every stored configuration.

Numbers in docs/validation.md come from these commands.
"""

from __future__ import annotations

import argparse
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
import zarr

from glassdist.fields import analysis
from glassdist.structure import indicators as registry
from glassdist.pipeline import STAGES
from glassdist import spec as specmod
from glassdist.fields.correlation import pearson, spearman
from glassdist.learn.model import build_model
from glassdist.constants import CLASSES
from glassdist.store import Store, software_versions
from glassdist.structure.grid import kernel_matrix


PER_REPLICA_EXCEPT = {"indicators/rdf_r"}  # arrays of a kept stage that are not indexed by replica


# ---- derived campaigns -----------------------------------------------------------------------
def derive(
    old: Path,
    new: Path,
    overrides: list[str],
    keep: list[str],
    n_train: int | None = None,
    split: list[int] | None = None,
) -> None:
    """Campaign `new` = `old`'s campaign.toml + overrides, with copies of the kept stages' results.

    n_train: keep the first n_train training replicas and every validation and test replica;
    split [a, b, c]: the first a + b + c replicas of `old` (all quenched: replicas are
    independent draws), re-split into a train, b validation, c test.
    """
    old_spec = specmod.load(old)
    rows = np.arange(old_spec.quench.replicas)
    if n_train is not None:
        tr, va, te = old_spec.quench.split
        if not 0 < n_train <= tr:
            raise ValueError(f"--train must be in 1..{tr}")
        split = [n_train, va, te]
        rows = np.concatenate([np.arange(n_train), np.arange(tr, tr + va + te)])
    elif split is not None:
        rows = np.arange(sum(split))
        if not Store(old, mode="r").ledger("quench").done_mask()[rows].all():
            raise ValueError(f"the first {len(rows)} replicas of {old} are not all quenched")
    if split is not None:
        overrides = overrides + [f"quench.replicas={len(rows)}", f"quench.split=[{','.join(map(str, split))}]"]
    text = specmod.apply_overrides((old / "campaign.toml").read_text(), overrides)
    spec = specmod.loads(text, source=f"{new}/campaign.toml")
    for stage in keep:
        changed = [s for s in STAGES[stage].sections if s != "quench" and spec.raw[s] != old_spec.raw[s]]
        if changed:
            raise ValueError(f"cannot keep {stage}: sections {changed} differ")
    new.mkdir(parents=True, exist_ok=False)
    (new / "campaign.toml").write_text(text)
    src = zarr.open_group(old / "store.zarr", mode="r")
    dst = zarr.open_group(new / "store.zarr", mode="w", zarr_format=3)
    stages = {
        s: {
            "hash": STAGES[s].section_hash(spec),
            "sections": list(STAGES[s].sections),
            "versions": software_versions(),
            "values": {k: spec.raw[k] for k in STAGES[s].sections},
        }
        for s in keep
    }
    dst.attrs.update(
        {
            "spec": spec.raw,
            "spec_hash": spec.hash,
            "created": src.attrs["created"],
            "versions": src.attrs["versions"],
            "stages": stages,
            "completed": {s: stages[s]["hash"] for s in keep},
            "derived_from": {
                "campaign": str(old.resolve()),
                "kept": keep,
                "replica_rows": rows.tolist() if split is not None else None,
            },
        }
    )
    _copy(src, dst, "system/types", None)
    for stage in keep:
        for group in (stage, f"ledger/{stage}"):
            if group in src:
                for name, arr in src[group].members(max_depth=None):
                    path = f"{group}/{name}"
                    if isinstance(arr, zarr.Array):
                        per_replica = path not in PER_REPLICA_EXCEPT and arr.shape[0] == old_spec.quench.replicas
                        _copy(src, dst, path, rows if per_replica else None)
        for key in ("classes", "splits", "target_class"):
            if stage in src and key in src[stage].attrs:
                dst[stage].attrs[key] = src[stage].attrs[key]
    if "dataset/split" in dst:
        dst["dataset/split"][:] = spec.split_of()
    if "train" in keep:
        for key, value in src["train"].attrs.items():
            dst["train"].attrs[key] = value
        shutil.copytree(old / "train", new / "train", ignore=shutil.ignore_patterns("checkpoint-*"))


def _copy(src, dst, path: str, rows) -> None:
    arr = src[path]
    data = arr[:] if rows is None else arr.get_orthogonal_selection((rows,))
    chunks = arr.chunks if rows is None else (min(arr.chunks[0], len(rows)),) + arr.chunks[1:]
    out = dst.create_array(path, shape=data.shape, chunks=chunks, dtype=arr.dtype, fill_value=arr.fill_value)
    out[:] = data


# ---- Table II, Table S2 and the diagnostics ----------------------------------------------------
def _pairs(cg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson (P,) and Spearman (P,) of the Table S2 pairs of coarse-grained fields (N, 3)."""
    pairs = registry.pairs(cg.shape[1])
    return (
        np.array([pearson(cg[:, i], cg[:, j]) for i, j in pairs]),
        np.array([spearman(cg[:, i], cg[:, j]) for i, j in pairs]),
    )


def campaign_tables(campaign: Path) -> dict:
    """Everything `table` prints for one campaign (arrays over the test configurations)."""
    store = Store(campaign, mode="r")
    spec = specmod.load(store.dir)
    xi = float(store.root["analyze"].attrs["xi"]["violin"])  # the length the analyze stage used for Fig. 6
    L, sigma_ii, cut = spec.box_length, np.diag(spec.sigma), spec.dataset.kernel_cutoff
    types = store.types()
    g, ind = store.root["gradcam"], store.root["indicators"]
    replicas, correct = g["replicas"][:], g["correct"][:]
    T = len(replicas)
    p, s = np.full((T, 2, 3), np.nan), np.full((T, 2, 3), np.nan)
    bias = np.full((T, 2, 2), np.nan)  # [C(Γ⁰, Υ), C(Γᴸ, Υ)] Pearson
    contrast = np.full((T, 2, 2), np.nan)  # [std/mean of L, fraction of L == 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for t, rep in enumerate(replicas):
            pos = store.root["quench/positions"][rep]
            gamma, maps = g["gamma"][t], g["map"][t].astype(np.float64)
            for c in range(2):
                w = kernel_matrix(pos[c], types, L, spec.dataset.grid, sigma_ii, cut)
                rho = np.asarray(w.sum(axis=0)).ravel()
                lmap = maps[c].ravel()
                uniform = w @ np.divide(1.0, rho, out=np.zeros_like(rho), where=rho > 0)
                sampled = (w @ lmap) / np.asarray(w.sum(axis=1)).ravel()
                fields = np.stack([gamma[c], ind["voronoi"][rep, c], ind["ttop"][rep, c], uniform, sampled], -1)
                cg = analysis.smooth(pos[c], fields, L, xi)
                p[t, c], s[t, c] = _pairs(cg[:, :3])
                bias[t, c] = [pearson(cg[:, 3], cg[:, 1]), pearson(cg[:, 4], cg[:, 1])]
                contrast[t, c] = [lmap.std() / lmap.mean() if lmap.mean() > 0 else np.nan, (lmap == 0).mean()]
    valid = correct & np.isfinite(p).all(-1)
    return {
        "name": campaign.name,
        "accuracy": store.root["train/test_accuracy"][:],
        "s2": analysis.table_s2(p, s, valid),
        "valid": valid,
        "bias": bias,
        "contrast": contrast,
        "n_train": int(spec.quench.split[0]),
        "N": spec.system.n_particles,
        "grid": spec.dataset.grid,
        "targets": store.root["gradcam"].attrs.get("target_class"),
    }


def _ms(x) -> str:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return f"{x.mean():+.2f} ± {x.std():.2f}" if x.size else "n/a"


def print_tables(campaigns: list[Path]) -> None:
    """Markdown tables: Table II + Table S2 (Pearson, Spearman) + diagnostics, one row per campaign."""
    rows = [campaign_tables(c) for c in campaigns]
    print(
        "| campaign | N | grid | train | acc. L / G (test) | class | C(Γ,Υ) P (S) | C(Γ,Θ) P (S) "
        "| C(Θ,Υ) P (S) | C(Γ⁰,Υ) | C(Γᴸ,Υ) | L std/mean | L zero | n |"
    )
    print("|---" * 14 + "|")
    for r in rows:
        for c in (1, 0):
            v = r["valid"][:, c]
            s2 = r["s2"][c]
            cells = [f"{s2[k, 0]:+.3f} ± {s2[k, 1]:.3f} ({s2[k, 2]:+.3f})" for k in range(3)]
            print(
                f"| {r['name']} | {r['N']} | {r['grid']} | {r['n_train']} | "
                f"{r['accuracy'][0]:.3f} / {r['accuracy'][1]:.3f} | {CLASSES[c]} (target {r['targets'][c]}) | "
                + " | ".join(cells)
                + f" | {_ms(r['bias'][v, c, 0])} | {_ms(r['bias'][v, c, 1])} | "
                f"{_ms(r['contrast'][v, c, 0])} | {_ms(r['contrast'][v, c, 1])} | {int(v.sum())} |"
            )


# ---- independent route -------------------------------------------------------------------------
def dense_kernels(
    positions: np.ndarray, types: np.ndarray, L: float, grid: int, sigma_ii: np.ndarray, cutoff_factor: float
) -> np.ndarray:
    """f(|r_i - r_kl|) (N, grid, grid) by minimum image: grid point (k, l) at x = (k + 1/2) h,
    y = (l + 1/2) h; kernel width a sigma_ii with a = L / sqrt(0.64 N); zero beyond the cutoff."""
    n = len(positions)
    a, h = L / np.sqrt(0.64 * n), L / grid
    centres = (np.arange(grid) + 0.5) * h
    dx = centres[None, :] - positions[:, 0:1]
    dy = centres[None, :] - positions[:, 1:2]
    dx -= L * np.round(dx / L)
    dy -= L * np.round(dy / L)
    r2 = dx[:, :, None] ** 2 + dy[:, None, :] ** 2  # (N, k, l)
    s = sigma_ii[types][:, None, None]
    return np.where(r2 < (cutoff_factor * s) ** 2, np.exp(-r2 / (a * s) ** 2), 0.0)


def check(campaign: Path, n_configs: int) -> None:
    """Independent Grad-CAM (captum) and M, M⁻¹ on stored results; prints the largest deviations."""
    from captum.attr import LayerGradCam

    store = Store(campaign, mode="r")
    spec = specmod.load(store.dir)
    L, sigma_ii, cut, grid = spec.box_length, np.diag(spec.sigma), spec.dataset.kernel_cutoff, spec.dataset.grid
    types = store.types()
    model = build_model(spec)
    model.load_state_dict(torch.load(campaign / "train" / "member-0.pt", map_location="cpu", weights_only=True))
    model.eval()
    cam = LayerGradCam(model, model.features[-1])
    g = store.root["gradcam"]
    targets = [CLASSES.index(c) for c in g.attrs["target_class"]]
    worst = {"image": 0.0, "map": 0.0, "gamma": 0.0}
    for t in range(n_configs):
        rep = int(g["replicas"][t])
        pos, images = store.root["quench/positions"][rep], store.root["dataset/images"][rep]
        for c in range(2):
            f = dense_kernels(pos[c], types, L, grid, sigma_ii, cut)
            rho = f.sum(0)
            worst["image"] = max(worst["image"], np.abs(rho - images[c]).max() / rho.max())
            x = torch.from_numpy(images[c][None, None])
            lmap = cam.attribute(x, target=targets[c], relu_attributions=True)[0, 0].detach().numpy()
            stored = g["map"][t, c]
            worst["map"] = max(worst["map"], np.abs(lmap - stored).max() / max(stored.max(), 1e-30))
            gamma = np.einsum("ikl,kl->i", f, np.divide(lmap, rho, out=np.zeros_like(rho), where=rho > 0))
            worst["gamma"] = max(
                worst["gamma"], np.abs(gamma - g["gamma"][t, c]).max() / max(np.abs(gamma).max(), 1e-30)
            )
    sums = g["gamma"][:].sum(-1), g["map"][:].astype(np.float64).sum((-2, -1))
    done = np.isfinite(sums[0])
    rel = np.abs(sums[0][done] - sums[1][done]) / np.maximum(np.abs(sums[1][done]), 1e-30)
    print(
        f"{campaign.name}: {n_configs} test configurations x 2 classes, relative max deviation of the "
        f"independent route: image M {worst['image']:.1e}, Grad-CAM map (captum LayerGradCam) "
        f"{worst['map']:.1e}, Γ (independent M⁻¹ of the captum map) {worst['gamma']:.1e}; "
        f"Σ_i Γ_i vs Σ_kl L_kl over {done.sum()} stored maps: max relative deviation {rel.max():.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("derive")
    d.add_argument("old", type=Path)
    d.add_argument("new", type=Path)
    d.add_argument("--set", action="append", default=[])
    d.add_argument("--train", type=int)
    d.add_argument("--split", help="a,b,c: the first a+b+c replicas as a train, b val, c test")
    d.add_argument("--keep", default="quench,indicators")
    t = sub.add_parser("table")
    t.add_argument("dirs", type=Path, nargs="+")
    c = sub.add_parser("check")
    c.add_argument("dir", type=Path)
    c.add_argument("--configs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.cmd == "derive":
        split = [int(v) for v in args.split.split(",")] if args.split else None
        derive(args.old, args.new, args.set, args.keep.split(","), args.train, split)
    elif args.cmd == "table":
        print_tables(args.dirs)
    else:
        check(args.dir, args.configs)


if __name__ == "__main__":
    main()
