"""Generator price tables and the price multipliers derived from them.

Pricier media (higher resolution tiers, more expensive video models) earns a larger multiplier on the
generator base reward, so miners are not pushed towards the cheapest possible output. The tables are
data (``configs/pricing/v<N>.yaml``), loaded once and never fetched live: every validator must price
the same generation identically, or their weights diverge.

Pure functions only; pyyaml is imported lazily by :func:`load_price_table`.
"""

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

DEFAULT_PRICE_TABLE_PATH = Path(__file__).resolve().parents[2] / "configs" / "pricing" / "v1.yaml"

Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_T = TypeVar("_T")


class PriceTableError(ValueError):
    """A price table file is missing, unparsable or fails validation (message names file and field)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageTier(_Frozen):
    """One image tier: its price and the shorter side (px) an image needs to reach it."""

    name: str = Field(min_length=1)
    price: Price
    min_side: int = Field(ge=0)


class VideoTier(_Frozen):
    """One video tier and the pixel count (width * height) a frame needs to reach it."""

    name: str = Field(min_length=1)
    min_pixels: int = Field(ge=0)


def _check_ladder(tiers: Sequence[ImageTier] | Sequence[VideoTier], threshold: str) -> None:
    """Tiers must be uniquely named and ordered by strictly increasing threshold, starting at 0,
    so that every positive size maps to exactly one tier."""
    seen: set[str] = set()
    for i, tier in enumerate(tiers):
        key = tier.name.strip().lower()
        if key in seen:
            raise ValueError(f"tiers[{i}].name: duplicate tier name {tier.name!r}")
        seen.add(key)
    values = [getattr(t, threshold) for t in tiers]
    if values[0] != 0:
        raise ValueError(f"tiers[0].{threshold}: the lowest tier must start at 0, got {values[0]}")
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            raise ValueError(
                f"tiers[{i}].{threshold}: thresholds must increase from tier to tier "
                f"({values[i - 1]} then {values[i]})"
            )


def _canonical(name: str | None, names: Sequence[str]) -> str | None:
    """Case- and whitespace-insensitive tier lookup; None when the name is unknown or missing."""
    if name is None:
        return None
    key = name.strip().lower()
    for candidate in names:
        if candidate.strip().lower() == key:
            return candidate
    return None


class ImagePricing(_Frozen):
    """Image tiers ordered from lowest to highest."""

    tiers: tuple[ImageTier, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ladder(self) -> "ImagePricing":
        _check_ladder(self.tiers, "min_side")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    @property
    def base_price(self) -> float:
        """Price of the lowest tier; multipliers are relative to it."""
        return self.tiers[0].price


class VideoPricing(_Frozen):
    """Video tiers, model prices and the fallbacks used to price a verified video."""

    tiers: tuple[VideoTier, ...] = Field(min_length=1)
    undershoot_discount: float = Field(gt=0, le=1, allow_inf_nan=False)
    model_prices: dict[str, Price] = Field(min_length=1)
    named_model_tier_prices: dict[str, dict[str, Price]] = Field(default_factory=dict)
    named_model_tier_scale: dict[str, Price]
    unnamed_tier_prices: dict[str, Price] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> "VideoPricing":
        _check_ladder(self.tiers, "min_pixels")
        names = self.names

        def check_tiers(field: str, mapping: Mapping[str, float], *, complete: bool) -> None:
            for key in mapping:
                if _canonical(key, names) != key:
                    raise ValueError(f"{field}: unknown tier {key!r} (tiers: {', '.join(names)})")
            if complete:
                missing = [n for n in names if n not in mapping]
                if missing:
                    raise ValueError(f"{field}: missing tiers {', '.join(missing)}")

        for field, table in (("model_prices", self.model_prices),
                             ("named_model_tier_prices", self.named_model_tier_prices)):
            lowered = [k.strip().lower() for k in table]
            for key, low in zip(table, lowered, strict=True):
                if not low:
                    raise ValueError(f"{field}: empty model name")
                if lowered.count(low) > 1:
                    raise ValueError(f"{field}: model {key!r} listed twice (names are case-insensitive)")
        for model, prices in self.named_model_tier_prices.items():
            if not prices:
                raise ValueError(f"named_model_tier_prices.{model}: needs at least one tier price")
            check_tiers(f"named_model_tier_prices.{model}", prices, complete=False)
        check_tiers("named_model_tier_scale", self.named_model_tier_scale, complete=True)
        check_tiers("unnamed_tier_prices", self.unnamed_tier_prices, complete=False)
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    @property
    def baseline(self) -> float:
        """The cheapest flat model price: every video price is divided by it."""
        return min(self.model_prices.values())


class PriceTable(_Frozen):
    """A versioned price table (``configs/pricing/v<N>.yaml``)."""

    version: int = Field(ge=1)
    image: ImagePricing
    video: VideoPricing


class Generation(_Frozen):
    """One verified generation as pricing sees it.

    ``model_name`` is what C2PA names (None: no name, e.g. Google Veo); ``requested_resolution`` is
    the tier asked for in the challenge (None if not asked); ``observed`` is the delivered (width,
    height) in pixels (None if unknown). ``has_audio`` is recorded but not priced (as in the
    reference).
    """

    model_name: str | None = None
    requested_resolution: str | None = None
    observed: tuple[PositiveInt, PositiveInt] | None = None
    has_audio: bool = False


def load_price_table(path: str | Path | None = None) -> PriceTable:
    """Read and validate a price table; errors name the file and the offending field."""
    import yaml  # lazily: keeps `gas.scoring` importable without pyyaml

    path = Path(path) if path is not None else DEFAULT_PRICE_TABLE_PATH
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceTableError(f"{path}: cannot read price table: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PriceTableError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise PriceTableError(f"{path}: a price table must be a mapping, got {type(raw).__name__}")
    try:
        return PriceTable.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise PriceTableError(f"{path}: invalid price table: {problems}") from exc


@lru_cache(maxsize=1)
def default_price_table() -> PriceTable:
    """The repository's default table, parsed once (used when a function gets no table)."""
    return load_price_table()


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")


