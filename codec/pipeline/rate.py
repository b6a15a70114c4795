"""Rate settings: what the header's `quality` field means for a model, on both sides.

Single-rate models: the field is a quantisation step of y in thousandths (0 = step 1, as trained);
a quality q maps to step 2^((R - q) / 20), R the model's reference quality (60 unless the manifest's
quality table says otherwise, codec.zoo.QUALITY), so R is the trained rate and every 20 halves the step.
Variable-rate models (gain units, `config.levels`): the field is 1 + round(100 * quality) for a
quality in 0..100 (0 = the model's default quality); quality q sits at level position
t = q / 100 * (L - 1) and the per-channel gains are mixed log-linearly between the two nearest
trained levels. Both sides compute the vectors in float64 from the stored parameters.

`model` below is any loaded model of a family built on the hyperprior autoencoder: its `module` is
that autoencoder (the M2T and VCT models expose their image model's), whose gains define the rates.
"""

from __future__ import annotations

from dataclasses import dataclass

from codec.errors import FormatError
from codec.registry import family_of

STEP_UNIT = 1000
STEP_RANGE = (0.25, 8.0)
DEFAULT_QUALITY = 60.0


@dataclass(frozen=True)
class Rate:
    """field: the header value; enc_step / dec_mult: (M,) float64 per-channel quantisation step and
    reconstruction multiplier (y_sym = round((y - mean) / enc_step), y_hat = y_sym * dec_mult + mean)."""

    field: int
    enc_step: torch.Tensor
    dec_mult: torch.Tensor
    quality: float | None
    step: float


def is_variable(model) -> bool:
    """True when the model's rate is a quality (variable-rate models, and families with their own
    rates), False when it is a quantisation step."""
    if family_of(model).rate_for(model, None, 1.0) is not None:
        return True
    return model.module.config.variable_rate


def _gain_vectors(model, quality: float) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    levels = len(model.module.config.levels)
    t = torch.tensor(quality / 100.0 * (levels - 1), dtype=torch.float64)
    lo = int(min(levels - 2, int(torch.floor(t))))
    a = t - lo
    lg, lig = model.module.log_gain.detach().double(), model.module.log_inv_gain.detach().double()
    g = torch.exp(lg[lo] * (1 - a) + lg[lo + 1] * a)
    ig = torch.exp(lig[lo] * (1 - a) + lig[lo + 1] * a)
    return g, ig


def rate_for(model, *, quality: float | None = None, step: float = 1.0) -> Rate:
    """The rate setting an encoder asks for (ValueError for values out of range)."""
    own = family_of(model).rate_for(model, quality, step)
    if own is not None:
        return own
    if is_variable(model):
        if step != 1.0:
            raise ValueError(f"model {model.model_id} is variable-rate: use quality, not a quantisation step")
        q = DEFAULT_QUALITY if quality is None else float(quality)
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"quality must be within 0..100, got {quality}")
        return rate_from_field(model, int(round(q * 100)) + 1)
    if quality is not None:  # single-rate model: quality maps to a step, 60 = as trained, 20 per octave
        if not 0.0 <= quality <= 100.0:
            raise ValueError(f"quality must be within 0..100, got {quality}")
        if step != 1.0:
            raise ValueError("give either quality or a quantisation step, not both")
        from codec.zoo import quality_reference

        ref = quality_reference(model.model_id, DEFAULT_QUALITY)
        step = min(STEP_RANGE[1], max(STEP_RANGE[0], 2.0 ** ((ref - float(quality)) / 20.0)))
    if not STEP_RANGE[0] <= step <= STEP_RANGE[1]:
        raise ValueError(f"quantisation step must be within {STEP_RANGE[0]}..{STEP_RANGE[1]}, got {step}")
    q = int(round(step * STEP_UNIT))
    field = 0 if q == STEP_UNIT else q
    return rate_from_field(model, field)


def rate_from_field(model, field: int) -> Rate:
    """The rate setting a header's field stands for (FormatError when it is out of range)."""
    own = family_of(model).rate_from_field(model, field)
    if own is not None:
        return own
    import torch

    m = model.module.config.M
    if is_variable(model):
        q = DEFAULT_QUALITY if field == 0 else (field - 1) / 100.0
        if not 0.0 <= q <= 100.0:
            raise FormatError(f"quality {q} in the header is outside 0..100")
        g, ig = _gain_vectors(model, q)
        return Rate(field, 1.0 / g, ig, q, 1.0)
    step = 1.0 if field == 0 else field / STEP_UNIT
    if not STEP_RANGE[0] <= step <= STEP_RANGE[1]:
        raise FormatError(f"quantisation step {step} in the header is outside {STEP_RANGE[0]}..{STEP_RANGE[1]}")
    vec = torch.full((m,), step, dtype=torch.float64)
    return Rate(field, vec, vec, None, step)


def quality_of_field(field: int, variable: bool, reference: float = DEFAULT_QUALITY) -> float:
    """The 0..100 quality a header's field stands for, on the scale the user gave to `-q` (torch-free,
    for `codec info`): a variable-rate model's field holds it; a single-rate model's field holds a
    step, whose quality is reference - 20 log2(step) (the inverse of rate_for's mapping, to 0.01)."""
    import math

    if variable:
        return DEFAULT_QUALITY if field == 0 else (field - 1) / 100.0
    step = 1.0 if field == 0 else field / STEP_UNIT
    return round(reference - 20.0 * math.log2(step), 2)


def parse_size(text: str) -> int:
    """'40KB' -> 40000, '1.5MiB' -> 1572864, '900' -> 900 (bytes)."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?i?[bB]?)\s*", text)
    if not m:
        raise ValueError(f"cannot read a size from {text!r}; examples: 40KB, 1.5MiB, 900")
    number, unit = float(m.group(1)), m.group(2).lower().rstrip("b")
    factor = {"": 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2, "g": 1000**3, "gi": 1024**3}[unit]
    return int(number * factor)


def search(encode, lo: float, hi: float, max_bytes: int, increasing: bool, iterations: int = 14):
    """The best setting in [lo, hi] whose file fits in max_bytes, by bisection.

    `encode(setting) -> bytes-like result with len()`; sizes grow with the setting when
    `increasing` (quality), shrink when not (step, searched in log space). Returns (result, fits).
    """
    import math

    def size(v):
        r = encode(v)
        return r, len(r.data)

    worst, best = (lo, hi) if increasing else (hi, lo)  # worst = smallest file
    r_worst, s_worst = size(worst)
    if s_worst > max_bytes:
        return r_worst, False
    r_best, s_best = size(best)
    if s_best <= max_bytes:
        return r_best, True
    fit_r = r_worst
    a, b = worst, best
    for _ in range(iterations):
        mid = (a + b) / 2 if increasing else math.sqrt(a * b)
        r, s = size(mid)
        if s <= max_bytes:
            fit_r, a = r, mid
        else:
            b = mid
    return fit_r, True
