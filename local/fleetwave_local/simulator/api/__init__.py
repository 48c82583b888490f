"""SSM's JSON API on top of the simulator's model: request validation, filters, paging, response shapes.

`router` dispatches by operation; `send_command`, `commands` and `nodes` answer; `wire` holds what they share.
"""

from .router import SsmApi
from .send_command import SendCommand

__all__ = ["SendCommand", "SsmApi"]
