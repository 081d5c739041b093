"""ng_gain: a minimal third-party neuralgraph plugin (template to copy).

The plugin itself is :mod:`ng_gain.plugin`, named by the ``neuralgraph`` entry point.
"""

from __future__ import annotations

from ng_gain.data import SineWaves
from ng_gain.plugin import Gain, WaveformMSE

__all__ = ["Gain", "SineWaves", "WaveformMSE"]
__version__ = "0.1.0"
