"""What bounds Table 3 of the quality report -- not a test: how good the best logit the hub holds
for each concept is, as a one-vs-all detector, next to the world's CLIP.

    python bench/quality_bound.py --hub .data/world-bench-seed0

Table 3 asks whether the logits ProbeLog retrieves detect their concept better than the world's
CLIP does zero-shot. No retrieval can return a better logit than the best one of the concept in
the hub, so this prints, over the test-half query concepts of the report (same split, same
held-out objects, same hub logits, read from ``<world>/bench-cache`` or computed there):

- the mean PR-AUC of the hub's logits of those concepts (the report's "hub mean");
- the mean over concepts of the best logit's PR-AUC (an oracle retrieval);
- the share of concepts whose best logit beats the CLIP on the same images;
- the CLIP's mean PR-AUC.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from probelog.common.world_layout import WorldLayout
from probelog.core import metrics
from probelog.core.descriptors import normalize_embeddings
from probelog_bench.quality import Cache, eval_objects, hub_logits, split_queries
from probelog_world.concepts import ConceptSet
from probelog_world.evaluate import WorldClip, load_hub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", required=True, help="a built world directory")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads, where logits are not cached")
    args = parser.parse_args()

    layout = WorldLayout.at(args.hub)
    hub = load_hub(layout.root)
    images, labels, _ = eval_objects(layout.root)
    logits = hub_logits(hub, "eval", images, Cache(layout.root), args.threads)
    clip = WorldClip.load(layout)
    text = clip.text(hub.query_names)
    image_emb = normalize_embeddings(clip.images(images))
    concepts = ConceptSet()
    _, test = split_queries(len(hub.query_names))

    hub_ap, best_ap, clip_ap = [], [], []
    for q in test:
        y = np.isin(labels, concepts.members(hub.query_names[q]))
        if not y.any() or y.all():
            continue
        aps = [metrics.average_precision(logits[l], y) for l in np.flatnonzero(hub.logit_query == q)]
        hub_ap += aps
        best_ap.append(max(aps))
        clip_ap.append(metrics.average_precision(image_emb @ text[q], y))
    best, clip_mean = np.array(best_ap), np.array(clip_ap)
    print(f"hub: {args.hub}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"test-half query concepts: {len(best)}; their hub logits: {len(hub_ap)}")
    print(f"mean PR-AUC of those logits: {np.mean(hub_ap):.3f}")
    print(f"best logit of each concept (oracle retrieval): {best.mean():.3f}")
    print(f"concepts whose best logit beats the CLIP: {np.mean(best > clip_mean):.1%}")
    print(f"CLIP zero-shot: {clip_mean.mean():.3f}")


if __name__ == "__main__":
    main()
