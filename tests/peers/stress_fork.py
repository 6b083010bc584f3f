"""pidfile-stress --mode fresh --contender python-fork: one long-lived Python
process forks a child per attempt, as a pre-forking server or a cron wrapper
does; each child makes one attempt with Python `pid` (stress_attempt.py) and
exits. Prints the tally as the Rust worker does.

    stress_fork.py DIR CYCLES HOLD_US
"""
import os
import sys
import traceback

from stress_attempt import attempt

HELD, REFUSED = 0, 1


def main():
    piddir, cycles, hold_us = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    refused = errors = 0
    for _ in range(cycles):
        child = os.fork()
        if child == 0:
            code = 2
            try:
                code = attempt(piddir, hold_us)
            except BaseException:  # noqa: BLE001 - counted as an error by the parent
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == REFUSED:
            refused += 1
        elif code != HELD:
            errors += 1
    print("refused=%d errors=%d killed=0" % (refused, errors))


if __name__ == "__main__":
    main()
