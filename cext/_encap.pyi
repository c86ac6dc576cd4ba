# The public API of the compiled tunnel decapsulator cext._encap, built from cext/_encap_py.py
# (the twin, whose docstrings are the reference).  Its walking methods are C-level in the
# compiled build (the compiled decoder calls them with a raw pointer): only the counters, the
# last EtherType and stats() are reachable from Python there.
ENCAPSULATIONS: tuple[str, ...]
COUNTER_NAMES: tuple[str, ...]
MAX_DEPTH: int
NOT_TUNNEL: int
SKIP: int

class Decapsulator:
    counters: list[int]
    et: int
    def __init__(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
