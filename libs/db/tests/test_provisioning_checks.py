"""The topology checks without a database: what each piping layout needs and the hardware
limits of docs/domain.md, each problem named with its path."""

from __future__ import annotations

import copy
from typing import Any

from balans_db.provisioning.validation import check_document, parse_document
from balans_db.topology import city_document, reference_building, regular_building

REFERENCE = city_document([reference_building("2a")])


def _problems(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p.path, p.message) for p in check_document(parse_document(doc))}


def test_every_layout_of_the_writer_passes() -> None:
    site = reference_building().site
    specs = [
        regular_building(
            code=f"l-{layout}",
            name="x",
            address="x",
            site=site,
            layout=layout,
            floors=4,
            flats_per_floor=(3,),
            risers_per_entrance=(5,),
            index=i + 1,
        )
        for i, layout in enumerate(("1a", "1b", "1c", "2a", "2b"))
    ]
    assert _problems(city_document(specs)) == set()


def test_single_pipe_risers_need_a_flow_meter_and_a_pair_per_radiator() -> None:
    doc = copy.deepcopy(REFERENCE)
    b = doc["buildings"][0]
    b["meters"] = [m for m in b["meters"] if not (m["role"] == "riser" and m["riser"] == 3)]
    pair = next(p for p in b["sensor_pairs"] if p["flat"] == "2")
    b["sensor_pairs"].remove(pair)
    flat = next(i for i, f in enumerate(b["flats"]) if f["number"] == "2")
    radiator = next(
        j for j, r in enumerate(b["flats"][flat]["radiators"]) if r["riser"] == pair["riser"]
    )
    assert _problems(doc) == {
        ("buildings[0].risers[2]", "single-pipe riser 3 needs a riser flow meter"),
        (
            f"buildings[0].flats[{flat}].radiators[{radiator}]",
            f"the radiator of flat 2 on riser {pair['riser']} needs a sensor pair (layout 2a)",
        ),
    }


def test_hardware_limits() -> None:
    doc = copy.deepcopy(REFERENCE)
    b = doc["buildings"][0]
    concentrator = b["concentrators"][0]["serial"]
    for m in b["modules"]:
        m["subnet"] = 0  # 400 modules on one subnet
    for n in range(100):  # 600 more meters: 736 on the concentrator
        serial = 9_000_000 + n
        b["modules"].append(
            {"serial": serial, "concentrator": concentrator, "subnet": 3, "floor": 0}
        )
        for i in range(6):
            b["meters"].append(
                {
                    "serial": f"e-{serial}-{i}",
                    "utility": "electricity",
                    "kind": "electricity_meter",
                    "role": "common",
                    "pulse_weight": "0.1",
                    "unit": "kWh",
                    "channel": {"module": serial, "input": i},
                }
            )
    problems = _problems(doc)
    assert (
        "buildings[0].modules",
        f"concentrator {concentrator} subnet 0: 400 modules, the limit is 240",
    ) in problems
    assert (
        "buildings[0].meters",
        f"concentrator {concentrator} subnet 3: 600 meters, the limit is 540",
    ) in problems
    assert (
        "buildings[0].meters",
        f"concentrator {concentrator}: 736 meters, the limit is 720",
    ) in problems


def test_a_meter_needs_its_input_and_the_right_unit() -> None:
    doc = copy.deepcopy(REFERENCE)
    b = doc["buildings"][0]
    b["meters"][1]["channel"] = dict(b["meters"][0]["channel"])
    b["meters"][2]["unit"] = "kWh"
    problems = _problems(doc)
    assert (
        "buildings[0].meters[1].channel",
        f"module {b['meters'][0]['channel']['module']} input 0 already counts meter "
        f"{b['meters'][0]['serial']}",
    ) in problems
    assert ("buildings[0].meters[2].unit", "a flow_meter counts m3, not kWh") in problems
