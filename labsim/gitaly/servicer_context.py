"""The part of ``grpc.ServicerContext`` the sim's servicers use, with types.

grpc ships no type hints. Saying here that ``abort`` never returns (it raises and ends
the call, as in grpc) lets the type checker follow a servicer past its guards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

import grpc


class Context(Protocol):
    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn: ...

    def invocation_metadata(self) -> Sequence[tuple[str, Any]]: ...

    def peer(self) -> str: ...
