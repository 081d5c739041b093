"""NeMo side of ``typecheck.py``: NeMo's ``@typecheck()`` on the same tiny modules (NeMo's venv).

Runs under NeMo's own Python; depends on torch and NeMo only. Protocol: prints ``{"ready": ...}``,
then for every ``round`` line on stdin prints one JSON object ``{variant: seconds per call}``;
``quit`` exits. The variants match ``typecheck.py``'s module rows: an identity and a tiny Linear
forward, undecorated (``plain``), decorated with checks off (``off``) and on (``on``); times
are the thread's CPU seconds per call; torch threads from ``NG_BENCH_THREADS`` (default 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any


def main() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything NeMo prints goes to stderr, the protocol owns the real stdout
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    import torch
    from torch import nn

    torch.set_num_threads(int(os.environ.get("NG_BENCH_THREADS", "1")))
    with contextlib.redirect_stdout(sys.stderr):
        import nemo
        from nemo.core.classes import NeuralModule, typecheck
        from nemo.core.neural_types import AxisKind, AxisType, ChannelType, NeuralType

    def types(width: int) -> dict[str, Any]:
        return {"x": NeuralType((AxisType(AxisKind.Batch), AxisType(AxisKind.Dimension, width)),
                               ChannelType())}

    class Ident(NeuralModule):
        @property
        def input_types(self) -> dict[str, Any]:
            return types(16)

        @property
        def output_types(self) -> dict[str, Any]:
            return types(16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    class IdentChecked(Ident):
        @typecheck()
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    class Lin(Ident):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(16, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x)

    class LinChecked(Lin):
        @typecheck()
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x)

    x = torch.randn(8, 16)
    lin, lin_checked = Lin(), LinChecked()
    lin_checked.linear = lin.linear  # the same weights in both
    cases = {"identity.forward": (Ident(), IdentChecked(), "forward", calls),
             "identity.__call__": (Ident(), IdentChecked(), "call", calls),
             "linear.__call__": (lin, lin_checked, "call", max(1, calls // 4))}

    def timed(module: nn.Module, how: str, n: int, enabled: bool) -> float:
        typecheck.set_typecheck_enabled(enabled)
        fn = module.forward if how == "forward" else module
        with torch.no_grad():
            t0 = time.thread_time()
            for _ in range(n):
                fn(x=x)
            dt = time.thread_time() - t0
        typecheck.set_typecheck_enabled(True)
        return dt / n

    out.write(json.dumps({"ready": True, "nemo": nemo.__version__,
                          "torch": torch.__version__}) + "\n")
    variants = {
        f"{case}:{v}": (plain if v == "plain" else checked, how,
                        max(1, n // 10) if v == "on" else n, v != "off")
        for case, (plain, checked, how, n) in cases.items() for v in ("plain", "off", "on")
    }
    names = list(variants)
    for r, line in enumerate(sys.stdin):
        if line.strip() == "quit":
            break
        result = {}
        k = r % len(names)
        for name in [*names[k:], *names[:k]]:  # rotated each round, as in typecheck.py
            result[name] = timed(*variants[name])
        out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
