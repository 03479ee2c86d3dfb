"""Step a simulated city through time: physics -> faults -> meters -> mesh -> readings.

:class:`BuildingSim` keeps the only state that must carry from one stretch of hours to the
next (the meters' cumulative registers and the valves); everything else is a function of
the absolute hour and the seed, so simulating 168 hours at once or one hour at a time gives
byte-identical readings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import structlog

from balans_db.topology import BuildingSpec, MeterPlan, plan_equipment
from balans_sim import instruments, mesh, sensor_faults
from balans_sim.climate import EPOCH, OutdoorSeries, hour_index
from balans_sim.faults import (
    FAULT_KINDS,
    FaultEffects,
    FaultRecord,
    effects,
    no_route_records,
    schedule_faults,
)
from balans_sim.lifecycle import PlannedExchange, TenantChange, plan_exchanges, plan_tenant_changes
from balans_sim.outages import schedule_outages
from balans_sim.physics import BuildingModel, Drivers, Truth

EVENT_MAGNET = 1
EVENT_BATTERY_LOW = 2
EVENT_VALVE_CLOSED = 3
EVENT_VALVE_OPENED = 4
ERROR_LOW_BATTERY = 0x1
VALVED_UTILITIES = ("cold_water", "gas")

log = structlog.get_logger("sim")


@dataclass
class Chunk:
    """Readings of one building for a stretch of hours, as the concentrator would hear them.

    ``ts_unix[h]`` is the end of hour h (the reading's timestamp); ``*_ok`` masks say which
    readings reached the concentrator through the mesh.
    """

    building: str
    concentrator_serial: int
    hours: np.ndarray
    ts_unix: np.ndarray
    pulse_module: np.ndarray
    pulse_input: np.ndarray
    pulse_count: np.ndarray  # [H, meters] cumulative registers
    pulse_ok: np.ndarray
    temp_module: np.ndarray
    supply_centi_c: np.ndarray  # [H, pairs]
    return_centi_c: np.ndarray
    temp_ok: np.ndarray
    status_module: np.ndarray
    battery_mv: np.ndarray  # [H, modules]
    rssi_dbm: np.ndarray
    hops: np.ndarray
    parent: np.ndarray
    tamper: np.ndarray
    error_bits: np.ndarray
    status_ok: np.ndarray
    events: list[tuple[int, int, int]]  # (module, ts_unix, code)
    truth: Truth
    true_meter: np.ndarray  # [H, meters] true quantities, for tests and scoring

    def reading_count(self) -> int:
        return int(self.pulse_ok.sum() + self.temp_ok.sum() + self.status_ok.sum())


@dataclass
class BuildingSim:
    spec: BuildingSpec
    seed: int
    start_hour: int
    faults: list[FaultRecord] = field(default_factory=list)
    outages: list[FaultRecord] = field(default_factory=list)  # the concentrator's uplink
    exchanges: list[PlannedExchange] = field(default_factory=list)  # still to come
    exchanged: list[PlannedExchange] = field(default_factory=list)  # simulated, registers known

    def __post_init__(self) -> None:
        self.plan = plan_equipment(self.spec)
        self.model = BuildingModel(self.spec, self.seed)
        self.mesh = mesh.Mesh(self.spec, self.plan, self.seed)
        self.base_routes = self.mesh.routes()
        hops = self.base_routes.hops
        self.unrouted = [m for m, h in zip(self.plan.modules, hops, strict=True) if h < 0]
        if self.unrouted:
            log.warning(
                "modules without a route to the concentrator: silent from the first hour",
                building=self.spec.code,
                modules=[m.serial for m in self.unrouted],
            )
        self._routes: dict[frozenset[int], mesh.Routes] = {frozenset(): self.base_routes}
        rng = np.random.default_rng([self.seed, self.spec.index, 9])
        n_meters, n_pairs, n_modules = (
            len(self.plan.meters),
            len(self.plan.pairs),
            len(self.plan.modules),
        )
        self.register_micro = rng.integers(0, 50_000, n_meters).astype(np.int64) * instruments.MICRO
        self.bias = rng.uniform(-0.06, 0.06, (2, n_pairs))
        self.battery_used0 = rng.uniform(0.0, 0.3, n_modules) * mesh.BATTERY_MAH
        self.weights = instruments.pulse_weights(self.plan)
        self.meter_module = np.array([m.module for m in self.plan.meters], dtype=np.int64)
        self.module_pos = {int(s): i for i, s in enumerate(self.mesh.serials)}
        # (hour, flat position, utility, closed), in the order the commands arrived
        self.valve_events: list[tuple[int, int, str, bool]] = []

    def set_valve(
        self, module_serial: int, input_no: int, closed: bool, at_hour: int
    ) -> MeterPlan | None:
        """Apply a downlink valve command to the one meter on ``module_serial``/``input_no``
        from ``at_hour`` on; returns that meter, or None if it has no valve."""
        for m in self.plan.meters:
            if m.module == module_serial and m.input == input_no and m.has_valve and m.flat:
                self.valve_events.append((at_hour, self.model.flat_pos[m.flat], m.utility, closed))
                return m
        return None

    def _valves(self, hours: np.ndarray) -> dict[str, np.ndarray]:
        """utility -> [H, flats]: whether that flat's valve on that utility is shut."""
        closed = {
            u: np.zeros((len(hours), len(self.model.flat_numbers)), dtype=bool)
            for u in VALVED_UTILITIES
        }
        for hour, flat, utility, state in sorted(self.valve_events, key=lambda e: e[0]):
            closed[utility][hours >= hour, flat] = state
        return closed

    def _routes_for(self, dead_row: np.ndarray) -> mesh.Routes:
        key = frozenset(np.nonzero(dead_row)[0].tolist())
        if key not in self._routes:
            self._routes[key] = self.mesh.routes(key)
        return self._routes[key]

    def _battery(self, hours: np.ndarray, fx: FaultEffects) -> np.ndarray:
        rate = mesh.OWN_MA + mesh.RELAY_MA * self.base_routes.relayed
        used = self.battery_used0[None, :] + rate[None, :] * (hours - self.start_hour)[:, None]
        for pos, (first, dies) in fx.depletion.items():
            at_first = self.battery_used0[pos] + rate[pos] * (first - self.start_hour)
            ramp = np.clip((hours + 1 - first) / max(dies - first, 1), 0.0, 1.0)
            fast = at_first + (mesh.BATTERY_MAH - at_first) * ramp
            used[:, pos] = np.where(hours >= first, fast, used[:, pos])
        return mesh.battery_mv(used)

    def skip(self, hours: np.ndarray, outdoor: OutdoorSeries) -> None:
        """Advance the registers through ``hours`` without producing readings: replaying
        history is quick, and the registers come out the same as :meth:`advance` gives."""
        self._registers(hours, outdoor)

    def _registers(
        self, hours: np.ndarray, outdoor: OutdoorSeries
    ) -> tuple[FaultEffects, FaultEffects, Truth, np.ndarray, np.ndarray]:
        """Faults, true physics and the cumulative registers of ``hours`` (carried on)."""
        span = np.r_[hours[0] - 1, hours]  # one hour before, to see what just started
        fx_all = effects(self.faults, span, self.plan, self.model.riser_numbers)
        fx = FaultEffects(
            meter_factor=fx_all.meter_factor[1:],
            riser_flow_factor=fx_all.riser_flow_factor[1:],
            lost_m3=fx_all.lost_m3[1:],
            drawn_share=fx_all.drawn_share[1:],
            tap_share=fx_all.tap_share[1:],
            tap_weather=fx_all.tap_weather[1:],
            tap_return_dt_k=fx_all.tap_return_dt_k[1:],
            tamper=fx_all.tamper[1:],
            dead=fx_all.dead[1:],
            depletion=fx_all.depletion,
        )
        truth = self._truth(hours, outdoor, fx)
        true_q = instruments.true_quantities(self.model, truth, self.plan)
        registered = true_q * fx.meter_factor
        micro = instruments.micro_pulses(registered, self.weights)
        resets = [self._exchange(e, hours, registered, micro) for e in self._due(hours)]
        cum = self.register_micro[None, :] + np.cumsum(micro, axis=0)
        for i, j, at_swap in resets:  # the module's counter starts again from 0
            cum[i:, j] -= at_swap
        self.register_micro = cum[-1].copy()
        return fx_all, fx, truth, true_q, cum // instruments.MICRO

    def _truth(self, hours: np.ndarray, outdoor: OutdoorSeries, fx: FaultEffects) -> Truth:
        return self.model.truth(
            hours,
            outdoor,
            Drivers(
                riser_flow_factor=fx.riser_flow_factor,
                lost_m3=fx.lost_m3,
                drawn_share=fx.drawn_share,
                tap_share=fx.tap_share,
                tap_weather=fx.tap_weather,
                tap_return_dt_k=fx.tap_return_dt_k,
                valve_closed=self._valves(hours),
            ),
        )

    def _temperatures_centi(self, hours: np.ndarray, truth: Truth) -> tuple[np.ndarray, np.ndarray]:
        """[H, pairs] supply and return centi-°C as the sensors read them: the truth, as
        faulty sensors misread it, plus each sensor's bias and noise."""
        sup, ret = instruments.true_temperatures(self.model, truth, self.plan)
        sup, ret = sensor_faults.misread(self.faults, hours, self.plan, sup, ret)
        noise = np.stack([self._sensor_noise(int(h), sup.shape[1]) for h in hours])
        supply_centi = np.rint((sup + self.bias[0] + noise[:, 0]) * 100).astype(np.int64)
        return_centi = np.rint((ret + self.bias[1] + noise[:, 1]) * 100).astype(np.int64)
        return supply_centi, return_centi

    def _frozen_at(self, hours: np.ndarray, outdoor: OutdoorSeries) -> dict[int, tuple[int, int]]:
        """Fault position -> (supply, return) centi-°C its pair read the hour before a
        sensor froze, for the frozen sensors acting during ``hours``."""
        out: dict[int, tuple[int, int]] = {}
        for i, f in enumerate(self.faults):
            if f.kind != "frozen_sensor" or not f.active(hours).any():
                continue
            before = np.array([hour_index(f.start) - 1])
            fx = effects(self.faults, before, self.plan, self.model.riser_numbers)
            sup, ret = self._temperatures_centi(before, self._truth(before, outdoor, fx))
            col = next(
                j for j, p in enumerate(self.plan.pairs) if p.module == f.where.module_serial
            )
            out[i] = int(sup[0, col]), int(ret[0, col])
        return out

    def _due(self, hours: np.ndarray) -> list[PlannedExchange]:
        due = [e for e in self.exchanges if hours[0] <= e.hour <= hours[-1]]
        self.exchanges = [e for e in self.exchanges if e not in due]
        return sorted(due, key=lambda e: e.hour)

    def _exchange(
        self, e: PlannedExchange, hours: np.ndarray, registered: np.ndarray, micro: np.ndarray
    ) -> tuple[int, int, int]:
        """Swap the meter of ``e`` inside its hour: the part of the hour before the swap
        counts in the old meter's pulses, the rest and every later hour in the new one's.
        Records the old meter's final register; returns (hour row, column, count at the
        swap) for a counter reset (count 0 otherwise)."""
        j = next(
            k for k, m in enumerate(self.plan.meters) if (m.module, m.input) == (e.module, e.input)
        )
        i = int(e.hour - hours[0])
        share = e.minute / 60
        old_w, new_w = float(e.old_weight), float(e.new_weight)
        before = self.register_micro[j] + micro[:i, j].sum()
        old_part = int(np.rint(max(registered[i, j], 0.0) * share / old_w * instruments.MICRO))
        new_part = int(
            np.rint(max(registered[i, j], 0.0) * (1 - share) / new_w * instruments.MICRO)
        )
        at_swap = int(before + old_part)
        self.weights[j] = new_w
        micro[i, j] = old_part + new_part
        micro[i + 1 :, j] = instruments.micro_pulses(registered[i + 1 :, j], np.array(new_w))
        final = Decimal(at_swap) / instruments.MICRO * e.old_weight
        self.exchanged.append(
            e.model_copy(update={"final_register": final.quantize(Decimal("0.000001"))})
        )
        return i, j, at_swap if e.counter_reset else 0

    def advance(self, hours: np.ndarray, outdoor: OutdoorSeries) -> Chunk:
        """Simulate the absolute hours ``hours`` (consecutive, after the previous call's)."""
        n_h = len(hours)
        fx_all, fx, truth, true_q, counts = self._registers(hours, outdoor)
        supply_centi, return_centi = self._temperatures_centi(hours, truth)
        sensor_faults.freeze(
            self.faults,
            hours,
            self.plan,
            supply_centi,
            return_centi,
            self._frozen_at(hours, outdoor),
        )
        n = len(self.mesh.serials)
        parent = np.zeros((n_h, n), dtype=np.int64)
        hops = np.zeros((n_h, n), dtype=np.int64)
        rssi = np.zeros((n_h, n), dtype=np.int64)
        ok = np.zeros((n_h, n), dtype=bool)
        for i, h in enumerate(hours):
            routes = self._routes_for(fx.dead[i])
            draw = np.random.default_rng([self.seed, self.spec.index, int(h), 12]).random(n)
            ok[i] = (routes.hops >= 0) & ~fx.dead[i] & (draw < routes.success)
            parent[i], hops[i], rssi[i] = routes.parent, routes.hops, routes.rssi_dbm
        battery = self._battery(hours, fx)
        error_bits = np.where(battery < mesh.LOW_BATTERY_MV, ERROR_LOW_BATTERY, 0)
        ts = (EPOCH.timestamp() + (hours + 1) * 3600).astype(np.int64)
        events = self._events(hours, ts, fx_all, battery)
        pair_module = np.array([p.module for p in self.plan.pairs], dtype=np.int64)
        meter_mod_pos = np.array([self.module_pos[int(s)] for s in self.meter_module])
        pair_mod_pos = np.array([self.module_pos[int(s)] for s in pair_module])
        return Chunk(
            building=self.spec.code,
            concentrator_serial=self.spec.concentrator_serial,
            hours=hours,
            ts_unix=ts,
            pulse_module=self.meter_module,
            pulse_input=np.array([m.input for m in self.plan.meters], dtype=np.int64),
            pulse_count=counts,
            pulse_ok=ok[:, meter_mod_pos],
            temp_module=pair_module,
            supply_centi_c=supply_centi,
            return_centi_c=return_centi,
            temp_ok=ok[:, pair_mod_pos],
            status_module=self.mesh.serials,
            battery_mv=battery,
            rssi_dbm=rssi,
            hops=hops,
            parent=parent,
            tamper=fx.tamper,
            error_bits=error_bits,
            status_ok=ok,
            events=events,
            truth=truth,
            true_meter=true_q,
        )

    def _sensor_noise(self, hour: int, pairs: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.spec.index, hour, 11])
        return np.clip(rng.normal(0.0, 0.01, (2, pairs)), -0.03, 0.03)

    def _events(
        self, hours: np.ndarray, ts: np.ndarray, fx_all: FaultEffects, battery: np.ndarray
    ) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []
        raised = fx_all.tamper[1:] & ~fx_all.tamper[:-1]
        for i, j in zip(*np.nonzero(raised), strict=True):
            out.append((int(self.mesh.serials[j]), int(ts[i]), EVENT_MAGNET))
        low = battery < mesh.LOW_BATTERY_MV
        first_low = low & ~np.vstack([low[:1] & False, low[:-1]])
        for i, j in zip(*np.nonzero(first_low), strict=True):
            out.append((int(self.mesh.serials[j]), int(ts[i]), EVENT_BATTERY_LOW))
        return out


