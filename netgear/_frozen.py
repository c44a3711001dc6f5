"""A faster ``__init__`` for frozen dataclasses made once per message."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Type, TypeVar

_T = TypeVar("_T")


def dict_init(cls: Type[_T]) -> Type[_T]:
    """Give a frozen dataclass (without slots) an ``__init__`` that fills the instance's
    ``__dict__`` in one update instead of one ``object.__setattr__`` call per field, which
    costs about 2 us for ten fields; the hub makes a :class:`~netgear.wire.Decoded` and a
    :class:`~netgear.packet.Packet` for every frame. Same signature, same defaults (plain
    ones only), and the instances stay frozen: only assignment is refused, not this."""
    params, names = [], []
    namespace: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not dataclasses.MISSING:  # pragma: no cover - not used
            raise TypeError(f"{cls.__name__}.{f.name}: dict_init takes plain defaults only")
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        names.append(f.name)
    source = (
        f"def __init__(self, {', '.join(params)}):\n"
        f"    self.__dict__.update({', '.join(f'{n}={n}' for n in names)})\n"
    )
    exec(source, namespace)  # (what dataclasses itself does to build __init__)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls
