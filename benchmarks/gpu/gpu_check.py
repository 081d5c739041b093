"""GPU checks on a CUDA machine: mixed-precision ASR training through the CLI, fp32 features
under autocast, and GraphModel vs hand-wired overhead on QuartzNet 5x5 (interleaved rounds).

Run from the repository root after `pip install --no-deps -e .`:
    python benchmarks/gpu/gpu_check.py --out results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def train_runs(out: Path) -> list[dict[str, object]]:
    """digits_small for 3 epochs under each precision, through `neuralgraph train`."""
    results = []
    for precision in ("32", "16-mixed", "bf16-mixed"):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "neuralgraph.cli", "train",
             str(ROOT / "examples/asr/digits_small.yaml"), "trainer.max_epochs=3",
             "trainer.accelerator=gpu", f"trainer.precision={precision}",
             f"data_dir={ROOT / 'examples/asr/data/digits'}",
             "--exp-dir", str(out / "exp"), "--version", f"p{precision}"],
            capture_output=True, text=True, check=False, cwd=out)
        lines = [ln for ln in proc.stderr.splitlines() if "validation:" in ln]
        results.append({"precision": precision, "rc": proc.returncode,
                        "seconds": round(time.perf_counter() - start, 1),
                        "validation": lines, "tail": proc.stderr[-1500:] if proc.returncode
                        else ""})
        print(json.dumps(results[-1]), flush=True)
    return results


def features_fp32() -> dict[str, object]:
    """The preprocessor's output stays fp32 under fp16 and bf16 autocast."""
    from neuralgraph_audio import AudioToMelSpectrogramPreprocessor

    pre = AudioToMelSpectrogramPreprocessor().cuda().eval()
    audio = torch.randn(4, 32000, device="cuda")
    lengths = torch.full((4,), 32000, device="cuda")
    found = {}
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cuda", dtype=dtype):
            spec, _ = pre(input_signal=audio, length=lengths)
        found[str(dtype)] = str(spec.dtype)
    return found


def overhead(rounds: int, steps: int) -> dict[str, object]:
    """GraphModel vs the same modules called by hand: forward+backward+step, interleaved."""
    import neuralgraph as ng

    graph = ng.Graph.from_yaml(ROOT / "examples/asr/quartznet_5x5.yaml",
                               ["nodes.spec_augment.params.rect_masks=0"])
    torch.manual_seed(0)
    model = ng.GraphModel(graph).cuda().train()
    nodes = model.nodes
    batch, seconds = 32, 10
    audio = torch.randn(batch, 16000 * seconds, device="cuda")
    lengths = torch.full((batch,), 16000 * seconds, device="cuda")
    targets = torch.randint(0, 28, (batch, 150), device="cuda")
    target_lengths = torch.full((batch,), 150, device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def by_graph() -> None:
        out = model(audio_signal=audio, audio_length=lengths, transcripts=targets,
                    transcript_length=target_lengths)
        out["ctc.loss"].backward()

    def by_hand() -> None:
        spec, spec_len = nodes["preprocessor"](input_signal=audio, length=lengths)
        spec = nodes["spec_augment"](input_spec=spec, length=spec_len)
        enc, enc_len = nodes["encoder"](audio_signal=spec, length=spec_len)
        logprobs = nodes["decoder"](encoder_output=enc)
        loss = nodes["ctc"](log_probs=logprobs, targets=targets, input_lengths=enc_len,
                            target_lengths=target_lengths)
        loss.backward()

    def timed(fn: object) -> float:
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                fn()  # type: ignore[operator]
            opt.step()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    for _ in range(3):
        timed(by_graph), timed(by_hand)
    ratios, graph_t, hand_t = [], [], []
    for i in range(rounds):
        order = (by_graph, by_hand) if i % 2 == 0 else (by_hand, by_graph)
        times = {fn.__name__: timed(fn) for fn in order}
        graph_t.append(times["by_graph"])
        hand_t.append(times["by_hand"])
        ratios.append(times["by_graph"] / times["by_hand"])
    return {"batch": f"{batch} x {seconds} s, bf16 autocast", "graph_ms": round(
        1000 * statistics.median(graph_t), 2), "hand_ms": round(1000 * statistics.median(hand_t),
                                                                  2),
        "ratio_median": round(statistics.median(ratios), 4),
        "ratio_min_max": [round(min(ratios), 4), round(max(ratios), 4)]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="gpu_results.json")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    work = Path(args.out).resolve().parent
    results: dict[str, object] = {"device": torch.cuda.get_device_name(),
                                  "torch": torch.__version__}
    results["features_dtype_under_autocast"] = features_fp32()
    print(json.dumps(results), flush=True)
    results["overhead_quartznet5x5"] = overhead(args.rounds, args.steps)
    print(json.dumps(results["overhead_quartznet5x5"]), flush=True)
    results["train_digits_small"] = train_runs(work)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