def image_tier(width: int, height: int, table: PriceTable | None = None) -> str:
    """Tier of an image by its shorter side, so a thin panorama cannot claim a high tier."""
    _check_size(width, height)
    side = min(width, height)
    tiers = (table or default_price_table()).image.tiers
    return next(t.name for t in reversed(tiers) if side >= t.min_side)


def video_tier(width: int, height: int, table: PriceTable | None = None) -> str:
    """Tier of a video by pixel count, so portrait and landscape frames of one size tie."""
    _check_size(width, height)
    pixels = width * height
    tiers = (table or default_price_table()).video.tiers
    return next(t.name for t in reversed(tiers) if pixels >= t.min_pixels)


def _match_model(name: str, table: Mapping[str, _T]) -> _T | None:
    """Exact (case-insensitive) match first, then the longest table key contained in the name.

    Longest-first makes "dreamina-seedance-2-0-fast-251215" hit the fast model, not its prefix
    "dreamina-seedance-2-0", whatever order the yaml lists them in.
    """
    low = name.strip().lower()
    for key, value in table.items():
        if key.strip().lower() == low:
            return value
    hits = sorted((k for k in table if k.strip().lower() in low), key=lambda k: (-len(k.strip()), k))
    return table[hits[0]] if hits else None


def image_generation_multiplier(gen: Generation, table: PriceTable) -> float:
    """sqrt(price / lowest-tier price) at min(observed, requested) tier; unknown observed → lowest."""
    pricing = table.image
    names = pricing.names
    if gen.observed is None:
        return 1.0
    observed = image_tier(*gen.observed, table=table)
    requested = _canonical(gen.requested_resolution, names)
    effective = observed if requested is None else min(observed, requested, key=names.index)
    price = pricing.tiers[names.index(effective)].price
    return math.sqrt(price / pricing.base_price)


def video_generation_price(gen: Generation, table: PriceTable) -> tuple[float, int]:
    """(price, shortfall in tiers) of one verified video; the price is never below the baseline."""
    pricing = table.video
    names = pricing.names
    baseline = pricing.baseline
    if gen.observed is None:
        return baseline, 0
    observed = video_tier(*gen.observed, table=table)
    requested = _canonical(gen.requested_resolution, names)
    if requested is None:
        effective, shortfall = observed, 0
    else:
        effective = min(observed, requested, key=names.index)
        shortfall = max(0, names.index(requested) - names.index(observed))
    model = (gen.model_name or "").strip()
    if not model:
        tier_prices = pricing.unnamed_tier_prices
        price = tier_prices.get(effective, max(tier_prices.values()))
    else:
        named = _match_model(model, pricing.named_model_tier_prices)
        if named is not None:
            price = named.get(effective, max(named.values()))
        else:
            flat = _match_model(model, pricing.model_prices)
            price = (flat if flat is not None else baseline) * pricing.named_model_tier_scale[effective]
    return max(price, baseline), shortfall


def video_generation_multiplier(gen: Generation, table: PriceTable) -> float:
    """sqrt(price / baseline) * undershoot_discount ** shortfall for one verified video."""
    price, shortfall = video_generation_price(gen, table)
    return math.sqrt(price / table.video.baseline) * table.video.undershoot_discount**shortfall


def image_price_multiplier(generations: Sequence[Generation], table: PriceTable) -> float:
    """Mean image multiplier over verified generations.

    An empty list gives 0.0, not 1.0: with nothing priced there is nothing to reward, so a count
    without generation records can never earn a reward on its own.
    """
    if not generations:
        return 0.0
    return math.fsum(image_generation_multiplier(g, table) for g in generations) / len(generations)


def video_price_multiplier(generations: Sequence[Generation], table: PriceTable) -> float:
    """Mean video multiplier over verified generations; 0.0 for an empty list (see image)."""
    if not generations:
        return 0.0
    return math.fsum(video_generation_multiplier(g, table) for g in generations) / len(generations)
