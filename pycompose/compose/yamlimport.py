"""Import PyYAML without paying for a regular expression we never use.

PyYAML's pure-Python ``Reader`` compiles, when its module is imported, a character class
spanning all of Unicode (``NON_PRINTABLE``). Compiling it costs about 80 million
instructions, a fifth of a whole ``pycompose config`` run on a small file, yet we only
ever parse with libyaml's C parser, which does its own reading. So while PyYAML is first
imported, that one pattern is compiled lazily: the pure-Python reader still works, and
pays for the pattern the first time it actually scans text.
"""

from __future__ import annotations

import re
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

_real_compile = re.compile


class _LazyPattern:
    """Compiles on first use, then behaves as the compiled pattern."""

    def __init__(self, pattern: str, flags: int) -> None:
        self._args = (pattern, flags)
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str) -> Any:
        if self._compiled is None:
            self._compiled = _real_compile(*self._args)
        return getattr(self._compiled, name)


def _deferring_compile(pattern: Any, flags: int = 0) -> Any:
    # Only the huge class spanning the astral planes is deferred; everything else as usual.
    if isinstance(pattern, str) and "\U00010000-\U0010ffff" in pattern:
        return _LazyPattern(pattern, flags)
    return _real_compile(pattern, flags)


def _import_yaml() -> ModuleType:
    if "yaml" in sys.modules:
        return sys.modules["yaml"]
    re.compile = _deferring_compile
    try:
        import yaml as module
    finally:
        re.compile = _real_compile
    return module


if TYPE_CHECKING:
    import yaml as yaml
else:
    yaml = _import_yaml()
