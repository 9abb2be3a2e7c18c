"""The paper-length campaign: every GPU lease advances the reproduction, resumably, in one prepared command.

    plan         conf/campaign/<plan>.yaml expanded into ordered runs, each with its record directory and state
    kernel_gate  the fused kernels against eager once per kernel version (stored as a record)
    lease        one lease: parity, then the next unfinished runs under a wall-clock budget, then the packing
    records      pack changed records into a few archives; unpack, check and replace them on collect
    progress     per block, runs completed and iterations done; the lease's progress report
    device       the one device command and its carry list, checked against the device's limits

`python -m campaign {status,next,run,collect,command}`; see __main__.py.
"""
