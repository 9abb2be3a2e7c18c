"""The GPU check of the fused kernels, one job per module; torch (and triton for the fused rows) only, no Hydra:

    parity     fused vs fp32 eager, both against a float64 eager reference; pass/fail under fixed tolerances
    benchmark  training-iteration timing, torch.profiler breakdown, processes sharing one GPU, runs trained as one
               pack (run-iterations/s per pack size), launch settings
    curves     short real permuted-MNIST training curves, eager vs fused, same init and batches
    verdict    the speed targets, the choice of the default fused precision and the pack_size to use
    report     the markdown + JSON report, rewritten after every section

scripts/gpu_check.py runs the sections in order under a time budget; scripts/bench.py is the benchmark's own CLI.
Importing this package imports neither triton nor the kernels; set TRITON_INTERPRET=1 before the first kernel use
to run them on a CPU with Triton's interpreter.
"""

# The precision the fused path uses unless told otherwise: keep equal to the model.precision default
# (conf/model/asym.yaml, antisym/models).
DEFAULT_PRECISION = "ieee"
