"""Alerts: rules over Results (``config``), their states (``engine``), the notices they send
(``payload``) and the channels that carry them (``channels``, ``delivery``)."""
