"""Data sets of the book: tables that packages ship and seeded generators of synthetic data.

Nothing is downloaded at run time. Each submodule re-exports its public names here, so a chapter
can write ``cb.datasets.load_digits_split(...)``.
"""
from . import benchmark, flight, irm_sem, ood, sequences, synthetic, tabular
from .benchmark import *  # noqa: F401,F403
from .flight import *  # noqa: F401,F403
from .irm_sem import *  # noqa: F401,F403
from .ood import *  # noqa: F401,F403
from .sequences import *  # noqa: F401,F403
from .synthetic import *  # noqa: F401,F403
from .tabular import *  # noqa: F401,F403