HOURS_PER_YEAR = 24 * 365


def _draw_count(seed: int, building_index: int, stream: int, mean: float) -> int:
    """How many events of a kind a building gets: Poisson from the seed."""
    return int(np.random.default_rng([seed, building_index, stream]).poisson(mean))


class CitySim:
    """Every building of a city, stepped together."""

    def __init__(
        self,
        city: list[BuildingSpec],
        seed: int,
        start_hour: int,
        outdoor: OutdoorSeries | None = None,
    ) -> None:
        self.seed = seed
        self.start_hour = start_hour
        self.next_hour = start_hour
        self.outdoor = outdoor or OutdoorSeries(seed)
        self.buildings = [BuildingSim(spec, seed, start_hour) for spec in city]

    def schedule_faults(
        self, hours: int, faults_per_week: float, kinds: tuple[str, ...] = FAULT_KINDS
    ) -> list[FaultRecord]:
        """Draw faults for every building over the next ``hours``; returns the ground truth."""
        records: list[FaultRecord] = []
        for b in self.buildings:
            mine = schedule_faults(
                building=b.spec.code,
                plan=b.plan,
                vertical=b.model.vertical,
                seed=self.seed,
                building_index=b.spec.index,
                start_hour=self.next_hour,
                hours=hours,
                faults_per_week=faults_per_week,
                kinds=kinds,
            )
            b.faults.extend(mine)
            records.extend(mine)
        return records

    def no_route(self) -> list[FaultRecord]:
        """Ground truth of the modules the equipment plan leaves without a route (every
        building, from the first simulated hour)."""
        return [
            r
            for b in self.buildings
            for r in no_route_records(b.spec.code, b.unrouted, self.start_hour, self.seed)
        ]

    def schedule_outages(self, hours: int, per_week: float, mean_hours: float) -> list[FaultRecord]:
        """Draw every concentrator's uplink outages over the next ``hours``; returns them."""
        records: list[FaultRecord] = []
        for b in self.buildings:
            mine = schedule_outages(
                building=b.spec.code,
                concentrator_serial=b.spec.concentrator_serial,
                seed=self.seed,
                building_index=b.spec.index,
                start_hour=self.next_hour,
                hours=hours,
                per_week=per_week,
                mean_hours=mean_hours,
            )
            b.outages.extend(mine)
            records.extend(mine)
        return records

    def schedule_exchanges(self, hours: int, per_year: float) -> list[PlannedExchange]:
        """Plan meter exchanges (``per_year`` per building on average) over the next
        ``hours``; the engine simulates them, and each building's ``exchanged`` then holds
        them with the old meter's final register (the ground truth to record)."""
        planned: list[PlannedExchange] = []
        for b in self.buildings:
            count = _draw_count(self.seed, b.spec.index, 41, per_year * hours / HOURS_PER_YEAR)
            mine = plan_exchanges(
                b.spec.code, b.plan.meters, self.seed, b.spec.index, self.next_hour, hours, count
            )
            b.exchanges.extend(mine)
            planned.extend(mine)
        return planned

    def schedule_tenant_changes(self, hours: int, per_year: float) -> list[TenantChange]:
        """Tenant changes (``per_year`` per building on average) over the next ``hours``
        (ground truth for billing; record them with
        :func:`balans_sim.lifecycle.record_tenant_changes`)."""
        out: list[TenantChange] = []
        for b in self.buildings:
            count = _draw_count(self.seed, b.spec.index, 43, per_year * hours / HOURS_PER_YEAR)
            accounts = [(f.number, f"{b.spec.code}-{f.number}") for f in b.spec.flats]
            out += plan_tenant_changes(
                b.spec.code, accounts, self.seed, b.spec.index, self.next_hour, hours, count
            )
        return out

    def exchanged(self) -> list[PlannedExchange]:
        """Every exchange simulated so far (with its final register), all buildings."""
        return [e for b in self.buildings for e in b.exchanged]

    def replay(self, hours: int) -> None:
        """Run through the next ``hours`` without readings (only registers and valves carry
        over, so what follows is exactly what :meth:`advance` would have led to)."""
        span = np.arange(self.next_hour, self.next_hour + hours, dtype=np.int64)
        self.next_hour += hours
        for b in self.buildings:
            b.skip(span, self.outdoor)

    def advance(self, hours: int) -> list[Chunk]:
        """The next ``hours`` hours of every building."""
        span = np.arange(self.next_hour, self.next_hour + hours, dtype=np.int64)
        self.next_hour += hours
        return [b.advance(span, self.outdoor) for b in self.buildings]
