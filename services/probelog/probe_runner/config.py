from __future__ import annotations

from pydantic import Field

from probelog.common.settings import Settings, peer

PORT = 50052


class RunnerSettings(Settings):
    runner_url: str = Field(
        "", description="\"triton://host:8001\" (KServe v2 over gRPC) or \"onnx:///path/to/model-repository\"."
    )
    store_address: str = peer("127.0.0.1:50054", "The descriptor store service (host:port).")
    runner_timeout_s: float = Field(60.0, description="Client deadline of one inference request (seconds).")
    onnx_threads: int = Field(1, description="onnxruntime intra-op threads per model (in-process backend).")
    onnx_allow_paths: bool = Field(
        False,
        description="In-process backend: accept an absolute model path as a model name (probelog index PATH). "
        "Local development only: any caller could load a file from the server's disk.",
    )
