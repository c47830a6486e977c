"""augssl: augmentation-driven semi-supervised learning and learned data augmentation."""

import os

# Idle OpenMP threads sleep instead of spinning. With the default (spinning) policy, a torch
# process that shares its cores with any other busy process (a second run, a DataLoader worker,
# an evaluation) waits ~10 ms per parallel op: training ran 6x slower on a 2-core machine. It must
# be set before torch loads, hence here, and entry scripts import augssl before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
