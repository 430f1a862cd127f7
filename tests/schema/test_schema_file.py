"""schema.graphql is the committed contract; it must match the code."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema as parse_sdl

from schema import schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    committed = SCHEMA_FILE.read_text()
    assert committed == schema.as_str().rstrip("\n") + "\n", (
        "schema.graphql is stale: run `billing export-schema > schema.graphql` and commit it."
    )


def test_root_types_follow_the_contract() -> None:
    sdl = parse_sdl(SCHEMA_FILE.read_text())
    roots = (sdl.query_type, sdl.mutation_type, sdl.subscription_type)
    assert [t.name if t else None for t in roots] == ["Query", "Mutation", "Live"]


def test_every_type_field_and_argument_is_described() -> None:
    sdl = parse_sdl(SCHEMA_FILE.read_text())
    missing = []
    for name, named in sdl.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Boolean", "ID", "Float"}:
            continue
        if not named.description:
            missing.append(name)
        for field_name, field in getattr(named, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for arg_name, arg in getattr(field, "args", {}).items():
                if not arg.description:
                    missing.append(f"{name}.{field_name}({arg_name})")
    assert missing == []


def test_mutations_take_one_input_and_return_errors() -> None:
    sdl = parse_sdl(SCHEMA_FILE.read_text())
    assert sdl.mutation_type is not None
    for name, field in sdl.mutation_type.fields.items():
        assert list(field.args) == ["input"], name
        payload = field.type.of_type  # NonNull(Payload)
        assert "errors" in payload.fields, name
