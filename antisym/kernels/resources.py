"""What the fused kernels ask of a GPU, read from Triton's compiler on any machine, no GPU needed.

Triton compiles for a named architecture without a device (the PTX assembler ships in its wheel), so the shared
memory a launch needs, and the registers and spills per thread, can be checked on a CPU before scarce GPU time is
spent: whether A can stay resident on an H100 or A100, and whether a change spills in the step loop. It cannot tell
speed; `scripts/bench.py` measures that on a GPU.

The kernels must have been built without TRITON_INTERPRET (the interpreter compiles nothing).
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import asdict, dataclass

import torch

# Largest shared memory one block may opt in to, by compute capability (CUDA C Programming Guide, "Features and
# Technical Specifications"): A100 163 KB, consumer Ampere/Ada 99 KB, H100/H200 227 KB.
SHARED_PER_BLOCK = {80: 163 * 1024, 86: 99 * 1024, 89: 99 * 1024, 90: 227 * 1024}


@dataclass
class KernelResources:
    direction: str  # fwd | bwd
    n: int
    precision: str
    gated: bool
    resident: bool
    arch: int  # compute capability, e.g. 90
    num_warps: int
    shared_bytes: int
    registers: int  # per thread
    spill_store_bytes: int  # per thread
    spill_load_bytes: int
    fits: bool  # shared_bytes within SHARED_PER_BLOCK[arch]

    def as_dict(self) -> dict:
        return asdict(self)


def _specialise(value):
    """(signature type, attribute) as Triton's launcher derives them from a runtime argument (alignment and
    divisibility by 16 of pointers and ints; ints equal to 1 become constants)."""
    from triton.backends.compiler import BaseBackend
    from triton.runtime.jit import native_specialize_impl

    return native_specialize_impl(BaseBackend, value, False, True, True)


def compile_resources(
    direction: str,
    n: int,
    precision: str,
    gated: bool,
    resident: bool,
    arch: int = 90,
    *,
    batch: int = 128,
    steps: int = 784,
    **tuning,
) -> KernelResources:
    """Compile one kernel as a launch at (batch, steps, n) would, for compute capability `arch`, and report it."""
    import triton
    from triton import knobs
    from triton.backends.compiler import BaseBackend, GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import MockTensor

    from antisym.kernels import euler

    if euler.INTERPRETED:
        raise RuntimeError("the kernels were built for TRITON_INTERPRET=1; compile reports need them built without it")
    cfg = euler.resolve_tuning(n, tuning)
    options = euler.launch_options(n, gated, precision, cfg, resident)
    compile_opts = {key: options.pop(key) for key in ("num_warps", "num_stages") if key in options}
    kernel = euler.KERNELS[direction]
    k = 2 * n if gated else n
    scalars = {"B": batch, "T": steps, "N": n, "stride_ub": steps * k, "stride_ut": k, "stride_ur": batch * steps * k}
    signature, constexprs, attrs = {}, {}, {}
    for i, name in enumerate(kernel.arg_names):
        if name in options:
            signature[name], constexprs[(i,)] = "constexpr", options[name]
            continue
        is_a_bf16 = name == "a_ptr" and precision == "bf16"
        value = MockTensor(torch.bfloat16 if is_a_bf16 else torch.float32) if name.endswith("_ptr") else scalars[name]
        kind, attr = _specialise(value)
        signature[name] = kind
        if kind == "constexpr":
            constexprs[(i,)] = attr
        elif attr:
            attrs[(i,)] = BaseBackend.parse_attr(attr)
    src = ASTSource(kernel, signature, constexprs, attrs)
    log = io.StringIO()
    # Triton's own ptxas call prints registers and spills (-v) when asked to; a cached kernel would skip it.
    with knobs.nvidia.scope(), knobs.compilation.scope(), contextlib.redirect_stdout(log):
        knobs.nvidia.dump_ptxas_log = True
        knobs.compilation.always_compile = True
        compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=compile_opts)
    text = log.getvalue()
    regs = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if regs is None or spills is None:
        raise RuntimeError(f"could not read registers and spills from ptxas's log:\n{text}")
    shared = int(compiled.metadata.shared)
    return KernelResources(
        direction=direction,
        n=n,
        precision=precision,
        gated=gated,
        resident=resident,
        arch=arch,
        num_warps=compile_opts["num_warps"],
        shared_bytes=shared,
        registers=int(regs.group(1)),
        spill_store_bytes=int(spills.group(1)),
        spill_load_bytes=int(spills.group(2)),
        fits=shared <= SHARED_PER_BLOCK[arch],
    )
