from __future__ import annotations

from dataclasses import dataclass, field

from probelog.common.settings import Settings

PORT = 50052


@dataclass(frozen=True)
class RunnerSettings(Settings):
    #: "triton://host:8001" (KServe v2 over gRPC) or "onnx:///path/to/model-repository".
    runner_url: str = ""
    #: The descriptor store service, where probe images come from.
    store_address: str = field(default="127.0.0.1:50054", metadata={"peer": True})
    #: Client deadline of one inference request.
    runner_timeout_s: float = 60.0
    #: onnxruntime intra-op threads per model (in-process backend).
    onnx_threads: int = 1
    #: In-process backend: accept an absolute model path as a model name (``probelog index
    #: PATH``). Local development only: any caller could load a file from the server's disk.
    onnx_allow_paths: bool = False
