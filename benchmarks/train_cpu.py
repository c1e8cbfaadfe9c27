"""The training benchmark: `scripts/train_cpu.py` (train the cpu preset, calibrate, verify).

    python benchmarks/train_cpu.py --run_dir runs/cpu [--copy_to data/pretrained]

The recipe lives in scripts/train_cpu.py (its docstring lists the goals it prints MET or
NOT MET); this entry point runs it with the same arguments, so the benchmark has its
place beside the others.
"""

import os
import runpy
import sys

if __name__ == "__main__":
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
    sys.argv[0] = os.path.join(script, "train_cpu.py")
    runpy.run_path(sys.argv[0], run_name="__main__")
