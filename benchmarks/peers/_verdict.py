"""The one output every peer script writes: which columns the tool called drifted.

Plain standard library, so each peer's own virtual environment can import it
(the scripts run from this folder, which Python puts on the path).
"""

import json


def write_verdict(path: str, tool: str, drifted, checked: int) -> None:
    """``{"tool", "drifted_columns" (sorted), "columns_checked"}`` as JSON at ``path``."""
    with open(path, "w") as stream:
        json.dump(
            {"tool": tool, "drifted_columns": sorted(drifted), "columns_checked": checked}, stream
        )
