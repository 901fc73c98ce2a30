"""Example agent handlers for the demo mesh: small, real, deterministic work.

Each handler takes a context with ``.payload`` (bytes), ``.kind``,
``.json()``, ``.text()``, ``.agent_id``, ``.task_id`` and ``.attempt``, and
returns a JSON-serialisable dict. Raising an exception fails the task with
the exception's message. :func:`dispatch` routes by ``ctx.kind``; a sidecar
serving several kinds points ``--handler`` at it.

Kinds and payloads (all JSON objects):

=================  =====================================================
``text.wordcount``   ``{"text": str, "top": int = 5}``
``text.sentiment``   ``{"text": str}``
``text.summarize``   ``{"text": str, "sentences": int = 2}``
``math.primes``      ``{"n": int}`` (primes below n, n <= 10,000,000)
``math.stats``       ``{"numbers": [float, ...]}`` (at least one)
``math.matmul``      ``{"a": [[...]], "b": [[...]]}`` or ``{"n": int, "seed": int}``
``vision.histogram`` ``{"width": int, "height": int, "seed": int, "bins": int = 16}``
``vision.edges``     ``{"width": int, "height": int, "seed": int, "threshold": int = 128}``
=================  =====================================================
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["HANDLERS", "KINDS", "TaskContext", "dispatch", "synthetic_image"]


class TaskContext(Protocol):
    """What a handler receives (provided by the sidecar's handler adapter)."""

    @property
    def payload(self) -> bytes: ...
    @property
    def kind(self) -> str: ...
    @property
    def agent_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    def json(self) -> Any: ...
    def text(self) -> str: ...


Result = dict[str, Any]

# Limits keep a mistaken payload from turning a demo task into a CPU hog.
MAX_PRIMES_N = 10_000_000
MAX_MATRIX_N = 200
MAX_IMAGE_PIXELS = 1_000_000


def _obj(ctx: TaskContext) -> dict[str, Any]:
    data = ctx.json()
    if not isinstance(data, dict):
        raise ValueError(f"{ctx.kind}: payload must be a JSON object")
    return data


def _int(data: dict[str, Any], key: str, default: int | None = None, *, lo: int = 0, hi: int = 2**31) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer")
    if not lo <= value <= hi:
        raise ValueError(f"{key!r} must be in {lo}..{hi}, got {value}")
    return value


# -- text -----------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STOPWORDS = frozenset(
    "a an and are as at be but by for from has have he her his i in is it its of on or she so that the "
    "their them they this to was we were what when which who will with you your not no".split()
)
_POSITIVE = frozenset(
    "good great excellent happy love loved lovely nice wonderful fantastic fast reliable best better "
    "brilliant clean easy enjoy enjoyed fine glad helpful impressive perfect pleasant smooth solid "
    "success successful superb useful win delightful calm bright".split()
)
_NEGATIVE = frozenset(
    "bad terrible awful sad hate hated poor slow broken worst worse ugly angry annoying boring buggy "
    "crash crashed difficult fail failed failure horrible painful problem problems unreliable wrong "
    "useless disappointing noisy dull".split()
)
_NEGATORS = frozenset({"not", "no", "never", "hardly", "isn't", "wasn't", "don't", "doesn't", "didn't"})


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _text_field(ctx: TaskContext) -> tuple[dict[str, Any], str]:
    """``{"text": ...}`` with options, or (for convenience) the whole payload as plain text."""
    try:
        data = ctx.json()
    except ValueError:
        data = None
    if isinstance(data, str):
        return {}, data
    if not isinstance(data, dict):
        return {}, ctx.text()
    text = data.get("text")
    if not isinstance(text, str):
        raise ValueError(f"{ctx.kind}: 'text' must be a string")
    return data, text


def text_wordcount(ctx: TaskContext) -> Result:
    data, text = _text_field(ctx)
    top_n = _int(data, "top", 5, hi=1000)
    words = _words(text)
    counts = Counter(w for w in words if w not in _STOPWORDS)
    return {
        "words": len(words),
        "unique": len(set(words)),
        "top": [[w, c] for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]],
    }


