"""The world document as CSV files, one per entity, for spreadsheet users.

A zip archive of ``sites.csv``, ``buildings.csv``, ``entrances.csv``, ``risers.csv``,
``flats.csv``, ``radiators.csv``, ``accounts.csv``, ``concentrators.csv``,
``modules.csv``, ``meters.csv`` and ``sensor_pairs.csv`` (a file may be left out when it
has no rows). Each row of a building's part names its ``building`` (code); a radiator its
``flat``; a meter's channel and M-Bus address are columns ``channel.module``,
``channel.input``, ``mbus.id``... Columns are the world document's fields; an empty cell
is an empty field (null, or the field's default). ``buildings.csv``'s ``methodology`` is
JSON.

:func:`document_from_csv` assembles the document and :func:`to_zip` writes one, so a CSV
import goes through the same checks and the same idempotent import as the JSON document
(:mod:`balans_db.provisioning.importer`), and import(export(x)) == x. Problems are named
by file and row (``meters.csv row 5.pulse_weight``; the header is row 1).
"""

from __future__ import annotations

import csv
import io
import json
import re
import types
import typing
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel

from balans_db.provisioning.document import (
    COLLECTIONS,
    FORMAT,
    BuildingDoc,
    FlatDoc,
    RadiatorDoc,
    SiteDoc,
    WorldDocument,
)
from balans_db.provisioning.validation import InvalidDocumentError, Problem, parse_document

Origin = dict[tuple[Any, ...], tuple[str, int]]  # document position -> (file, row)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class of a field typed ``Model`` or ``Model | None``."""
    candidates = [annotation, *typing.get_args(annotation)]
    for c in candidates:
        if isinstance(c, type) and issubclass(c, BaseModel):
            return c
    return None


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list


