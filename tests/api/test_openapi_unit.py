"""Pure checks of the generated OpenAPI document and the cursor codec (no engine needed)."""

from __future__ import annotations

import pytest

from engine.http.openapi import build
from engine.http.paging import decode_cursor, encode_cursor
from engine.http.problems import ProblemError
from engine.http.routes import ALL_ROUTES


def test_every_route_is_documented_with_its_schemas() -> None:
    spec = build(ALL_ROUTES)
    assert spec["openapi"] == "3.1.0"
    for route in ALL_ROUTES:
        op = spec["paths"][route.path][route.method.lower()]
        if route.body is not None:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/" + route.body.__name__)
            assert route.body.__name__ in spec["components"]["schemas"]
        if route.response is not None:
            assert str(route.status) in op["responses"]
        assert "422" in op["responses"] and "429" in op["responses"]
        if route.perm is not None:
            assert op["security"] == [{"bearer": []}] and "403" in op["responses"]
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_request_schemas_forbid_unknown_fields_and_bound_strings() -> None:
    schemas = build(ALL_ROUTES)["components"]["schemas"]
    product = schemas["ProductIn"]
    assert product["additionalProperties"] is False
    assert product["properties"]["sku"]["maxLength"] == 128


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor([1.5, "a:b"])) == [1.5, "a:b"]
    for bad in ["!!", "e30", encode_cursor([1, 2]), encode_cursor([{"$gt": 1}, "x"])]:
        with pytest.raises(ProblemError) as err:
            decode_cursor(bad)
        assert err.value.status == 400
