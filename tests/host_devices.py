"""Run a snippet in a fresh Python process with N forced CPU host devices.

JAX fixes its device count at start-up, so 1-vs-4-device tests run each side in a
subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=N.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script: str, num_devices: int, *args) -> str:
    """Runs `python -c script *args` from the repository root on `num_devices` CPU
    devices; fails with its stderr if it fails, else returns its last stdout line."""
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}",
        JAX_PLATFORMS="cpu",
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], cwd=REPO, env=env, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    lines = proc.stdout.decode().strip().splitlines()
    return lines[-1] if lines else ""
