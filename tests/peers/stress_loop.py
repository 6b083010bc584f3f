"""pidfile-stress --mode loop with Python `pid`: take and release stress.pid
in DIR CYCLES times, retrying refusals, logging each hold to DIR/log, then
print the tally as the Rust worker does.

    stress_loop.py DIR CYCLES HOLD_US
"""
import os
import sys
import time

import pid


def main():
    piddir, cycles, hold_us = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    log = os.open(os.path.join(piddir, "log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    me = b"%d" % os.getpid()
    refused = errors = 0
    for _ in range(cycles):
        while True:
            pidfile = pid.PidFile(pidname="stress", piddir=piddir, register_term_signal_handler=False)
            try:
                pidfile.create()
                break
            except (pid.PidFileAlreadyLockedError, pid.PidFileAlreadyRunningError):
                refused += 1
            except Exception as error:  # noqa: BLE001 - counted as an error
                errors += 1
                if errors <= 3:
                    print(error, file=sys.stderr)
            os.sched_yield()
        os.write(log, b"+%s\n" % me)
        if hold_us:
            time.sleep(hold_us / 1e6)
        os.write(log, b"-%s\n" % me)
        pidfile.close()
    print("refused=%d errors=%d killed=0" % (refused, errors))


if __name__ == "__main__":
    main()
