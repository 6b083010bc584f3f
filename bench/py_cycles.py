"""py_cycles.py PATH COUNT: COUNT take-and-release cycles with Python `pid`
3.0.4 at PATH (its defaults otherwise), then the mean nanoseconds of one."""
import os
import sys
import time

import pid


def main():
    path, count = sys.argv[1], int(sys.argv[2])
    piddir, pidname = os.path.split(path)
    started = time.perf_counter_ns()
    for _ in range(count):
        with pid.PidFile(pidname=pidname, piddir=piddir, enforce_dotpid_postfix=False):
            pass
    print((time.perf_counter_ns() - started) // max(count, 1))


if __name__ == "__main__":
    main()
