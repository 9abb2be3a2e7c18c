"""What the lent device takes and returns (../.library/device/README.md), in one place; standard library only, so
campaign.devdata can read it on the device before anything is installed."""

MIB = 1 << 20
CARRY_BYTES = 64 * MIB  # working tree + carried paths, per call
MAX_CARRY = 8  # carried paths per call
MAX_COMMAND = 2000  # characters of the device command
CALL_S = 600  # the longest one command may run
FILES_BACK = 8  # files returned from $OUT per call
FILE_BACK_BYTES = 16 * MIB  # the largest file returned
