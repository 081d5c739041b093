"""Entry point of the ``asr`` plugin: registers its modules, data sources, metrics and commands."""

from __future__ import annotations

from neuralgraph import hookimpl
