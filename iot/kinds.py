"""The registry of reading kinds: canonical unit, accepted units and physical range of each.

A *kind* says what a sensor measures. Every stored value is in its kind's canonical unit;
other accepted units are converted on the way in (``canonical = value * scale + offset``).
Ranges are physical limits for *one reading* (values outside cannot be real and are
rejected), not plausibility limits for a site.

Add a kind with :func:`register_kind`; names are lower-case snake case ending in the
canonical unit where that helps a reader (``power_kwh``, ``concrete_m3``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from iot.errors import UnitInvalidError, UnknownKindError

logger = logging.getLogger(__name__)

#: How readings of one kind combine into a daily figure.
DailyAggregate = Literal["sum", "max", "mean"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class UnitConversion:
    """An affine conversion to the canonical unit: ``canonical = value * scale + offset``."""

    scale: float
    offset: float = 0.0

    def to_canonical(self, value: float) -> float:
        """The value in the kind's canonical unit."""
        return value * self.scale + self.offset


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of reading.

    Attributes:
        name: Registry key, e.g. ``"equipment_runtime_h"``.
        canonical_unit: The unit every stored value is in.
        units: Accepted unit spellings (case-sensitive, as sent) and their conversion to the
            canonical unit; the canonical unit itself must be among them with scale 1.
        minimum: Smallest physically possible value of one reading, in the canonical unit.
        maximum: Largest physically possible value of one reading, in the canonical unit.
        daily: How one day's readings combine: ``sum`` (amounts per interval), ``max``
            (head counts) or ``mean`` (levels).
        description: What one reading means, for operators.
    """

    name: str
    canonical_unit: str
    units: Mapping[str, UnitConversion]
    minimum: float
    maximum: float
    daily: DailyAggregate
    description: str = ""
    #: Units folded to lower case for lookup; built from ``units``.
    _lookup: Mapping[str, UnitConversion] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _NAME.match(self.name):
            problems.append(f"name {self.name!r} must be lower-case snake case, at most 64 characters")
        if self.units.get(self.canonical_unit) != UnitConversion(1.0):
            problems.append(f"canonical unit {self.canonical_unit!r} must be accepted with scale 1")
        if not (math.isfinite(self.minimum) and math.isfinite(self.maximum) and self.minimum < self.maximum):
            problems.append(f"range [{self.minimum}, {self.maximum}] must be finite and non-empty")
        if problems:
            raise ValueError(f"kind {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "_lookup", {u.casefold(): c for u, c in self.units.items()})

    def to_canonical(self, value: float, unit: str) -> float:
        """Convert ``value`` given in ``unit`` to the canonical unit.

        Unit spellings match case-insensitively ("kwh" is "kWh"), because devices disagree.

        Raises:
            UnitInvalidError: The unit is not one this kind accepts.
        """
        conversion = self._lookup.get(unit.casefold())
        if conversion is None:
            accepted = ", ".join(sorted(self.units))
            raise UnitInvalidError(f"unit {unit!r} is not accepted for {self.name} (accepted: {accepted})")
        return conversion.to_canonical(value)


def _units(canonical: str, **others: float | tuple[float, float]) -> dict[str, UnitConversion]:
    units = {canonical: UnitConversion(1.0)}
    for spelling, conv in others.items():
        units[spelling] = UnitConversion(*conv) if isinstance(conv, tuple) else UnitConversion(conv)
    return units


_REGISTRY: dict[str, Kind] = {}


def register_kind(kind: Kind, *, replace: bool = False) -> Kind:
    """Add a kind to the registry (the process-wide one every validator reads).

    Raises:
        ValueError: A kind of that name exists and ``replace`` is False.
    """
    if kind.name in _REGISTRY and not replace:
        raise ValueError(f"kind {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind
    logger.debug("registered reading kind %s (%s)", kind.name, kind.canonical_unit)
    return kind


def kind_for(name: str) -> Kind:
    """The registered kind of this name.

    Raises:
        UnknownKindError: No kind has that name.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownKindError(name) from None


# The built-in kinds. Ranges are per reading: a runtime or energy reading covers one
# reporting interval of at most a day.
EQUIPMENT_RUNTIME_H = register_kind(
    Kind(
        "equipment_runtime_h",
        "h",
        {**_units("h", min=1 / 60, s=1 / 3600), "hours": UnitConversion(1.0)},
        0.0,
        24.0,
        "sum",
        "Engine or motor hours of one machine during the reporting interval",
    )
)
WORKFORCE_COUNT = register_kind(
    Kind(
        "workforce_count",
        "count",
        {**_units("count"), "persons": UnitConversion(1.0), "people": UnitConversion(1.0)},
        0.0,
        20_000.0,
        "max",
        "People on site at the reading time (badge gate or camera head count)",
    )
)
CONCRETE_M3 = register_kind(
    Kind(
        "concrete_m3",
        "m3",
        {**_units("m3", L=1e-3, yd3=0.764554857984), "m³": UnitConversion(1.0)},
        0.0,
        5_000.0,
        "sum",
        "Concrete poured or delivered during the reporting interval",
    )
)
DELIVERIES_COUNT = register_kind(
    Kind("deliveries_count", "count", _units("count"), 0.0, 2_000.0, "sum", "Vehicles through the delivery gate")
)
POWER_KWH = register_kind(
    Kind(
        "power_kwh",
        "kWh",
        _units("kWh", Wh=1e-3, MWh=1e3),
        0.0,
        1_000_000.0,
        "sum",
        "Site electricity consumed during the reporting interval",
    )
)
VIBRATION_RMS = register_kind(
    Kind(
        "vibration_rms",
        "mm/s",
        _units("mm/s", **{"m/s": 1e3, "in/s": 25.4}),
        0.0,
        500.0,
        "mean",
        "RMS vibration velocity at a monitoring point (ISO 10816 / DIN 4150-3 style)",
    )
)
NOISE_DBA = register_kind(
    Kind("noise_dba", "dB(A)", _units("dB(A)", dBA=1.0), 0.0, 194.0, "mean", "Equivalent A-weighted sound level")
)
AIR_TEMPERATURE_C = register_kind(
    Kind(
        "air_temperature_c",
        "degC",
        {
            **_units("degC", degF=(5 / 9, -160 / 9), K=(1.0, -273.15)),
            "°C": UnitConversion(1.0),
        },
        -90.0,
        60.0,
        "mean",
        "Air temperature (curing conditions)",
    )
)
