"""Driver of the ASR training-step benchmark: neuralgraph (graph, plain) vs NeMo, interleaved.

Starts each worker as a persistent subprocess, warms it up, then runs ``--rounds`` rounds; in each
round every worker runs ``--steps`` training steps, in a round-robin order rotated each round
(A B C, B C A, C A B, ...), so that slow phases of a shared machine hit all workers alike. Then the
same for the preprocessor alone. Prints a table (median, IQR per worker; per-round ratios) and
optionally writes everything as JSON.

Before anything is timed, every worker loads ONE set of initial weights (the first worker's,
saved under NeMo's names) and the run checks that the workers compute the same thing: one
untimed forward + backward pass in training mode with dither 0 and no spectrogram augmentation,
each worker's loss and gradients against the first worker's (``equivalence`` in the JSON;
``--check-equivalence`` does only that, ``--no-check`` skips it). Timing then starts from those
same weights.

    python benchmarks/asr_step/run.py --rounds 5 --steps 3 --json asr_step.json
    python benchmarks/asr_step/run.py --check-equivalence --json check.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

WORKERS = ("graph", "plain", "nemo")
# NeMo's venv: $NEMO_PYTHON, else the repository's git-ignored .nemo-venv (README.md builds it).
REPO_NEMO_PYTHON = HERE.parent.parent / ".nemo-venv" / "bin" / "python"
DEFAULT_NEMO_PYTHON = os.environ.get("NEMO_PYTHON") or str(REPO_NEMO_PYTHON)


class Worker:
    """One worker subprocess speaking the line protocol of ``common.py``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1
        )
        self.hello: dict[str, Any] = {}

    def read(self) -> dict[str, Any]:
        """The worker's next JSON line; raises if it died or reported an error."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise RuntimeError(f"worker {self.name} exited with {code} ({' '.join(self.argv)})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"worker {self.name}: {reply['error']}")
        return reply

    def ask(self, command: str) -> dict[str, Any]:
        """Sends one command, returns the reply."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        """Asks the worker to quit and waits for it."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def worker_argv(name: str, args: argparse.Namespace) -> list[str]:
    """The command line that starts worker ``name``."""
    if name == "nemo":
        return [args.nemo_python, str(HERE / "nemo_worker.py")]
    if name == "plain":
        return [args.python, str(HERE / "plain_worker.py")]
    return [args.python, str(HERE / "graph_worker.py"), args.graph, *args.graph_override]


def worker_env(args: argparse.Namespace, spec: common.BatchSpec) -> dict[str, str]:
    """Environment of every worker: thread counts and the batch spec."""
    env = dict(os.environ)
    threads = str(args.threads)
    env.update(
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        ASR_STEP_THREADS=threads,
        ASR_STEP_BATCH=json.dumps(dataclasses.asdict(spec)),
    )
    env["ASR_STEP_SPEC_AUGMENT"] = "1" if args.spec_augment else "0"
    env["ASR_STEP_FRAMING"] = getattr(args, "framing", "nemo")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def source() -> dict[str, Any]:
    """The commit the run's scripts come from and the uncommitted changes under benchmarks/ and
    plugins/ (the code that runs), so that a results file names what produced it."""
    root = HERE.parent.parent

    def git(*argv: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(root), *argv], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "benchmarks/asr_step", "plugins", "neuralgraph")
    return {"commit": git("rev-parse", "HEAD").strip(),
            "uncommitted": [line[3:] for line in changed.splitlines()][:20]}


