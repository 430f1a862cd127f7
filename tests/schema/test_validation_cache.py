"""Documents are validated once per distinct query text, with rules built once per schema."""

from __future__ import annotations

from graphql import parse, validate

from schema.build import Limits, build_schema
from schema.strawberry_internals import graphql_core_schema
from schema.validation import ValidationResults, validation_rules


async def test_the_same_text_is_validated_once_and_a_new_text_again() -> None:
    schema = build_schema()
    results = schema.validation_results
    for _ in range(3):
        answer = await schema.execute("query Again { __typename }")
        assert answer.errors is None
    assert (results.misses, results.hits) == (1, 2)
    await schema.execute("query Other { __typename }")
    assert (results.misses, results.hits) == (2, 2)


async def test_errors_of_an_invalid_document_are_cached_and_reported_each_time() -> None:
    schema = build_schema()
    results = schema.validation_results
    for _ in range(2):
        answer = await schema.execute("{ noSuchField }")
        assert answer.errors is not None
        assert "Cannot query field 'noSuchField'" in answer.errors[0].message
    assert (results.misses, results.hits) == (1, 1)


async def test_the_limits_are_among_the_cached_rules() -> None:
    schema = build_schema(Limits(max_depth=2, max_aliases=1))
    deep = "{ a1: __typename a2: __typename }"
    for _ in range(2):
        answer = await schema.execute(deep)
        assert answer.errors is not None
        assert "aliases" in answer.errors[0].message.lower()
    assert schema.validation_results.hits == 1


def test_the_rules_give_what_graphql_core_gives_with_the_same_rules() -> None:
    schema = build_schema()
    core = graphql_core_schema(schema)
    rules = validation_rules(max_depth=3, max_aliases=2, extra=[])
    results = ValidationResults(rules, maxsize=2)
    text = "{ plans(first: 1) { edges { node { id price { amount } } } } }"
    expected = [e.message for e in validate(core, parse(text), rules)]
    assert [e.message for e in results.errors(core, text, parse(text))] == expected
    assert expected, "the depth rule of 3 refuses this 5-deep document"


def test_the_cache_is_bounded() -> None:
    schema = build_schema()
    core = graphql_core_schema(schema)
    results = ValidationResults(validation_rules(max_depth=5, max_aliases=5, extra=[]), maxsize=2)
    for name in ("A", "B", "C", "A"):
        text = f"query {name} {{ __typename }}"
        results.errors(core, text, parse(text))
    assert (results.misses, results.hits) == (4, 0)  # A was evicted by C
