"""The probe runner refuses a model whose answers do not match what it was sent."""

from __future__ import annotations

import numpy as np
import pytest

from probelog.common.errors import FailedPrecondition
from probelog.probe_runner.runner import ProbeRunner
from probelog.v1 import probe_runner_pb2 as pb
from probelog.v1 import types_pb2

N_PROBES, N_LOGITS = 10, 3


class OneRowBackend:
    """A batched model that ignores the batch size: one row, whatever it is sent."""

    name = "fake"

    async def describe(self, model_name: str, model_version: str = "") -> pb.ServedModel:
        return pb.ServedModel(
            name=model_name, version="1", max_batch_size=4,
            inputs=[pb.TensorSpec(name="x", datatype="FP32", dims=[3, 8, 8])],
            outputs=[pb.TensorSpec(name="logits", datatype="FP32", dims=[N_LOGITS])],
        )

    async def infer(self, model, inputs, *, timeout=None):
        return np.zeros((1, N_LOGITS), dtype=np.float32)


class Probes:
    async def get_probe_set(self, probe_set_id, *, timeout=None):
        images = np.zeros((N_PROBES, 8, 8, 3), dtype=np.uint8)
        return types_pb2.ProbeSetInfo(probe_set_id=probe_set_id, n_probes=N_PROBES), images


async def test_a_model_that_ignores_the_batch_size_is_refused():
    runner = ProbeRunner(OneRowBackend(), Probes())  # type: ignore[arg-type]
    with pytest.raises(FailedPrecondition, match="1 rows for a batch of 4"):
        await runner.probe("ignores-batch", "", "ps-0000000000000000")
