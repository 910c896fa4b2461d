"""Pick demo queries from a built world: the concepts recognised by most hub models.

Prints one concept name per line; with --image, also writes a held-out example image of the
first concept (never seen in training) for the search-by-image part of the demo. Reads the
ground truth only to choose queries the hub can answer; search never reads it.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("world", type=Path)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--image", type=Path, help="write an example image of the first query here")
    args = parser.parse_args()

    truth = json.loads((args.world / "ground_truth.json").read_text())["models"]
    eval_set = np.load(args.world / "eval" / "objects.npz")
    with_images = set(str(n) for n in eval_set["concept_names"])
    counts = collections.Counter(c for model in truth.values() for c in model["concepts"])
    ranked = sorted(counts, key=lambda c: (-counts[c], c))
    queries = [c for c in ranked if c in with_images][: args.count]
    for query in queries:
        print(query)
    if args.image and queries:
        index = list(eval_set["concept_names"]).index(queries[0])
        first = int(np.flatnonzero(eval_set["labels"] == index)[0])
        Image.fromarray(eval_set["images"][first]).resize((192, 192), Image.Resampling.NEAREST).save(args.image)


if __name__ == "__main__":
    main()