def machine() -> dict[str, Any]:
    """CPU model, core count, load and Python of the machine the run is on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": model or platform.processor(),
        "cpu_count": os.cpu_count(),
        "usable_cores": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def quartiles(xs: list[float]) -> dict[str, float]:
    """Median, first and third quartile, IQR, min and count of ``xs``."""
    if len(xs) < 2:
        x = xs[0] if xs else float("nan")
        return {"median": x, "q1": x, "q3": x, "iqr": 0.0, "min": x, "n": len(xs)}
    q1, med, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return {"median": med, "q1": q1, "q3": q3, "iqr": q3 - q1, "min": min(xs), "n": len(xs)}


def run_phase(workers: list[Worker], command: str, rounds: int, k: int) -> dict[str, Any]:
    """``rounds`` rounds of ``command k`` on every worker, order rotated each round.

    Returns ``wall`` and ``cpu``: per worker, one list of per-call seconds per round; ``orders``:
    the order of each round; ``losses``: per worker the last loss of each round (steps only).
    """
    wall: dict[str, list[list[float]]] = {w.name: [] for w in workers}
    cpu: dict[str, list[list[float]]] = {w.name: [] for w in workers}
    orders: list[list[str]] = []
    losses: dict[str, list[float | None]] = {w.name: [] for w in workers}
    for r in range(rounds):
        shift = r % len(workers)
        order = workers[shift:] + workers[:shift]
        orders.append([w.name for w in order])
        for w in order:
            reply = w.ask(f"{command} {k}")
            wall[w.name].append(reply["times"])
            cpu[w.name].append(reply["cpu_times"])
            losses[w.name].append(reply.get("loss"))
        print(
            f"  {command} round {r + 1}/{rounds}: "
            + "  ".join(f"{n}={statistics.median(wall[n][-1]):.3f}s" for n in wall),
            flush=True,
        )
    return {"wall": wall, "cpu": cpu, "orders": orders, "losses": losses}


def grad_group(name: str) -> str:
    """The block a parameter belongs to: ``encoder.encoder.3`` or ``decoder``."""
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[0] == "encoder" else parts[0]


def compare_grads(ours: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Gradients of one worker against reference gradients (shared names).

    ``max_tensor_rel_l2``: over parameter tensors, the largest ||g - g_ref|| / ||g_ref||, and
    the tensor; ``global_rel_l2``: the same over all parameters at once; ``cosine`` of the two
    flattened gradients; ``max_elem_rel``: over tensors, max |g - g_ref| / max |g_ref|;
    ``by_block``: ||g - g_ref|| / ||g_ref|| per encoder block and for the decoder (input side
    first).
    """
    missing = sorted(set(reference) ^ set(ours))
    if missing:
        return {"error": f"different parameter names: {missing[:5]}"}
    worst, worst_name, worst_elem = 0.0, "", 0.0
    sums: dict[str, list[float]] = {}  # group -> [diff², ref²]
    dot = ours_sq = 0.0
    for name, ref in reference.items():
        r = ref.double()
        g = ours[name].double().reshape(r.shape)
        d = g - r
        d_sq, r_sq = float((d * d).sum()), float((r * r).sum())
        rel = (d_sq / r_sq) ** 0.5 if r_sq > 0 else d_sq**0.5
        if rel > worst:
            worst, worst_name = rel, name
        scale = float(r.abs().max()) if r.numel() else 0.0
        if scale > 0:
            worst_elem = max(worst_elem, float(d.abs().max()) / scale)
        acc = sums.setdefault(grad_group(name), [0.0, 0.0])
        acc[0] += d_sq
        acc[1] += r_sq
        dot += float((g * r).sum())
        ours_sq += float((g * g).sum())
    diff_sq = sum(a[0] for a in sums.values())
    ref_sq = sum(a[1] for a in sums.values())
    return {
        "tensors": len(reference),
        "max_tensor_rel_l2": worst,
        "max_tensor_rel_l2_name": worst_name,
        "global_rel_l2": (diff_sq / ref_sq) ** 0.5 if ref_sq > 0 else diff_sq**0.5,
        "cosine": dot / (ref_sq * ours_sq) ** 0.5 if ref_sq > 0 and ours_sq > 0 else None,
        "max_elem_rel": worst_elem,
        "grad_norm": ours_sq**0.5,
        "reference_grad_norm": ref_sq**0.5,
        "by_block": {k: (a[0] / a[1]) ** 0.5 if a[1] > 0 else a[0] ** 0.5
                     for k, a in sums.items()},
    }


