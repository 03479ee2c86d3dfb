"""The DMesh radio network of one building: placement, 433 MHz links, routes, losses, batteries.

Modules sit on their floors; the concentrator in the basement of entrance 1. A link's
received power follows free-space loss at 433.9 MHz plus 12 dB per floor and 8 dB per
entrance wall crossed. Every module routes: each subnet builds a best-link tree to the
concentrator (Dijkstra over expected transmissions, ETX), at most 30 hops; a module that
dies is left out and the tree is rebuilt around it. A reading crosses each hop with up
to three retries, so a lossy path loses some hours (never volume: registers are cumulative).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from balans_db.topology import BuildingSpec, EquipmentPlan

FREQ_MHZ = 433.92
TX_DBM = 10.0
SENSITIVITY_DBM = -110.0
LINK_MARGIN_DB = 6.0
FLOOR_LOSS_DB = 12.0
WALL_LOSS_DB = 8.0
MAX_HOPS = 30
RETRIES = 3
FLOOR_HEIGHT_M = 3.0
ENTRANCE_WIDTH_M = 18.0
CONCENTRATOR = 0  # parent serial meaning "the concentrator itself"

BATTERY_MAH = 3400.0
OWN_MA = 0.058  # sleep + own hourly reports: about 6.7 years alone
RELAY_MA = 0.0004  # per module relayed through this one (a busy router: ~6 years)
FULL_MV, KNEE_MV, CUTOFF_MV = 3600, 3400, 3000
LOW_BATTERY_MV = 3300


@dataclass(frozen=True)
class Routes:
    """A routing tree: parent serial, hop count and link RSSI per module (-1 hops = cut off)."""

    parent: np.ndarray
    hops: np.ndarray
    rssi_dbm: np.ndarray
    success: np.ndarray  # probability an hourly report reaches the concentrator
    relayed: np.ndarray  # descendants per module


class Mesh:
    def __init__(self, spec: BuildingSpec, plan: EquipmentPlan, seed: int) -> None:
        self.serials = np.array([m.serial for m in plan.modules], dtype=np.int64)
        self.subnet = np.array([m.subnet for m in plan.modules])
        entrance_of = {f.number: f.entrance for f in spec.flats}
        rng = np.random.default_rng([seed, spec.index, 8])
        n = len(plan.modules)
        entrance = np.array(
            [entrance_of.get(m.flat or "", spec.risers.get(m.riser or 0, 1)) for m in plan.modules]
        )
        floor = np.array([m.floor for m in plan.modules], dtype=float)
        x = (entrance - 1) * ENTRANCE_WIDTH_M + rng.uniform(0, ENTRANCE_WIDTH_M * 0.9, n)
        y = rng.uniform(0, 12.0, n)
        # node 0 is the concentrator (basement, entrance 1)
        self.pos = np.column_stack([np.r_[2.0, x], np.r_[6.0, y], np.r_[-1.0, floor]])
        self.entrance = np.r_[1, entrance]
        self.fading_db = rng.normal(0, 3.0, (n + 1, n + 1))
        self.fading_db = (self.fading_db + self.fading_db.T) / 2

    @cached_property
    def rssi_matrix(self) -> np.ndarray:
        """Received power between every pair of nodes (node 0 = concentrator), dBm."""
        xy = self.pos[:, :2]
        z = self.pos[:, 2]
        dist = np.sqrt(
            ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
            + ((z[:, None] - z[None, :]) * FLOOR_HEIGHT_M) ** 2
        ).clip(min=1.0)
        fspl = 20 * np.log10(dist / 1000) + 20 * np.log10(FREQ_MHZ) + 32.45
        floors = np.abs(z[:, None] - z[None, :])
        walls = np.abs(self.entrance[:, None] - self.entrance[None, :])
        return np.asarray(
            TX_DBM - fspl - FLOOR_LOSS_DB * floors - WALL_LOSS_DB * walls + self.fading_db
        )

    @staticmethod
    def packet_error(rssi_dbm: np.ndarray) -> np.ndarray:
        """Per-attempt loss: near zero with margin, rising steeply near the sensitivity."""
        margin = rssi_dbm - SENSITIVITY_DBM
        return np.asarray(1.0 / (1.0 + np.exp((margin - 4.0) / 1.5)))

    def routes(self, dead: frozenset[int] = frozenset()) -> Routes:
        """Best-link trees (one per subnet) around the modules at positions ``dead``."""
        n = len(self.serials)
        rssi = self.rssi_matrix
        per = self.packet_error(rssi)
        usable = rssi >= SENSITIVITY_DBM + LINK_MARGIN_DB
        etx = np.where(usable, 1.0 / np.maximum(1.0 - per, 1e-6), 0.0)
        np.fill_diagonal(etx, 0.0)
        parent = np.full(n, -1, dtype=np.int64)
        hops = np.full(n, -1)
        link_rssi = np.zeros(n)
        success = np.zeros(n)
        for subnet in np.unique(self.subnet):
            members = [i for i in np.nonzero(self.subnet == subnet)[0] if i not in dead]
            nodes = np.r_[0, np.array(members, dtype=int) + 1]
            graph = csr_matrix(etx[np.ix_(nodes, nodes)])
            _, pred = dijkstra(graph, directed=False, indices=0, return_predecessors=True)
            for local, node in enumerate(nodes[1:], start=1):
                if pred[local] < 0:
                    continue
                path_ok, h, cur = 1.0, 0, local
                while cur != 0:
                    up = pred[cur]
                    p = per[nodes[cur], nodes[up]]
                    path_ok *= 1.0 - p ** (RETRIES + 1)
                    h += 1
                    cur = up
                if h > MAX_HOPS:
                    continue
                i = node - 1
                up_node = nodes[pred[local]]
                parent[i] = CONCENTRATOR if up_node == 0 else self.serials[up_node - 1]
                hops[i] = h
                link_rssi[i] = rssi[node, up_node]
                success[i] = path_ok
        relayed = np.zeros(n, dtype=int)
        pos = {int(s): i for i, s in enumerate(self.serials)}
        for i in range(n):
            cur = int(parent[i])
            seen = 0
            while cur not in (CONCENTRATOR, -1) and seen <= MAX_HOPS:
                relayed[pos[cur]] += 1
                cur = int(parent[pos[cur]])
                seen += 1
        return Routes(parent, hops, np.round(link_rssi), success, relayed)


def battery_mv(consumed_mah: np.ndarray) -> np.ndarray:
    """Lithium thionyl chloride: flat at 3.6 V, a knee at 90 % used, 3.0 V when empty."""
    used = np.clip(consumed_mah / BATTERY_MAH, 0.0, 1.0)
    flat = FULL_MV - (FULL_MV - KNEE_MV) * used / 0.9
    knee = KNEE_MV - (KNEE_MV - CUTOFF_MV) * (used - 0.9) / 0.1
    return np.asarray(np.round(np.where(used < 0.9, flat, knee)).astype(np.int64))


def battery_years(relayed: int = 0) -> float:
    """Expected life at the nominal hourly reporting rate."""
    return BATTERY_MAH / (OWN_MA + RELAY_MA * relayed) / 8766.0
