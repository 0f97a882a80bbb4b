"""``keras.utils.Config``: Keras's attribute-style configuration dict
(``keras/src/utils/config.py``), which can be frozen against changes."""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterator
from typing import Any


class Config:
    """A dict whose keys read and write as attributes (``config.learning_rate = 0.1``);
    ``freeze()`` makes every change raise ``ValueError``."""

    __attrs__: set[str] | None = None

    def __init__(self, **kwargs: Any) -> None:
        self._config = kwargs
        self._frozen = False
        self.__attrs__ = set(dir(self))

    @property
    def frozen(self) -> bool:
        """Whether the config is frozen."""
        return self._frozen

    def freeze(self) -> None:
        """Marks the config as frozen, preventing any later modification."""
        self._frozen = True

    def unfreeze(self) -> None:
        self._frozen = False

    def _raise_if_frozen(self) -> None:
        if self._frozen:
            raise ValueError("Cannot mutate attribute(s) because the config is frozen.")

    def as_dict(self) -> dict[str, Any]:
        return copy.copy(self._config)

    def to_json(self) -> str:
        return json.dumps(self._config)

    def keys(self):
        return self._config.keys()

    def values(self):
        return self._config.values()

    def items(self):
        return self._config.items()

    def pop(self, *args: Any) -> Any:
        self._raise_if_frozen()
        return self._config.pop(*args)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._raise_if_frozen()
        return self._config.update(*args, **kwargs)

    def get(self, keyname: str, value: Any = None) -> Any:
        return self._config.get(keyname, value)

    def __setattr__(self, name: str, value: Any) -> None:
        attrs = object.__getattribute__(self, "__attrs__")
        if attrs is None or name in attrs:
            return object.__setattr__(self, name, value)
        self._raise_if_frozen()
        self._config[name] = value

    def __getattr__(self, name: str) -> Any:
        attrs = object.__getattribute__(self, "__attrs__")
        if attrs is None or name in attrs:
            return object.__getattribute__(self, name)
        if name in self._config:
            return self._config[name]
        msg = f"Unknown attribute: '{name}'."
        closest = difflib.get_close_matches(name, self._config.keys(), n=1, cutoff=0.7)
        if closest:
            msg += f" Did you mean '{closest[0]}'?"
        raise AttributeError(msg)

    def __setitem__(self, key: str, item: Any) -> None:
        self._raise_if_frozen()
        self._config[key] = item

    def __getitem__(self, key: str) -> Any:
        return self._config[key]

    def __repr__(self) -> str:
        return f"<Config {self._config}>"

    def __iter__(self) -> Iterator[str]:
        yield from sorted(self._config.keys())

    def __len__(self) -> int:
        return len(self._config)

    def __delitem__(self, key: str) -> None:
        self._raise_if_frozen()
        del self._config[key]

    def __contains__(self, item: Any) -> bool:
        return item in self._config
