"""Heat and water a building really uses, hour by hour (the truth the meters try to measure).

Per flat: heat demand from its envelope, its behaviour profile and the weather. Horizontal
layouts (1a/1b/1c) give every flat its own loop; in vertical single-pipe layouts (2a/2b)
the water passes the radiators of a riser top-down and cools radiator by radiator, so each
radiator's ΔT and the riser flow satisfy Q = V·k·ΔT exactly. The building meter sees the
flats plus common areas (stairwells) plus in-building pipe losses, plus what faults add.

Every random draw comes from a generator seeded by (seed, building, hour), so any stretch
of hours is computed on its own and gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from balans_db.topology import BuildingSpec
from balans_physics.water import heat_coefficient
from balans_sim import behaviour, climate

U_W_PER_M2K = 2.0  # Soviet-era panel block, ventilation included
TOP_OR_GROUND_FACTOR = 1.2
GAINS_KW_PER_RESIDENT = 0.08
COMMON_SHARE = 0.04  # stairwells, of the flats' envelope
LOSS_SHARE_AT_DESIGN = 0.05  # in-building pipe losses, of the design load
RISER_DESIGN_DT_K = 25.0
K_NOMINAL = 1.16
WATER_M3_PER_RESIDENT_DAY = {"cold_water": 0.09, "hot_water": 0.05}
GAS_M3_PER_FLAT_DAY = 0.3
ELECTRICITY_KWH_PER_FLAT_HOUR = 0.25


@dataclass(frozen=True)
class Drivers:
    """What changes the physics from outside: faults and downlink commands ([hour, x])."""

    riser_flow_factor: np.ndarray  # [H, risers], 1 = normal
    lost_m3: np.ndarray  # [H] water leaving the circuit after the building meter (a leak)
    drawn_share: np.ndarray  # [H] water drawn off and not returned, of the building's flow
    tap_share: np.ndarray  # [H] heat a consumer tapped in before the flat meters takes,
    # of the flats' heat (it follows their use) ...
    tap_weather: np.ndarray  # [H] ... or of the design load x the heating degree (its own)
    tap_return_dt_k: np.ndarray  # [H] how much cooler the tapped-in consumer returns water
    valve_closed: dict[str, np.ndarray]  # utility -> [H, flats] that flat's valve shut


@dataclass
class Truth:
    """True hourly quantities of one building (kWh, m3, °C)."""

    outdoor_c: np.ndarray
    supply_c: np.ndarray
    flat_kwh: np.ndarray  # [H, F] heat delivered to each flat
    flat_m3: np.ndarray  # [H, F] heating water through a flat's own loop (horizontal)
    flat_supply_c: np.ndarray
    flat_return_c: np.ndarray
    radiator_in_c: np.ndarray  # [H, R] (vertical: radiators in BuildingModel.radiators order)
    radiator_out_c: np.ndarray
    radiator_kwh: np.ndarray
    riser_m3: np.ndarray  # [H, risers]
    riser_return_c: np.ndarray
    common_kwh: np.ndarray
    losses_kwh: np.ndarray
    building_kwh: np.ndarray
    building_m3: np.ndarray
    building_return_c: np.ndarray
    utilities: dict[str, np.ndarray]  # cold_water, hot_water, gas, electricity: [H, F]
    building_cold_water_m3: np.ndarray


class BuildingModel:
    """The physical building behind a :class:`BuildingSpec`: envelopes, profiles, risers."""

    def __init__(self, spec: BuildingSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        flats = spec.flats
        self.flat_numbers = [f.number for f in flats]
        self.flat_pos = {n: i for i, n in enumerate(self.flat_numbers)}
        area = np.array([float(f.area_m2) for f in flats])
        floor = np.array([f.floor for f in flats])
        edge = np.where((floor == 1) | (floor == spec.floors), TOP_OR_GROUND_FACTOR, 1.0)
        self.profile = behaviour.assign_profiles(seed, spec.index, len(flats))
        prof = [behaviour.PROFILES[i] for i in self.profile]
        self.ua_kw_per_k = area * U_W_PER_M2K * edge * np.array([p.ua_factor for p in prof]) / 1e3
        self.setpoint_c = np.array([p.setpoint_c for p in prof])
        self.setback_c = np.array([p.night_setback_c for p in prof])
        self.network_share = np.array([p.network_share for p in prof])
        self.occupied = np.array([p.occupied for p in prof])
        self.away = self.profile == behaviour.PROFILE_NAMES.index("away_two_weeks")
        self.away_day = behaviour.away_start_day(seed, spec.index, len(flats))
        self.residents = np.array([f.residents for f in flats], dtype=float)
        rng = np.random.default_rng([seed, spec.index, 4])
        self.loop_dt_factor = rng.uniform(0.8, 1.2, len(flats))
        self.vertical = spec.layout in ("2a", "2b")
        self.riser_numbers = sorted(spec.risers)
        # radiators: one per (flat, riser); risers carry them top floor first
        self.radiators: list[tuple[str, int]] = []
        self.riser_chain = np.full((len(self.riser_numbers), spec.floors), -1)
        for r, riser in enumerate(self.riser_numbers):
            on = sorted((f for f in flats if riser in f.risers), key=lambda f: -f.floor)
            for pos, f in enumerate(on):
                self.riser_chain[r, pos] = len(self.radiators)
                self.radiators.append((f.number, riser))
        self.radiator_flat = np.array([self.flat_pos[f] for f, _ in self.radiators], dtype=int)
        per_flat = np.bincount(self.radiator_flat, minlength=len(flats)).clip(min=1)
        self.radiator_share = 1.0 / per_flat[self.radiator_flat]
        design = self._demand_kw(np.array([climate.DESIGN_OUTDOOR_C]), np.array([12]))[0]
        rad_design = design[self.radiator_flat] * self.radiator_share
        riser_design = np.zeros(len(self.riser_numbers))
        for r in range(len(self.riser_numbers)):
            chain = self.riser_chain[r][self.riser_chain[r] >= 0]
            riser_design[r] = rad_design[chain].sum()
        self.riser_design_m3_h = riser_design / (K_NOMINAL * RISER_DESIGN_DT_K)
        self.design_kw = float(design.sum())
        self.loss_kw_per_k = LOSS_SHARE_AT_DESIGN * self.design_kw / (climate.DESIGN_SUPPLY_C - 15)

    def _demand_kw(self, outdoor_c: np.ndarray, local_hour: np.ndarray) -> np.ndarray:
        """[H, F] heat each flat wants from the network, before noise."""
        night = ((local_hour < 5) | (local_hour >= 23))[:, None]
        setpoint = self.setpoint_c[None, :] - np.where(night, self.setback_c[None, :], 0.0)
        loss = self.ua_kw_per_k[None, :] * (setpoint - outdoor_c[:, None])
        gains = np.where(self.occupied, self.residents * GAINS_KW_PER_RESIDENT, 0.0)
        return np.asarray(np.maximum(loss - gains[None, :], 0.0) * self.network_share[None, :])

    def truth(self, hours: np.ndarray, outdoor: climate.OutdoorSeries, drivers: Drivers) -> Truth:
        """True quantities for the absolute hour indices ``hours`` (each hour [h, h+1))."""
        n_h, n_f = len(hours), len(self.flat_numbers)
        t_out = outdoor(hours)
        on = climate.heating_on(t_out)
        t_s = np.where(on, climate.supply_c(t_out), climate.ROOM_C)
        local = (hours + behaviour.UTC_OFFSET_H) % 24
        noise = np.stack([self._noise(int(h), n_f) for h in hours])  # [hour, 5, flat]
        demand = self._demand_kw(t_out, local)
        day = (hours // 24) % 365
        away_now = self.away[None, :] & (((day[:, None] - self.away_day[None, :]) % 365) < 14)
        away_demand = np.maximum(
            self.ua_kw_per_k[None, :] * (behaviour.AWAY_SETPOINT_C - t_out[:, None]), 0.0
        )
        demand = np.where(away_now, away_demand, demand) * noise[:, 0] * on[:, None]
        present = self.occupied[None, :] & ~away_now
        if self.vertical:
            flat_kwh, rad = self._vertical(t_s, demand, drivers.riser_flow_factor)
            flat_m3 = np.zeros((n_h, n_f))
            flat_sup = flat_ret = np.zeros((n_h, n_f))
            riser_m3, riser_ret = rad["riser_m3"], rad["riser_return_c"]
        else:
            flat_kwh = demand
            dt = np.clip(0.3 * (t_s[:, None] - climate.ROOM_C), 3.0, 25.0) * self.loop_dt_factor
            flat_sup = np.broadcast_to(t_s[:, None] - 0.5, (n_h, n_f)).copy()
            flat_ret = flat_sup - np.where(flat_kwh > 0, dt, 0.0)
            k = heat_coefficient(flat_sup, flat_sup - dt)
            flat_m3 = flat_kwh / (k * dt)
            rad = {k_: np.zeros((n_h, 0)) for k_ in ("in_c", "out_c", "kwh")}
            riser_m3 = riser_ret = np.zeros((n_h, len(self.riser_numbers)))
        common = COMMON_SHARE * self.ua_kw_per_k.sum() * np.maximum(16.0 - t_out, 0.0) * on
        losses = self.loss_kw_per_k * np.maximum(t_s - 15.0, 0.0) * on
        flats_kwh = flat_kwh.sum(axis=1)
        degree = np.maximum(16.0 - t_out, 0.0) / (16.0 - climate.DESIGN_OUTDOOR_C) * on
        stolen = drivers.tap_share * flats_kwh + drivers.tap_weather * self.design_kw * degree
        loop_m3 = riser_m3.sum(axis=1) if self.vertical else flat_m3.sum(axis=1)
        # what comes back: the loops, common areas and losses, and a tapped-in consumer's
        # water (returned cooler by its own ΔT)
        returned_kwh = flats_kwh + common + losses + stolen
        returned_m3 = (
            loop_m3
            + (common + losses) / (K_NOMINAL * 20.0)
            + stolen / (K_NOMINAL * np.maximum(drivers.tap_return_dt_k, 1.0))
        )
        k_b = heat_coefficient(t_s, t_s - 15.0)
        b_dt = np.where(returned_m3 > 0, returned_kwh / (k_b * np.maximum(returned_m3, 1e-9)), 0.0)
        # water that never comes back (a leak, a draw) leaves at the supply temperature:
        # the meter registers its flow at the returning water's ΔT
        lost_m3 = (drivers.lost_m3 + drivers.drawn_share * returned_m3) * on
        building_m3 = returned_m3 + lost_m3
        building_kwh = returned_kwh + lost_m3 * k_b * b_dt
        utilities = self._utilities(local, noise[:, 1:], present, drivers.valve_closed)
        building_cw = (utilities["cold_water_all"] + utilities["hot_water_all"]).sum(axis=1)
        return Truth(
            outdoor_c=t_out,
            supply_c=t_s,
            flat_kwh=flat_kwh,
            flat_m3=flat_m3,
            flat_supply_c=flat_sup,
            flat_return_c=flat_ret,
            radiator_in_c=rad["in_c"],
            radiator_out_c=rad["out_c"],
            radiator_kwh=rad["kwh"],
            riser_m3=riser_m3,
            riser_return_c=riser_ret,
            common_kwh=common,
            losses_kwh=losses,
            building_kwh=building_kwh,
            building_m3=building_m3,
            building_return_c=t_s - b_dt,
            utilities={u: utilities[u] for u in ("cold_water", "hot_water", "gas", "electricity")},
            building_cold_water_m3=building_cw * 1.02,
        )

    def _noise(self, hour: int, flats: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.spec.index, hour, 5])
        heat = rng.lognormal(0.0, 0.08, flats)
        use = rng.lognormal(-0.125, 0.5, (4, flats))  # mean 1
        return np.vstack([heat[None, :], use])

    def _vertical(
        self, t_s: np.ndarray, demand: np.ndarray, flow_factor: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Cascade the water down each riser: radiator ΔT = Q / (V·k)."""
        n_h = len(t_s)
        n_rad = len(self.radiators)
        riser_m3 = self.riser_design_m3_h[None, :] * flow_factor * (t_s > climate.ROOM_C)[:, None]
        rad_demand = demand[:, self.radiator_flat] * self.radiator_share[None, :]
        rad_in = np.zeros((n_h, n_rad))
        rad_out = np.zeros((n_h, n_rad))
        rad_kwh = np.zeros((n_h, n_rad))
        temp = t_s[:, None].repeat(len(self.riser_numbers), axis=1)
        emission = np.where(flow_factor < 1.0, flow_factor**0.35, 1.0)  # clogged: less heat
        for pos in range(self.riser_chain.shape[1]):
            idx = self.riser_chain[:, pos]
            has = idx >= 0
            r_ok = np.nonzero(has)[0]
            rad = idx[has]
            q = rad_demand[:, rad] * emission[:, r_ok]
            v = riser_m3[:, r_ok]
            flowing = v > 0
            dt0 = np.where(flowing, q / (K_NOMINAL * np.maximum(v, 1e-9)), 0.0)
            t_in = temp[:, r_ok]
            dt0 = np.minimum(dt0, np.maximum(t_in - climate.ROOM_C - 1.0, 0.0))
            k = heat_coefficient(t_in, t_in - dt0)
            dt = np.where(flowing, np.minimum(q / (k * np.maximum(v, 1e-9)), dt0 * 1.02), 0.0)
            q = np.where(flowing, v * heat_coefficient(t_in, t_in - dt) * dt, 0.0)
            rad_in[:, rad], rad_out[:, rad], rad_kwh[:, rad] = t_in, t_in - dt, q
            temp[:, r_ok] = t_in - dt
        flat_kwh = np.zeros((n_h, len(self.flat_numbers)))
        np.add.at(flat_kwh.T, self.radiator_flat, rad_kwh.T)
        return flat_kwh, {
            "in_c": rad_in,
            "out_c": rad_out,
            "kwh": rad_kwh,
            "riser_m3": riser_m3,
            "riser_return_c": temp,
        }

    def _utilities(
        self,
        local: np.ndarray,
        noise: np.ndarray,
        present: np.ndarray,
        valve_closed: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        shape = behaviour.daily_water_shape(local)[:, None]
        out: dict[str, np.ndarray] = {}
        for i, (utility, per_res) in enumerate(WATER_M3_PER_RESIDENT_DAY.items()):
            use = self.residents[None, :] * per_res / 24.0 * shape * noise[:, i] * present
            out[f"{utility}_all"] = use
            out[utility] = use * ~valve_closed[utility] if utility in valve_closed else use
        out["cold_water_all"] = out["cold_water"]
        gas = GAS_M3_PER_FLAT_DAY / 24.0 * shape * noise[:, 2] * present
        out["gas"] = gas * ~valve_closed["gas"]
        out["electricity"] = (
            ELECTRICITY_KWH_PER_FLAT_HOUR
            * (0.3 + 0.7 * shape)
            * noise[:, 3]
            * (0.2 + 0.8 * present)
        )
        return out