def text_sentiment(ctx: TaskContext) -> Result:
    _, text = _text_field(ctx)
    words = _words(text)
    pos = neg = 0
    for i, word in enumerate(words):
        polarity = 1 if word in _POSITIVE else -1 if word in _NEGATIVE else 0
        if polarity and i > 0 and words[i - 1] in _NEGATORS:
            polarity = -polarity
        if polarity > 0:
            pos += 1
        elif polarity < 0:
            neg += 1
    score = (pos - neg) / math.sqrt(pos + neg) if pos + neg else 0.0
    label = "positive" if score > 0.5 else "negative" if score < -0.5 else "neutral"
    return {"score": round(score, 4), "label": label, "positive": pos, "negative": neg, "words": len(words)}


def text_summarize(ctx: TaskContext) -> Result:
    data, text = _text_field(ctx)
    keep = _int(data, "sentences", 2, lo=1, hi=100)
    sentences = [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    freq = Counter(w for w in _words(text) if w not in _STOPWORDS)
    top = max(freq.values(), default=1)

    def score(sentence: str) -> float:
        words = [w for w in _words(sentence) if w not in _STOPWORDS]
        return sum(freq[w] / top for w in words) / math.sqrt(len(words)) if words else 0.0

    ranked = sorted(range(len(sentences)), key=lambda i: (-score(sentences[i]), i))[:keep]
    chosen = [sentences[i] for i in sorted(ranked)]  # keep the original order
    return {"summary": " ".join(chosen), "sentences": len(sentences), "kept": len(chosen)}


# -- math -------------------------------------------------------------------------


def math_primes(ctx: TaskContext) -> Result:
    n = _int(_obj(ctx), "n", lo=0, hi=MAX_PRIMES_N)
    if n < 3:
        return {"n": n, "count": 0, "largest": None}
    sieve = bytearray([1]) * n
    sieve[0:2] = b"\x00\x00"
    for p in range(2, math.isqrt(n - 1) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytes(len(range(p * p, n, p)))
    return {"n": n, "count": sieve.count(1), "largest": sieve.rindex(1)}


def math_stats(ctx: TaskContext) -> Result:
    numbers = _obj(ctx).get("numbers")
    if not isinstance(numbers, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in numbers
    ):
        raise ValueError("'numbers' must be a list of numbers")
    if not numbers:
        raise ValueError("math.stats needs at least one number, got an empty list")
    return {
        "count": len(numbers),
        "mean": statistics.fmean(numbers),
        "stdev": statistics.stdev(numbers) if len(numbers) > 1 else 0.0,
        "median": statistics.median(numbers),
        "min": min(numbers),
        "max": max(numbers),
    }


def _matrix(value: Any, name: str) -> list[list[float]]:
    if not isinstance(value, list) or not value or not all(isinstance(r, list) and r for r in value):
        raise ValueError(f"{name!r} must be a non-empty list of non-empty rows")
    width = len(value[0])
    if any(len(r) != width for r in value):
        raise ValueError(f"{name!r} rows differ in length")
    if len(value) > MAX_MATRIX_N or width > MAX_MATRIX_N:
        raise ValueError(f"{name!r} is larger than {MAX_MATRIX_N}x{MAX_MATRIX_N}")
    return [[float(x) for x in r] for r in value]


def _random_matrix(n: int, rng: random.Random) -> list[list[float]]:
    return [[float(rng.randint(-9, 9)) for _ in range(n)] for _ in range(n)]


def math_matmul(ctx: TaskContext) -> Result:
    data = _obj(ctx)
    if "a" in data or "b" in data:
        a, b = _matrix(data.get("a"), "a"), _matrix(data.get("b"), "b")
    else:
        n = _int(data, "n", lo=1, hi=MAX_MATRIX_N)
        rng = random.Random(_int(data, "seed", 0))
        a, b = _random_matrix(n, rng), _random_matrix(n, rng)
    if len(a[0]) != len(b):
        raise ValueError(f"shapes do not match: {len(a)}x{len(a[0])} @ {len(b)}x{len(b[0])}")
    columns = list(zip(*b, strict=True))
    product = [[sum(x * y for x, y in zip(row, col, strict=True)) for col in columns] for row in a]
    result: Result = {
        "shape": [len(product), len(product[0])],
        "trace": sum(product[i][i] for i in range(min(len(product), len(product[0])))),
        "sum": sum(map(sum, product)),
    }
    if len(product) * len(product[0]) <= 64:
        result["product"] = product
    return result


# -- vision -----------------------------------------------------------------------


def synthetic_image(width: int, height: int, seed: int) -> list[list[int]]:
    """A deterministic grey image: a diagonal gradient, a few bright discs and
    dark bars, and a little noise, so both histograms and edges are non-trivial."""
    rng = random.Random(seed)
    img = [
        [(x * 160 // max(1, width - 1) + y * 60 // max(1, height - 1)) for x in range(width)]
        for y in range(height)
    ]
    for _ in range(rng.randint(1, 3)):
        cx, cy = rng.randrange(width), rng.randrange(height)
        r = rng.randint(2, max(3, min(width, height) // 3))
        level = rng.randint(200, 255)
        for y in range(max(0, cy - r), min(height, cy + r + 1)):
            row = img[y]
            for x in range(max(0, cx - r), min(width, cx + r + 1)):
                if (x - cx) ** 2 + (y - cy) ** 2 <= r * r:
                    row[x] = level
    for _ in range(rng.randint(0, 2)):
        x0 = rng.randrange(width)
        for y in range(height):
            for x in range(x0, min(width, x0 + 2)):
                img[y][x] = 10
    noise = rng.randbytes(width * height)
    for y, row in enumerate(img):
        base = y * width
        img[y] = [min(255, max(0, v + noise[base + x] % 13 - 6)) for x, v in enumerate(row)]
    return img


def _image(ctx: TaskContext) -> tuple[dict[str, Any], int, int, list[list[int]]]:
    data = _obj(ctx)
    width = _int(data, "width", lo=1, hi=4096)
    height = _int(data, "height", lo=1, hi=4096)
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"image larger than {MAX_IMAGE_PIXELS} pixels")
    return data, width, height, synthetic_image(width, height, _int(data, "seed", 0))


def vision_histogram(ctx: TaskContext) -> Result:
    data, width, height, img = _image(ctx)
    bins = _int(data, "bins", 16, lo=1, hi=256)
    hist = [0] * bins
    for row in img:
        for v in row:
            hist[v * bins // 256] += 1
    pixels = width * height
    mean = sum(map(sum, img)) / pixels
    return {"width": width, "height": height, "bins": hist, "mean": round(mean, 3)}


def vision_edges(ctx: TaskContext) -> Result:
    data, width, height, img = _image(ctx)
    threshold = _int(data, "threshold", 128, lo=0, hi=2040)
    edges = 0
    strongest = 0
    limit = threshold * threshold
    for y in range(1, height - 1):
        up, mid, down = img[y - 1], img[y], img[y + 1]
        for x in range(1, width - 1):
            gx = (up[x + 1] + 2 * mid[x + 1] + down[x + 1]) - (up[x - 1] + 2 * mid[x - 1] + down[x - 1])
            gy = (down[x - 1] + 2 * down[x] + down[x + 1]) - (up[x - 1] + 2 * up[x] + up[x + 1])
            g2 = gx * gx + gy * gy
            if g2 > strongest:
                strongest = g2
            if g2 >= limit:
                edges += 1
    interior = max(0, width - 2) * max(0, height - 2)
    return {
        "width": width,
        "height": height,
        "edge_pixels": edges,
        "edge_fraction": round(edges / interior, 4) if interior else 0.0,
        "max_gradient": round(math.sqrt(strongest), 2),
    }


# -- routing ----------------------------------------------------------------------

HANDLERS: dict[str, Callable[[TaskContext], Result]] = {
    "text.wordcount": text_wordcount,
    "text.sentiment": text_sentiment,
    "text.summarize": text_summarize,
    "math.primes": math_primes,
    "math.stats": math_stats,
    "math.matmul": math_matmul,
    "vision.histogram": vision_histogram,
    "vision.edges": vision_edges,
}
KINDS: tuple[str, ...] = tuple(HANDLERS)


def dispatch(ctx: TaskContext) -> Result:
    """Route a task to the handler for its kind."""
    try:
        handler = HANDLERS[ctx.kind]
    except KeyError:
        raise LookupError(f"no demo handler for kind {ctx.kind!r}") from None
    return handler(ctx)
