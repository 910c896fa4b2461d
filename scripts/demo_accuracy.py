"""Measure ProbeLog's top-1 over every concept of a world's hub, through a running server.

Each concept some hub logit recognises is searched by its name (one Search, top 1) over gRPC,
exactly as a client would; a query counts as a hit when the returned logit's ground-truth concept
is the query. Ground truth is read only to score. Prints one line, next to the figure the world
recorded when it was built (the same measurement done in-process), if it has one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import grpc

from probelog.v1 import search_pb2
from probelog.v1 import search_pb2_grpc as pb_grpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("world", type=Path)
    parser.add_argument("--address", required=True)
    args = parser.parse_args()

    truth = json.loads((args.world / "ground_truth.json").read_text())["models"]
    queries = sorted({c for model in truth.values() for c in model["concepts"]})
    hits = 0
    with grpc.insecure_channel(args.address) as channel:
        stub = pb_grpc.SearchServiceStub(channel)
        for query in queries:
            response = stub.Search(search_pb2.SearchRequest(text=query, top_k=1), timeout=30)
            top = response.hits[0] if response.hits else None
            hits += top is not None and truth[top.model_id]["concepts"][top.logit_index] == query
    n_logits = sum(len(m["concepts"]) for m in truth.values())
    line = (
        f"ProbeLog top-1 over all {len(queries)} concepts of this hub ({len(truth)} models, {n_logits} logits), "
        f"measured now through the API: {100 * hits / len(queries):.1f}%"
    )
    recorded = json.loads((args.world / "world.json").read_text()).get("probelog_top1")
    if recorded:
        line += f" (recorded when the world was built: {100 * recorded['top1']:.1f}%)"
    print(line)


if __name__ == "__main__":
    main()