def _nullable(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(annotation)


def columns(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The CSV columns of a model: its scalar fields, nested models as ``name.field``."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        if _is_list(info.annotation):
            continue
        nested = _model_in(info.annotation)
        if nested is not None:
            out.extend(columns(nested, f"{prefix}{name}."))
        else:
            out.append(f"{prefix}{name}")
    return out


# file -> (model, columns naming the owner before the model's own)
FILES: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {
    "sites": (SiteDoc, ()),
    "buildings": (BuildingDoc, ()),
    **{name: (model, ("building",)) for name, (model, _) in COLLECTIONS.items()},
    "radiators": (RadiatorDoc, ("building", "flat")),
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _flat_row(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in data.items():
        if isinstance(value, dict) and key != "methodology":
            yield from _flat_row(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            yield f"{prefix}{key}", _cell(value)


def to_tables(doc: WorldDocument) -> dict[str, str]:
    """file name (``meters.csv``) -> CSV text of every entity of the document."""
    rows: dict[str, list[dict[str, str]]] = {name: [] for name in FILES}
    data = doc.model_dump(mode="json")
    rows["sites"] = [dict(_flat_row(s)) for s in data["sites"]]
    for b in data["buildings"]:
        rows["buildings"].append(dict(_flat_row(b)))
        for name in COLLECTIONS:
            for item in b[name]:
                rows[name].append({"building": b["code"], **dict(_flat_row(item))})
        for flat in b["flats"]:
            for rad in flat["radiators"]:
                rows["radiators"].append(
                    {"building": b["code"], "flat": flat["number"], **dict(_flat_row(rad))}
                )
    out: dict[str, str] = {}
    for name, (model, owner) in FILES.items():
        header = [*owner, *columns(model)]
        buffer = io.StringIO()
        # a nested part left empty (a meter without M-Bus: "mbus": null) has no column
        writer = csv.DictWriter(
            buffer, fieldnames=header, lineterminator="\n", extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows[name])
        out[f"{name}.csv"] = buffer.getvalue()
    return out


def to_zip(doc: WorldDocument) -> bytes:
    """The document as a zip archive of CSV files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in to_tables(doc).items():
            archive.writestr(name, text)
    return buffer.getvalue()


def tables_from_zip(data: bytes) -> dict[str, str]:
    """file name -> text of a zip archive of CSV files (InvalidDocumentError if it is not
    one, or names a file that is not an entity)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            texts = {n.rsplit("/", 1)[-1]: archive.read(n).decode("utf-8-sig") for n in names}
    # what a damaged or foreign archive raises: each is the sender's problem, answered 422
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        UnicodeDecodeError,
        NotImplementedError,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
    ) as exc:
        raise InvalidDocumentError(
            [Problem("file", f"not a zip archive of CSV files: {exc}")]
        ) from exc
    unknown = sorted(set(texts) - {f"{n}.csv" for n in FILES})
    if unknown:
        raise InvalidDocumentError(
            [Problem(n, f"not one of {', '.join(f'{f}.csv' for f in FILES)}") for n in unknown]
        )
    return texts


def _set(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _item(
    model: type[BaseModel], row: dict[str, str], where: str, problems: list[Problem]
) -> dict[str, Any]:
    """A row's cells as the document's nested fields (empty cells: null or left out)."""
    item: dict[str, Any] = {}
    for column, text in row.items():
        if column is None:
            problems.append(Problem(where, "more cells than columns"))
            continue
        path = column.split(".")
        info = model.model_fields.get(path[0])
        if info is None:
            if text:  # an unknown column with a value: the document check names it
                item[column] = text
            continue
        if text in ("", None):
            if len(path) == 1 and _nullable(info.annotation):
                item[path[0]] = None
            continue
        if path[0] == "methodology":
            try:
                item["methodology"] = json.loads(text)
            except ValueError as exc:
                problems.append(Problem(f"{where}.methodology", f"not JSON: {exc}"))
            continue
        _set(item, path, text)
    return item


def document_from_csv(tables: dict[str, str]) -> tuple[dict[str, Any], Origin]:
    """The world document (JSON data, not yet validated) of CSV files, and where each of
    its parts came from. Rows naming a building not in ``buildings.csv`` are problems."""
    problems: list[Problem] = []
    origin: Origin = {}
    parsed: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for name in FILES:
        text = tables.get(f"{name}.csv", "")
        try:
            parsed[name] = list(enumerate(csv.DictReader(io.StringIO(text)), start=2))
        except csv.Error as exc:
            problems.append(Problem(f"{name}.csv", f"not CSV: {exc}"))
            parsed[name] = []
    doc: dict[str, Any] = {"format": FORMAT, "sites": [], "buildings": []}
    for n, row in parsed["sites"]:
        origin[("sites", len(doc["sites"]))] = ("sites.csv", n)
        doc["sites"].append(_item(SiteDoc, row, f"sites.csv row {n}", problems))
    index: dict[str, int] = {}
    for n, row in parsed["buildings"]:
        building = _item(BuildingDoc, row, f"buildings.csv row {n}", problems)
        for name in COLLECTIONS:
            building[name] = []
        index[str(building.get("code"))] = len(doc["buildings"])
        origin[("buildings", len(doc["buildings"]))] = ("buildings.csv", n)
        doc["buildings"].append(building)
    flats: dict[tuple[int, str], tuple[int, dict[str, Any]]] = {}
    for name, (model, _) in COLLECTIONS.items():
        for n, row in parsed[name]:
            code = row.pop("building", "") or ""
            if code not in index:
                problems.append(
                    Problem(
                        f"{name}.csv row {n}.building", f"no building {code!r} in buildings.csv"
                    )
                )
                continue
            b = index[code]
            items = doc["buildings"][b][name]
            origin[("buildings", b, name, len(items))] = (f"{name}.csv", n)
            item = _item(model, row, f"{name}.csv row {n}", problems)
            if model is FlatDoc:
                item["radiators"] = []
                flats[(b, str(item.get("number")))] = (len(items), item)
            items.append(item)
    for n, row in parsed["radiators"]:
        code, flat = row.pop("building", "") or "", row.pop("flat", "") or ""
        found = flats.get((index.get(code, -1), flat))
        if found is None:
            problems.append(
                Problem(f"radiators.csv row {n}.flat", f"no flat {flat!r} of {code!r} in flats.csv")
            )
            continue
        fi, item = found
        origin[("buildings", index[code], "flats", fi, "radiators", len(item["radiators"]))] = (
            "radiators.csv",
            n,
        )
        item["radiators"].append(_item(RadiatorDoc, row, f"radiators.csv row {n}", problems))
    if problems:
        raise InvalidDocumentError(problems)
    return doc, origin


_PATH = re.compile(
    r"^(?:sites\[(?P<site>\d+)\]|buildings\[(?P<b>\d+)\]"
    r"(?:\.(?P<coll>\w+)\[(?P<i>\d+)\](?:\.radiators\[(?P<r>\d+)\])?)?)(?P<rest>.*)$"
)


def row_problems(problems: Sequence[Problem], origin: Origin) -> list[Problem]:
    """Problems named by document path, renamed by file and row where the part came from
    (``buildings[0].meters[3].unit`` -> ``meters.csv row 5.unit``)."""
    out = []
    for p in problems:
        m = _PATH.match(p.path)
        key: tuple[Any, ...] | None = None
        if m is not None:
            if m["site"] is not None:
                key = ("sites", int(m["site"]))
            elif m["r"] is not None:
                key = ("buildings", int(m["b"]), "flats", int(m["i"]), "radiators", int(m["r"]))
            elif m["coll"] is not None:
                key = ("buildings", int(m["b"]), m["coll"], int(m["i"]))
            else:
                key = ("buildings", int(m["b"]))
        if key is None or key not in origin:
            out.append(p)
            continue
        file, row = origin[key]
        out.append(Problem(f"{file} row {row}{m['rest'] if m else ''}", p.message))
    return out


def parse_tables(tables: dict[str, str]) -> tuple[WorldDocument, Origin]:
    """The validated document of CSV files; InvalidDocumentError names file and row."""
    data, origin = document_from_csv(tables)
    try:
        return parse_document(data), origin
    except InvalidDocumentError as exc:
        raise InvalidDocumentError(row_problems(exc.problems, origin)) from exc
