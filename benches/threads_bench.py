"""The encoder under load: `combiner demo`'s encode time on an idle machine and beside one busy
competing process, in the same run, with the default thread policy (combiner.threads) and with
every core forced (``--threads`` = the number of cores).

    python benches/threads_bench.py [--repeat 2]

Prints each encode time (the demo's own figure, process start excluded), the ratio busy / idle
for both settings, and the largest peak RSS of the demo processes (ru_maxrss of the children).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time


def demo(threads: int | None) -> float:
    """Encode seconds of one `combiner demo` in a fresh process."""
    extra = [] if threads is None else ["--threads", str(threads)]
    code = "import sys; from combiner import cli; sys.exit(cli.main(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", code, "demo", *extra], capture_output=True, text=True, check=True)
    found = re.search(r"encode ([0-9.]+) s", run.stdout)
    if found is None:
        raise RuntimeError(f"unexpected demo output: {run.stdout!r}")
    return float(found.group(1))


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = {}
    for label, threads in (("default policy", None), (f"--threads {cores}", cores)):
        idle = min(demo(threads) for _ in range(args.repeat))
        competitor = busy()
        try:
            time.sleep(0.5)
            loaded = min(demo(threads) for _ in range(args.repeat))
        finally:
            competitor.kill()
        rows[label] = (idle, loaded)
        print(f"{label:>16}: idle {idle:.1f} s, beside one busy process {loaded:.1f} s, "
              f"ratio {loaded / idle:.2f}x", flush=True)
    print(f"peak RSS of a demo process: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB "
          f"({cores} cores)")


if __name__ == "__main__":
    main()
