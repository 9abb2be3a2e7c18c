"""The paper-length campaign and the tooling for lent machines, beside the antisym library (which never imports it).

Every GPU lease, and the CPU lane, advances the reproduction resumably, in one prepared command:

    plan         conf/campaign/<plan>.yaml expanded into ordered runs, each with its record directory
    kernel_gate  the fused kernels against eager once per kernel version (stored as a record)
    lease        one lease or lane: parity, the next unfinished runs under a wall-clock budget, the changed records
    records      changed records archived into a few files; extracted, checked and put in place on collect
    progress     per block, runs completed and iterations done; the lease's progress report
    device       the one device command and its carry list, checked against the device's limits
    rehearse     that command run here first, on a scratch copy of what travels, and its archives collected
    limits       what the device takes and returns
    gpu_check    the GPU check of the fused kernels (python -m campaign.gpu_check)
    devdata      data sets split into parts a device call can carry (standard library only)

`python -m campaign {status,next,run,lane,collect,command,rehearse}`; see __main__.py. Which runs are in what state,
how a preset composes into a run and how runs group into packs is the library's (antisym.training.runs).
"""
