"""Relay Compiler accepts the whole schema: `@connection` forward (`first`/`after`) and
backward (`last`/`before`) on every connection of the schema, and `@refetchable` on every type
that implements Node, generated from `schema.graphql` itself (so a new list or a new object is
covered the day it appears). Uses the portal's relay-compiler (examples/portal's lock file)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from graphql import GraphQLObjectType, build_schema, get_named_type, is_non_null_type

from tests.clients.node_support import REPO, installed, require_node

pytestmark = pytest.mark.once


def _documents(sdl: str) -> tuple[list[str], list[str], list[str]]:
    """(forward connection fragments, backward ones, refetchable fragments)."""
    schema = build_schema(sdl)
    node = schema.type_map["Node"]
    forward, backward, refetchable = [], [], []
    for name, kind in sorted(schema.type_map.items()):
        if not isinstance(kind, GraphQLObjectType) or name.startswith("__"):
            continue
        if node in kind.interfaces:
            refetchable.append(
                f"fragment Refetch{name}_node on {name} "
                f'@refetchable(queryName: "Refetch{name}Query") {{ id }}'
            )
        for field_name, field in kind.fields.items():
            if not get_named_type(field.type).name.endswith("Connection"):
                continue
            if any(
                is_non_null_type(a.type)
                and (a.ast_node is None or a.ast_node.default_value is None)
                for a in field.args.values()
            ):
                continue  # a connection that needs an argument (none today)
            for way, (size, cursor), into in (
                ("Forward", ("first", "after"), forward),
                ("Backward", ("last", "before"), backward),
            ):
                fragment = f"{way}{name}{field_name[0].upper()}{field_name[1:]}_list"
                into.append(
                    f"fragment {fragment} on {name} @argumentDefinitions("
                    'count: {type: "Int", defaultValue: 10}, cursor: {type: "String"}) {\n'
                    f"  {field_name}({size}: $count, {cursor}: $cursor) "
                    f'@connection(key: "{fragment}_{field_name}") {{\n'
                    "    edges { node { __typename } }\n  }\n}"
                )
    return forward, backward, refetchable


def test_relay_compiles_connections_both_ways_and_refetchable_nodes(tmp_path: Path) -> None:
    require_node()
    tools = installed(REPO / "examples" / "portal")
    sdl = (REPO / "schema.graphql").read_text()
    forward, backward, refetchable = _documents(sdl)
    # Every list is a connection, and every object with an id a Node (tests/schema walk them).
    assert len(forward) == len(backward) >= 13
    assert len(refetchable) >= 16
    project = tmp_path / "relay"
    (project / "src").mkdir(parents=True)
    (project / "schema.graphql").write_text(sdl)
    (project / "relay.config.json").write_text(
        '{"src": "./src", "schema": "./schema.graphql", "language": "javascript", '
        '"customScalarTypes": {"BigInt": "string", "DateTime": "string", "Date": "string", '
        '"JSON": "unknown"}}'
    )
    body = "\n".join(
        f"graphql`\n{document}\n`;" for document in [*forward, *backward, *refetchable]
    )
    (project / "src" / "Everything.js").write_text(
        'import { graphql } from "react-relay";\n' + body + "\n"
    )
    (project / "node_modules").symlink_to(tools / "node_modules")
    compiler = tools / "node_modules" / ".bin" / "relay-compiler"
    done = subprocess.run(
        [str(compiler)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    shutil.rmtree(project / "src")
