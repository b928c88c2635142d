"""Time 256x256 pair inference on 2 CPU threads: SiteNet (ours) vs plain FC-Siam-diff, in one run.

Both networks are timed with BatchNorm folded into their convolutions (how ``ChangeDetector``
runs ours; applied to the reference alike) and, for reference, unfused. ``ratio`` is the fused
one. The four variants are interleaved so background load hits all alike; medians over repeats,
after warm-up. FLOPs are counted with ``torch.utils.flop_counter`` (2 per multiply-accumulate).

Usage: .venv/bin/python bench/model.py [--json] [--bands 6] [--repeats 30] [--threads 2]
Last line: {"ours_pairs_per_s", "ref_pairs_per_s", "ratio", "params", "gflops", ...}.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fcsiam import FCSiamDiff
from models.cdnet import SiteNet, SiteNetConfig, count_parameters, fuse_conv_bn
from models.checkpoint import load_card


def gflops(net: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> float:
    """Forward GFLOPs of one pair, counted by torch's FlopCounterMode."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(a, b)
    return counter.get_total_flops() / 1e9


def time_pairs(
    nets: dict[str, torch.nn.Module], a: torch.Tensor, b: torch.Tensor, warmup: int, repeats: int
) -> dict[str, float]:
    """Median seconds per pair for each net (interleaved)."""
    times: dict[str, list[float]] = {k: [] for k in nets}
    with torch.inference_mode():
        for net in nets.values():
            for _ in range(warmup):
                net(a, b)
        for _ in range(repeats):
            for name, net in nets.items():
                start = time.perf_counter()
                net(a, b)
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--bands", type=int, default=6)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--checkpoint", default="s2", help="time this shipped checkpoint's architecture ('' = SiteNet defaults)"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    a = torch.randn(1, args.bands, args.size, args.size)
    b = torch.randn(1, args.bands, args.size, args.size)
    if args.checkpoint:
        params = dict(load_card(args.checkpoint).architecture.params, in_channels=args.bands)
        ours = SiteNet(SiteNetConfig.from_dict(params))
    else:
        ours = SiteNet(SiteNetConfig(args.bands))
    plain = {"ours": ours.eval(), "ref": FCSiamDiff(args.bands).eval()}
    nets = {
        **plain,
        "ours_fused": fuse_conv_bn(copy.deepcopy(plain["ours"])),
        "ref_fused": fuse_conv_bn(copy.deepcopy(plain["ref"])),
    }
    median = time_pairs(nets, a, b, args.warmup, args.repeats)
    result = {
        "ours_pairs_per_s": round(1.0 / median["ours_fused"], 2),
        "ref_pairs_per_s": round(1.0 / median["ref_fused"], 2),
        "ratio": round(median["ref_fused"] / median["ours_fused"], 2),
        "params": count_parameters(plain["ours"]),
        "gflops": round(gflops(plain["ours"], a, b), 3),
        "ref_params": count_parameters(plain["ref"]),
        "ref_gflops": round(gflops(plain["ref"], a, b), 3),
        "ratio_unfused": round(median["ref"] / median["ours"], 2),
        "ours_unfused_pairs_per_s": round(1.0 / median["ours"], 2),
        "ref_unfused_pairs_per_s": round(1.0 / median["ref"], 2),
        "checkpoint": args.checkpoint,
        "threads": args.threads,
        "bands": args.bands,
        "size": args.size,
        "repeats": args.repeats,
    }
    if not args.json:
        for k, v in result.items():
            print(f"{k:>26}: {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
