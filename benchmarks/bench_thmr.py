"""T-HMR's cost: crops per second of the reconstructor, and what the Memory Cache and the
MemFormer add to the backbone, per frame.

For each network size and number of people per frame, a clip of ``--frames`` frames of
random crops runs through ``THmr.step`` (the reconstruction stage's call: backbone, memory
candidates, dual-branch scoring and top-k, MemFormer, SMPL head, then the memory push), with
every stage timed on its own. The baseline in the same run is plain HMR2.0 (backbone + head,
no memory) on the same crops. The first frames fill the memory, so the timed frames are the
steady state with ``memory_length`` frames per track.

    .venv/bin/python benchmarks/bench_thmr.py [--device cpu|cuda] [--quick]
        [--architectures tiny,hmr2]

``tiny`` is the test configuration of the same code; ``hmr2`` is the public ViT-H/16 at full
size with random weights (the speed of the real checkpoint, without needing it). On the CPU
the full size runs at batch 1 only, a few frames (seconds per crop). ``--device cuda`` runs
the same on a GPU with fp16 autocast, as the reconstructor does.

Writes benchmarks/results/thmr.md (or thmr_cuda.md) and thmr.png.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STAGES = ("backbone", "memory", "memformer", "head", "push")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_clip(model, people: int, frames: int, warmup: int, device: str, half: bool):
    """Per-stage seconds of each timed frame, and the plain-HMR2.0 seconds of the same crops."""
    import torch

    from ram_core.reconstruct.hmr2 import normalise_crops

    rng = np.random.default_rng(0)
    model.reset_memory()
    stage_times: dict[str, list[float]] = defaultdict(list)
    plain_times: list[float] = []
    track_ids = list(range(1, people + 1))
    autocast = torch.autocast("cuda", dtype=torch.float16) if half else nullcontext()
    for index in range(warmup + frames):
        crops = normalise_crops(rng.integers(0, 255, (people, 256, 192, 3), dtype=np.uint8))
        crops = crops.to(device)
        times = {}
        with torch.inference_mode(), autocast:
            _sync(device)
            t0 = time.perf_counter()
            features = model.hmr2.features(crops)
            _sync(device)
            t1 = time.perf_counter()
            cache = model._cache_for(features)
            memory = cache.candidates(track_ids, index)
            _sync(device)
            t2 = time.perf_counter()
            fused = model.fuse(features, memory)
            _sync(device)
            t3 = time.perf_counter()
            model.hmr2.regress(fused)
            _sync(device)
            t4 = time.perf_counter()
            for row, track_id in enumerate(track_ids):
                cache.push(track_id, index, features[row])
            _sync(device)
            t5 = time.perf_counter()
            times = dict(zip(STAGES, np.diff([t0, t1, t2, t3, t4, t5]), strict=True))
            p0 = time.perf_counter()
            model.hmr2(crops)
            _sync(device)
            plain = time.perf_counter() - p0
        if index >= warmup:
            for stage, seconds in times.items():
                stage_times[stage].append(float(seconds))
            plain_times.append(plain)
    return stage_times, plain_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--architectures", default="tiny,hmr2")
    parser.add_argument("--quick", action="store_true", help="a few frames, for a check")
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()

    import torch

    from ram_core.reconstruct.thmr import THmrConfig, build_thmr

    torch.set_num_threads(os.cpu_count() or 1)
    device = args.device
    half = device.startswith("cuda")
    rows = []
    for architecture in args.architectures.split(","):
        config = THmrConfig(architecture=architecture)
        full_on_cpu = architecture == "hmr2" and not device.startswith("cuda")
        people_counts = (1,) if full_on_cpu else (1, 4, 8)
        if args.quick:
            frames, warmup = (2, 1) if full_on_cpu else (4, config.memory_length // 4)
        else:
            frames, warmup = (3, 2) if full_on_cpu else (20, config.memory_length)
        print(f"building {architecture} on {device} ...", file=sys.stderr)
        torch.manual_seed(0)
        model = build_thmr(config, device)
        # As if trained: an untrained MemFormer (zero output layer) is skipped at inference,
        # and its cost would read as nothing.
        with torch.no_grad():
            model.memformer.output.weight.normal_(std=1e-3)
        for people in people_counts:
            print(f"  {people} people x {frames} frames ...", file=sys.stderr)
            stage_times, plain = time_clip(model, people, frames, warmup, device, half)
            per_frame = {s: statistics.median(v) for s, v in stage_times.items()}
            total = sum(per_frame.values())
            rows.append(
                {
                    "architecture": architecture,
                    "people": people,
                    "frames": frames,
                    "per_frame": per_frame,
                    "total": total,
                    "plain": statistics.median(plain),
                }
            )
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else ""
    lines = [
        "# T-HMR: reconstructor speed and the memory's cost",
        "",
        f"Device: {device}{' (' + gpu + ', fp16 autocast)' if gpu else ''}; "
        f"{platform.machine()}, {os.cpu_count()} CPU(s), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads. Random weights of each architecture; median "
        "over the timed frames, after the memory is full (tiny: its memory_length frames "
        "first). `plain HMR2.0` is backbone + head on the same crops in the same run. "
        "Reproduce: `.venv/bin/python benchmarks/bench_thmr.py"
        f"{' --device ' + device if device != 'cpu' else ''}`.",
        "",
        "| network | people / frame | crops / s (T-HMR) | crops / s (plain HMR2.0) | "
        "backbone ms | memory ms | MemFormer ms | head ms | memory + MemFormer / backbone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        stages = row["per_frame"]
        overhead = (stages["memory"] + stages["memformer"] + stages["push"]) / stages["backbone"]
        lines.append(
            f"| {row['architecture']} | {row['people']} | {row['people'] / row['total']:.1f} | "
            f"{row['people'] / row['plain']:.1f} | {1000 * stages['backbone']:.1f} | "
            f"{1000 * (stages['memory'] + stages['push']):.2f} | "
            f"{1000 * stages['memformer']:.2f} | {1000 * stages['head']:.1f} | "
            f"{100 * overhead:.1f}% |"
        )
    lines += [
        "",
        "`memory` is gathering the candidates and pushing the frame; `MemFormer` includes "
        "the dual-branch scoring and the top-k, with its output layer made non-zero as if "
        "trained (an untrained MemFormer adds exactly nothing and is skipped). The memory "
        "is O(memory_length) per track and does not grow with the clip.",
        "",
    ]
    table = "\n".join(lines)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    name = "thmr" if device == "cpu" else f"thmr_{device.split(':')[0]}"
    (results / f"{name}.md").write_text(table)
    print(table)
    _plot(rows, results / f"{name}.png")


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    architectures = list(dict.fromkeys(r["architecture"] for r in rows))
    fig, axes = plt.subplots(1, len(architectures), figsize=(4 * len(architectures), 3.2))
    for ax, architecture in zip(np.atleast_1d(axes), architectures, strict=True):
        mine = [r for r in rows if r["architecture"] == architecture]
        labels = [f"{r['people']} people" for r in mine]
        bottom = np.zeros(len(mine))
        for stage in STAGES:
            values = np.array([1000 * r["per_frame"][stage] / r["people"] for r in mine])
            ax.bar(labels, values, bottom=bottom, label=stage)
            bottom += values
        ax.set_ylabel("ms per crop")
        ax.set_title(f"T-HMR ({architecture}): a crop's time")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
