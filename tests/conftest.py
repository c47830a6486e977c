import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))
os.environ.setdefault("MPLBACKEND", "Agg")
import augssl  # noqa: E402,F401  (sets the OpenMP wait policy before any test imports torch)
