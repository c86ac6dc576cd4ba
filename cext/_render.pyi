# The public API of the compiled JSON renderer cext._render, built from proto/render.py (the
# twin, whose annotations and docstrings are the reference).
from collections.abc import Callable, Mapping
from typing import Any

def offer_names(key: tuple) -> tuple: ...
def summary_to_json(raw: Mapping[str, Any], facts: Mapping[bytes, dict],
                    offer_names: Callable[[tuple], tuple] = ...) -> dict: ...
