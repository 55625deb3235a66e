"""Ahead-of-time compiles of the Triton kernels for a GPU this machine need not have, and
what they use of it: registers, stack and local memory (a spill shows as stack or local
memory). Triton's wheel ships ptxas and cuobjdump, so this runs on a CPU-only machine:

    python -m prizenet.kernels.triton.aot            # sm_90 (H100/H200), 200 factors

Kernels compiled in interpreter mode (``TRITON_INTERPRET=1``) cannot be compiled: run this
in a process without it.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tempfile

POINTERS = {  # argument -> Triton pointer type, as the trainer launches them on CUDA
    "user": "*i32", "item": "*i32", "day": "*i32", "rating": "*fp32", "row": "*i64", "dev": "*fp32",
    "bounds": "*i64", "order": "*i64", "sse": "*fp32", "nu_indptr": "*i64", "nu_items": "*i32",
    "rated_indptr": "*i64", "rated_keys": "*i64", "nu_keys": "*i64", "neighbours": "*i64",
}
INTS = {"K", "KN", "n_items", "n_days", "n_bins"}

#: (module, constexpr variants) of every kernel the trainer launches.
KERNELS = {
    "svd": [{"BIASED": True}, {"BIASED": False}],
    "svdpp": [{}],
    "timesvdpp": [{"PER_DAY": False}, {"PER_DAY": True}],
    "integrated": [{}],
}


def signature(fn, constexprs: dict) -> dict:
    """Each argument's type: the index and output arrays as :data:`POINTERS` says, ints in
    :data:`INTS`, learning rates and L2 weights as floats, the model's tables as fp32 arrays."""
    def kind(name):
        if name in constexprs:
            return "constexpr"
        if name in POINTERS:
            return POINTERS[name]
        if name in INTS:
            return "i32"
        return "fp32" if name.startswith(("lr_", "reg_")) else "*fp32"
    return {name: kind(name) for name in fn.arg_names}


def resources(cubin: bytes) -> dict:
    """REG, STACK, LOCAL, SHARED of the one function in ``cubin`` (cuobjdump's report)."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in re.findall(r"\b(REG|STACK|LOCAL|SHARED):(\d+)", out)}


def compile_all(capability: int = 90, n_factors: int = 200, warp_size: int = 32) -> dict:
    """{"svd[BIASED=True]": {"REG": ..., "STACK": ..., "LOCAL": ..., "SHARED": ...}, ...}"""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from .. import interpreting
    from . import block_k
    from .integrated import BLOCK_T
    from .svdpp import BLOCK_J

    if interpreting():
        raise RuntimeError("TRITON_INTERPRET is set: interpreted kernels cannot be compiled; unset it")
    target = GPUTarget("cuda", capability, warp_size)
    report = {}
    for name, variants in KERNELS.items():
        fn = importlib.import_module(f"{__package__}.{name}").sgd_kernel
        for extra in variants:
            const = {"BLOCK_K": block_k(n_factors), **extra}
            if "BLOCK_J" in fn.arg_names:
                const["BLOCK_J"] = BLOCK_J
            if "BLOCK_T" in fn.arg_names:
                const["BLOCK_T"] = BLOCK_T
            kernel = triton.compile(ASTSource(fn, signature(fn, const), const), target=target,
                                    options={"num_warps": 1})
            tag = ",".join(f"{k}={v}" for k, v in extra.items())
            report[f"{name}[{tag}]" if tag else name] = resources(kernel.asm["cubin"])
    return report


if __name__ == "__main__":
    cap = int(sys.argv[1]) if len(sys.argv) > 1 else 90
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    print(json.dumps(compile_all(cap, k), indent=1))
