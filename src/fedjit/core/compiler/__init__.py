"""Pure rewrites and analyses of federated graphs: they read and build `_ir.Graph`s and
depend on nothing but the IR and its types (no backend, no values)."""

from fedjit.core.compiler.flows import Flow, client_to_server_flows
from fedjit.core.compiler.fusion import fuse_map_reduce, simplify
from fedjit.core.compiler.streaming import stream_plan, streamed_parameter

__all__ = ["Flow", "client_to_server_flows", "fuse_map_reduce", "simplify", "stream_plan", "streamed_parameter"]