def check_equivalence(workers: list[Worker]) -> dict[str, Any]:
    """One set of initial weights for every worker, then one untimed training-mode pass each
    (dither 0, no spectrogram augmentation): losses and gradients against the first worker.

    The first worker (``graph`` when it runs) writes its freshly initialized weights under
    NeMo's names; every worker loads them (NeMo's mel filterbank and window included:
    ``replaced_max_abs`` says how far the loaded ones are from those NeMo computed); each runs
    ``check``. When the plain worker runs, it also computes the gradients with the encoder,
    decoder and loss in float64 (``fp64``): every worker's float32 gradients are compared with
    those too (``grads_vs_fp64``), which is how far float32 rounding alone takes them. The
    workers reload the same weights afterwards, so timing starts from them too.
    """
    import torch

    reference = workers[0]
    result: dict[str, Any] = {"reference": reference.name, "workers": {}}
    with tempfile.TemporaryDirectory(prefix="asr_step_check_") as tmp:
        init = str(Path(tmp) / "init.pt")
        result["init_tensors"] = reference.ask(f"save_init {init}")["saved"]
        for w in workers:
            result["workers"][w.name] = {"load": w.ask(f"load_init {init}")}
        grads: dict[str, Any] = {}
        for w in workers:
            path = str(Path(tmp) / f"grads_{w.name}.pt")
            reply = w.ask(f"check {path}")
            result["workers"][w.name].update(
                loss=reply["loss"], encoded_lengths=reply["encoded_lengths"]
            )
            grads[w.name] = torch.load(path, map_location="cpu", weights_only=True)
        fp64 = None
        plain = next((w for w in workers if w.name == "plain"), None)
        if plain is not None:
            path = str(Path(tmp) / "grads_fp64.pt")
            reply = plain.ask(f"check_fp64 {path}")
            result["fp64"] = {"loss": reply["loss"], "encoded_lengths": reply["encoded_lengths"]}
            fp64 = torch.load(path, map_location="cpu", weights_only=True)
        ref_loss = result["workers"][reference.name]["loss"]
        for w in workers:
            entry = result["workers"][w.name]
            entry["loss_rel_diff"] = abs(entry["loss"] - ref_loss) / max(abs(ref_loss), 1e-30)
            entry["grads"] = compare_grads(grads[w.name], grads[reference.name])
            if fp64 is not None:
                entry["loss_rel_diff_vs_fp64"] = abs(entry["loss"] - result["fp64"]["loss"]) / max(
                    abs(result["fp64"]["loss"]), 1e-30
                )
                entry["grads_vs_fp64"] = compare_grads(grads[w.name], fp64)
        for w in workers:  # timing starts from the shared weights, BN statistics included
            w.ask(f"load_init {init}")
    return result


def _grad_line(g: dict[str, Any]) -> str:
    if "error" in g:
        return str(g["error"])
    return (f"max tensor rel L2 {g['max_tensor_rel_l2']:.2e} ({g['max_tensor_rel_l2_name']}), "
            f"global {g['global_rel_l2']:.2e}, cosine {g['cosine']:.9f}")


def print_equivalence(eq: dict[str, Any]) -> None:
    """Per worker: loss, its difference, gradient differences (vs the reference worker and vs
    float64), encoded lengths."""
    print(f"equivalence (one shared init, {eq['init_tensors']} tensors; training mode, dither 0, "
          f"no spec augmentation; reference {eq['reference']}):")
    if "fp64" in eq:
        print(f"  fp64   loss {eq['fp64']['loss']:.9g} (plain's modules, encoder to loss in "
              "float64)")
    for name, e in eq["workers"].items():
        lengths = sorted(set(e["encoded_lengths"]))
        print(f"  {name:<6} loss {e['loss']:.9g} (rel diff {e['loss_rel_diff']:.2e}); encoded "
              f"lengths {lengths}")
        if name != eq["reference"]:
            print(f"         grads vs {eq['reference']}: {_grad_line(e['grads'])}")
        if "grads_vs_fp64" in e:
            print(f"         grads vs fp64: {_grad_line(e['grads_vs_fp64'])}")


