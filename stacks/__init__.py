"""The fleetwave CDK app: one stack composed of small constructs.

The stack reads its facts (resource names, table keys, event patterns, handler paths, environment variable names)
from the ``fleetwave`` package in ``functions/``, so the Lambda code and the infrastructure cannot drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = PROJECT_ROOT / "functions"

# `fleetwave` lives in the Lambda asset (functions/), not in an installed distribution.
if str(FUNCTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(FUNCTIONS_DIR))
