"""Run one command and write its wall seconds, exit code and peak RSS as JSON.

    python bench/_launch.py REPORT.json STDOUT|- STDERR -- ARGV...

The runner measures through this small process rather than spawning the command itself: Linux
counts the spawning process's resident pages into a vfork/fork child's ``ru_maxrss``, so a child
of the runner (which holds DuckDB and the store's facts) would report the runner's memory as its
own. A child of this process starts from a few MB.
"""

import json
import os
import subprocess
import sys
import time


def main() -> None:
    """Entry point."""
    report, stdout, stderr, sep, *argv = sys.argv[1:]
    assert sep == "--" and argv, __doc__
    with open(os.devnull if stdout == "-" else stdout, "wb") as out, open(stderr, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    with open(report, "w") as f:
        json.dump({"seconds": seconds, "code": code, "maxrss_kb": usage.ru_maxrss}, f)


if __name__ == "__main__":
    main()
