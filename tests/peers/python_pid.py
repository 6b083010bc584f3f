"""Python `pid` as a peer for the interoperability tests.

    python_pid.py hold DIR NAME   prints "locked PID", holds until stdin closes
    python_pid.py try DIR NAME    prints "ok" (and releases) or "refused ERROR PID"
"""
import sys

import pid


def main():
    mode, piddir, name = sys.argv[1:4]
    pidfile = pid.PidFile(pidname=name, piddir=piddir)
    try:
        pidfile.create()
    except pid.PidFileError as error:
        print("refused %s %s" % (type(error).__name__, getattr(error, "pid", None) or "-"), flush=True)
        return 1
    if mode == "hold":
        print("locked %d" % pidfile.pid, flush=True)
        sys.stdin.read()
    else:
        print("ok", flush=True)
    pidfile.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
