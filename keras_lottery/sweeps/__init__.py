"""Sweeps: many searches described as data, run here, on Ray or on Slurm.

`Sweep` (`sweep.py`) turns one search's settings and lists of values into
members, each a `keras-lottery run` with its own run directory; the engines
(`engines.py`) decide where members run and run each again when its worker
dies. Everything a member has finished stays in its directory.
"""

from keras_lottery.sweeps.engines import ENGINES, Local, MemberFailed, Ray, Slurm, run_member
from keras_lottery.sweeps.sweep import SWEEP_FILE, Member, Sweep, member_directories

__all__ = ["ENGINES", "Local", "Member", "MemberFailed", "Ray", "SWEEP_FILE", "Slurm", "Sweep",
           "member_directories", "run_member"]
