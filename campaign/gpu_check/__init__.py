"""The GPU check of the fused kernels (`python -m campaign.gpu_check`), one job per module; torch (and triton for
the fused rows) only, no Hydra:

    parity           fused vs fp32 eager, both against a float64 eager reference; pass/fail under fixed tolerances
    training_curves  short real permuted-MNIST training curves, eager vs fused, same init and batches
    verdict          the speed targets, the choice of the default fused precision and the pack_size to use
    curve_floor      how far fp32 rounding alone moves a short curve (the floor under the verdict's curve test)

The timing itself (antisym.benchmark.timing) and the report writer (antisym.benchmark.report) are the library's, shared
with scripts/bench.py. Importing this package imports neither triton nor the kernels; set TRITON_INTERPRET=1 before
the first kernel use to run them on a CPU with Triton's interpreter.
"""