def summarize(per_round: dict[str, list[list[float]]]) -> dict[str, Any]:
    """Median/IQR per worker over all calls; ratios of per-round medians, summarized.

    ``per_round``: per worker, one list of per-call seconds per round (all workers the same
    number of rounds). A pair ``a/b`` below 1 means ``a`` is faster.
    """
    stats = {n: quartiles([t for rnd in rounds for t in rnd]) for n, rounds in per_round.items()}
    ratios: dict[str, dict[str, Any]] = {}
    names = [n for n in WORKERS if n in per_round]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rs = [
                statistics.median(x) / statistics.median(y)
                for x, y in zip(per_round[a], per_round[b], strict=True)
            ]
            ratios[f"{a}/{b}"] = {**quartiles(rs), "max": max(rs), "per_round": rs}
    return {"workers": stats, "ratios": ratios}


def table(title: str, phase: dict[str, Any], hello: dict[str, dict[str, Any]]) -> str:
    """A plain-text results table of one phase (wall times; process CPU medians beside)."""
    wall, cpu = phase["wall"], phase["cpu"]
    lines = [
        title,
        f"  {'worker':<8}{'median s':>10}{'IQR s':>9}{'min s':>9}{'n':>5}{'CPU s':>9}"
        f"{'params':>11}",
    ]
    for name, s in wall["workers"].items():
        lines.append(
            f"  {name:<8}{s['median']:>10.4f}{s['iqr']:>9.4f}{s['min']:>9.4f}{s['n']:>5}"
            f"{cpu['workers'][name]['median']:>9.4f}{hello[name]['params']:>11,}"
        )
    for pair, r in wall["ratios"].items():
        lines.append(
            f"  ratio {pair:<12} median of per-round ratios {r['median']:.3f} "
            f"(IQR {r['q1']:.3f}-{r['q3']:.3f}, range {r['min']:.3f}-{r['max']:.3f}; "
            f"CPU-time ratio {cpu['ratios'][pair]['median']:.3f})"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--steps", type=int, default=3, help="training steps per worker per round")
    p.add_argument(
        "--preproc-steps",
        type=int,
        default=10,
        help="preprocessor passes per worker per round (0 skips that phase)",
    )
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per worker first")
    p.add_argument(
        "--which",
        default=",".join(WORKERS),
        help="comma-separated subset of graph,plain,nemo (default all)",
    )
    p.add_argument("--json", type=Path, help="write the full results here")
    p.add_argument(
        "--nemo-python",
        default=DEFAULT_NEMO_PYTHON,
        help="python of NeMo's venv (default: $NEMO_PYTHON, else the repository's "
        ".nemo-venv/bin/python)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="python of neuralgraph's venv for graph/plain (default: this one)",
    )
    p.add_argument("--graph", default=str(HERE.parent.parent / "examples/asr/quartznet_5x5.yaml"))
    p.add_argument(
        "--graph-override",
        action="append",
        default=[],
        help="override passed to Graph.from_yaml (repeatable)",
    )
    p.add_argument(
        "--spec-augment",
        action="store_true",
        help="add SpecCutout (rect 5 x 120 x 50) after the preprocessor in every worker "
        "(default: none; the graph's spec-augment node is made an identity)",
    )
    p.add_argument(
        "--framing",
        choices=("nemo", "native"),
        default="nemo",
        help="neuralgraph's preprocessor framing in the graph and plain workers: nemo (default; "
        "stft_pad_mode constant, drop_last_frame true: NeMo 3.0's frame counts) or native "
        "(neuralgraph's defaults: one frame more, reflected edges)",
    )
    p.add_argument(
        "--check-equivalence",
        action="store_true",
        help="only the equivalence check (shared init, one untimed pass per worker): no timing",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="skip the equivalence check (each worker keeps its own seeded initialization)",
    )
    p.add_argument("--threads", type=int, default=common.THREADS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument(
        "--lengths",
        choices=("full", "varied"),
        default="full",
        help="full: every utterance --seconds long; varied: 8 s to --seconds",
    )
    args = p.parse_args(argv)
    args.which = [w.strip() for w in args.which.split(",") if w.strip()]
    unknown = set(args.which) - set(WORKERS)
    if unknown or not args.which:
        p.error(f"--which takes names from {','.join(WORKERS)}; got {sorted(unknown)}")
    if args.rounds < 1 or args.steps < 1:
        p.error("--rounds and --steps must be >= 1")
    if args.check_equivalence and args.no_check:
        p.error("--check-equivalence and --no-check exclude each other")
    if "nemo" in args.which and not Path(args.nemo_python).exists():
        p.error(
            f"NeMo's python {args.nemo_python} does not exist: build the venv (README.md), pass "
            "--nemo-python PATH/bin/python or set NEMO_PYTHON, or leave nemo out of --which"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns the exit code."""
    args = parse_args(argv)
    spec = common.BatchSpec(
        batch=args.batch,
        seconds=args.seconds,
        lengths=args.lengths,
        min_seconds=min(8.0, args.seconds),
    )
    env = worker_env(args, spec)
    workers: list[Worker] = []
    result: dict[str, Any] = {
        "source": source(),
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "batch": dataclasses.asdict(spec),
    }
    try:
        t0 = time.perf_counter()
        for name in [n for n in WORKERS if n in args.which]:  # all import in parallel
            workers.append(Worker(name, worker_argv(name, args), env))
        for w in workers:
            w.hello = w.read()
            print(f"{w.name} ready at {time.perf_counter() - t0:.1f}s: {json.dumps(w.hello)}")
        hello = {w.name: w.hello for w in workers}
        result["workers"] = hello
        phases: dict[str, Any] = {}
        if not args.no_check:
            result["equivalence"] = check_equivalence(workers)
            print_equivalence(result["equivalence"])
        if not args.check_equivalence:
            for w in workers:
                w.ask(f"step {args.warmup}")
                if args.preproc_steps:
                    w.ask(f"preproc {args.warmup}")
            phases["step"] = run_phase(workers, "step", args.rounds, args.steps)
            if args.preproc_steps:
                phases["preproc"] = run_phase(workers, "preproc", args.rounds, args.preproc_steps)
    finally:
        for w in workers:
            w.close()
    result["machine"]["loadavg_end"] = os.getloadavg()
    if args.check_equivalence:
        m = result["machine"]
        print(f"\nmachine: {m['cpu']}, load {m['loadavg_start'][0]:.2f} -> "
              f"{m['loadavg_end'][0]:.2f}; framing {args.framing}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
            print(f"wrote {args.json}")
        return 0
    result["phases"] = phases
    result["summary"] = {
        k: {"wall": summarize(v["wall"]), "cpu": summarize(v["cpu"])} for k, v in phases.items()
    }
    m = result["machine"]
    print(
        f"\nmachine: {m['cpu']}, {m['usable_cores']} usable cores, threads/worker "
        f"{args.threads}, load {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}"
    )
    for w in workers:
        print(f"  {w.name}: {w.hello['versions']}")
    print(
        f"batch: {spec.batch} x {spec.seconds:g} s ({spec.lengths}), "
        f"{args.rounds} rounds x {args.steps} steps"
    )
    print(table("training step (s)", result["summary"]["step"], hello))
    if "preproc" in result["summary"]:
        print(table("preprocessor forward (s)", result["summary"]["preproc"], hello))
    losses = phases["step"]["losses"]
    if "graph" in losses and "plain" in losses:
        agree = max(
            abs(a - b) / max(abs(b), 1e-12)
            for a, b in zip(losses["graph"], losses["plain"], strict=True)
        )
        result["graph_plain_loss_rel_diff"] = agree
        print(
            f"graph vs plain: same initial weights, same modules -> loss after each round "
            f"differs by at most {agree:.2e} (relative)"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
