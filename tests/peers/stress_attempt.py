"""One pidfile-stress attempt made with Python `pid`: take stress.pid in DIR,
log entry and exit to DIR/log, release, and exit 0 (held), 1 (refused) or
2 (another error).

    stress_attempt.py DIR HOLD_US
"""
import os
import sys
import time

import pid


def attempt(piddir, hold_us):
    """One attempt; returns the exit code."""
    pidfile = pid.PidFile(pidname="stress", piddir=piddir, register_term_signal_handler=False)
    try:
        pidfile.create()
    except (pid.PidFileAlreadyLockedError, pid.PidFileAlreadyRunningError):
        return 1
    except Exception as error:  # noqa: BLE001 - counted as an error by the caller
        print(error, file=sys.stderr)
        return 2
    log = os.open(os.path.join(piddir, "log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    me = b"%d.%d" % (os.getpid(), time.time_ns())  # pids wrap around in a long run
    os.write(log, b"+%s\n" % me)
    if hold_us:
        time.sleep(hold_us / 1e6)
    os.write(log, b"-%s\n" % me)
    pidfile.close()
    return 0


if __name__ == "__main__":
    sys.exit(attempt(sys.argv[1], int(sys.argv[2])))
