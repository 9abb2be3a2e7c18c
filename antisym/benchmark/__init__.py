"""Speed measurements of the training iteration (scripts/bench.py; the GPU check's speed sections reuse them):

    timing  iteration timing at the paper's shapes (eager, CUDA-graph eager, fused per precision, LSTM), threads,
            processes sharing a device, runs trained as one pack, launch settings
    report  the markdown + JSON report every measurement writes, with the commit, device, date and wall time

Importing this package imports neither triton nor the kernels, nor Hydra.
"""
