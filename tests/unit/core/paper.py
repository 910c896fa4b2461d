"""Slow, direct transcriptions of the paper's formulas, one loop per sum, used as references.

Nothing here is vectorised or shared with probelog.core: each function reads like the equation
it names.
"""

from __future__ import annotations

import math


def mean_std(values):
    n = len(values)
    mu = sum(float(v) for v in values) / n
    var = sum((float(v) - mu) ** 2 for v in values) / n
    return mu, math.sqrt(var)


def sorted_desc(values):
    """a = probe indices sorted by descending response; equal responses by probe index."""
    return sorted(range(len(values)), key=lambda i: (-float(values[i]), i))


def d_trim(phi_logit, phi_concept, r):
    """Eq. 5."""
    mu_l, s_l = mean_std(phi_logit)
    mu_c, s_c = mean_std(phi_concept)
    a = sorted_desc(phi_logit)
    total = 0.0
    for i in range(r):
        zl = (float(phi_logit[a[i]]) - mu_l) / s_l
        zc = (float(phi_concept[a[i]]) - mu_c) / s_c
        total += (zl - zc) ** 2
    return math.sqrt(total)


def d_calibrated(phi_logit, phi_concept, background, r, k):
    """Eq. 6: subtract the mean of the k smallest truncated distances to the background set."""
    to_background = sorted(d_trim(phi_logit, b, r) for b in background)
    offset = sum(to_background[:k]) / k
    return d_trim(phi_logit, phi_concept, r) - offset


def cosine(u, v):
    dot = sum(float(a) * float(b) for a, b in zip(u, v, strict=True))
    nu = math.sqrt(sum(float(a) ** 2 for a in u))
    nv = math.sqrt(sum(float(b) ** 2 for b in v))
    return dot / (nu * nv)


def phi_text(text_embedding, probe_embeddings):
    """Eq. 3."""
    return [cosine(x, text_embedding) for x in probe_embeddings]


def phi_query(image_embeddings, probe_embeddings):
    """App. A, Eq. 8: c_q = mean of the (unit) image embeddings; <x_i, c_q> with unit x_i."""
    def unit(v):
        n = math.sqrt(sum(float(a) ** 2 for a in v))
        return [float(a) / n for a in v]

    qs = [unit(q) for q in image_embeddings]
    dim = len(qs[0])
    c_q = [sum(q[d] for q in qs) / len(qs) for d in range(dim)]
    return [sum(a * b for a, b in zip(unit(x), c_q, strict=True)) for x in probe_embeddings]


def softmax(values):
    m = max(values)
    e = [math.exp(v - m) for v in values]
    s = sum(e)
    return [v / s for v in e]


def wpmi(logits, concepts, top_k, a, lam, soft=None, min_prob=1e-7):
    """Eq. 7 (CLIP-Dissect), without its constant lambda*log|C| term.

    p(c | x) = softmax over concepts of a * sim(c, x). The gallery term is the log of the mean
    over all logits l' of prod_i p(c | x_{a'_i}). With soft=(p_start, p_end) the i-th probe
    contributes log(1 + p_i (p(c|x) - 1)), p_i decreasing linearly from p_start.
    """
    n_concepts, n_probes = len(concepts), len(concepts[0])
    p = [softmax([a * float(concepts[c][x]) for c in range(n_concepts)]) for x in range(n_probes)]

    def log_p_given(logit, c):
        a_idx = sorted_desc(logit)[:top_k]
        total = 0.0
        for i, x in enumerate(a_idx):
            if soft is None:
                total += math.log(p[x][c] + min_prob)
            else:
                p_i = soft[0] - i / top_k * (soft[0] - soft[1])
                total += math.log(1 + p_i * (p[x][c] - 1) + min_prob)
        return total

    table = [[log_p_given(l, c) for c in range(n_concepts)] for l in logits]
    out = []
    for row in table:
        scores = []
        for c in range(n_concepts):
            column = [t[c] for t in table]
            m = max(column)
            log_mean = m + math.log(sum(math.exp(v - m) for v in column) / len(column))
            scores.append(row[c] - lam * log_mean)
        out.append(scores)
    return out
