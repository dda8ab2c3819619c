"""A wrapper that stands in for a processor's part (its image processor, its tokenizer) while GRPO trains."""

from __future__ import annotations

import copy
from typing import Any


class StandIn:
    """Stands in for ``inner``: every attribute it does not hold itself is ``inner``'s, and a copy or pickle of it is
    ``inner``, so a processor holding one saves exactly what it would without. ``OWN`` names the attributes a
    subclass sets itself."""

    OWN: tuple[str, ...] = ("inner",)
    inner: Any

    def __getattr__(self, name: str) -> Any:
        if name in self.OWN:  # not set yet: being unpickled or copied
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.inner, memo)

    def __reduce__(self) -> tuple[Any, ...]:
        return (copy.deepcopy, (self.inner,))
