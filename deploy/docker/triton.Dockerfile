# syntax=docker/dockerfile:1
#
# NVIDIA Triton Inference Server with the model repository the probe runner reads.
# Build from the repository root:
#   docker build -f deploy/docker/triton.Dockerfile -t probelog-triton:0.1.0 .
# Another repository directory in the context:
#   --build-arg MODEL_REPOSITORY=path/to/model_repository
# Triton 24.10 is server 2.51.0, the version the project's tests run (nvidia-pytriton 0.7.0).

ARG TRITON_TAG=24.10
FROM nvcr.io/nvidia/tritonserver:${TRITON_TAG}-py3
ARG MODEL_REPOSITORY=deploy/docker/triton/model_repository
LABEL org.opencontainers.image.title="probelog-triton" \
      org.opencontainers.image.description="Triton Inference Server with the ProbeLog model repository"
# Python-backend models import these (a model.py running onnxruntime); models on Triton's own
# onnxruntime backend need none of them.
COPY deploy/docker/triton/requirements.txt /opt/probelog/requirements.txt
RUN python3 -m pip install --no-cache-dir --requirement /opt/probelog/requirements.txt
# Root-owned and world-readable: the server only reads it (explicit model control).
COPY ${MODEL_REPOSITORY}/ /models/
# triton-server, the unprivileged user the base image ships.
USER 1000:1000
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit"]
