"""grpc.health.v1.Health/Check on the sim Gitaly, as Gitaly registers gRPC's health
server (internal/gitaly/server/server.go). Gitaly's auth interceptor guards it like any
other call (internal/gitaly/server/auth_test.go): Praefect's health checks and
`praefect dial-nodes` carry the node's token. No grpc_health package is in the image,
so the two messages are written by hand: HealthCheckResponse{status: SERVING} is
field 1, varint 1.
"""

from __future__ import annotations

from typing import Any

import grpc

SERVING = b"\x08\x01"
METHOD = "/grpc.health.v1.Health/Check"


class Health(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, gitaly: Any) -> None:
        self.gitaly = gitaly

    def service(self, details: Any) -> Any:
        if details.method != METHOD:
            return None

        def check(request: bytes, context: Any) -> bytes:
            self.gitaly.authorize(context, "HealthCheck")
            return SERVING
        return grpc.unary_unary_rpc_method_handler(check)
